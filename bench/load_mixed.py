"""Benchmark: a bounded, mixed load on a real `news-search serve` (127.0.0.1), with slow and half-open clients beside it.

Reuses bench.http_load (server start, the keep-alive client loop, the latency summary). A load generator in
another process runs `--clients` users sending GET /search across every mode, date windows, source filters
and pages, plus `--slow` clients that open a connection and send nothing or half a request, again and again,
until the server cuts them off (408). The server's resident memory is read at start, after the warm-up, every
half second of the run and at the end. Writes bench/results/load-mixed-<index>-<cpu kind>.json (or --out) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT, commit, machine_facts, memory_kb, result_path, write_result
from bench.http_load import Load, client, dev_queries, free_port, generator_parser, get_json, start_server, summary

MODES = ("hybrid", "dense", "keyword")
WINDOWS = ({}, {"since": "2019-06-01"}, {"until": "2019-12-31"}, {"since": "2020-01-01", "until": "2020-12-31"})
HALF_REQUEST = b"GET /search?q=oil HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # headers never finished


def mixed_query(index: int, q: str, sources: list[str]) -> str:
    """The query string of the index-th request: mode, page, date window and source filter all vary with it."""
    params: dict = {"q": q, "k": 10, "mode": MODES[index % 3], "offset": index // 3 % 3 * 10, **WINDOWS[index // 9 % 4]}
    if index % 5 == 0:
        params["source"] = (sources + ["no such source"])[index // 5 % (len(sources) + 1)]
    return urllib.parse.urlencode(params)


def slow_client(port: int, half: bool, deadline: float, answers: dict[str, int], lock: threading.Lock) -> None:
    """Open a connection, send nothing (or half a request), wait for the server to answer and close; repeat."""
    while (left := deadline - time.perf_counter()) > 0.2:
        sock = socket.create_connection(("127.0.0.1", port), timeout=left)
        try:
            if half:
                sock.sendall(HALF_REQUEST)
            first = sock.recv(64)
            kind = first[:12].decode("latin-1") if first else "closed without an answer"
        except TimeoutError:
            kind = "still open at the end"
        except OSError as exc:
            kind = type(exc).__name__
        finally:
            sock.close()
        with lock:
            answers[kind] = answers.get(kind, 0) + 1


def generate(args: argparse.Namespace) -> None:
    """Run the users and the slow clients side by side; print one JSON object with what they measured."""
    items = [mixed_query(i, q, args.sources) for i, q in enumerate(dev_queries())]
    load = Load(items, args.requests, args.seconds, args.start)
    answers: dict[str, int] = {}
    lock = threading.Lock()
    users = [threading.Thread(target=client, args=(load, args.port, "/search", args.timeout, str))
             for _ in range(args.clients)]
    slow = [threading.Thread(target=slow_client, args=(args.port, i % 2 == 1, load.deadline, answers, lock))
            for i in range(args.slow)]
    started = time.perf_counter()
    for t in users + slow:
        t.start()
    for t in users + slow:
        t.join()
    wall = time.perf_counter() - started
    ok = len(load.latencies)
    print(json.dumps({"clients": args.clients, "slow_clients": args.slow, "requests": ok + sum(load.errors.values()),
                      "ok": ok, "errors": sum(load.errors.values()), "error_kinds": load.errors,
                      "seconds": round(wall, 3), "requests_per_s": round(ok / wall, 2), **summary(load.latencies),
                      "mean_hits": round(load.hits / ok, 2) if ok else 0, "slow_client_answers": answers}))


def resident_mb(pid: int) -> float:
    """A process's resident memory in MB."""
    return round(memory_kb(pid)["VmRSS"] / 1024, 1)


def run_generator(port: int, pid: int, clients: int, slow: int, seconds: float, requests: int,
                  sources: list[str], start: int = 0) -> tuple[dict, list[float]]:
    """One bounded run of the generator process; its result and the server's resident memory sampled meanwhile."""
    command = [sys.executable, "-m", "bench.load_mixed", "generate", "--port", str(port), "--clients", str(clients),
               "--slow", str(slow), "--seconds", str(seconds), "--requests", str(requests), "--start", str(start),
               "--sources", json.dumps(sources)]
    gen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    samples = []
    deadline = time.monotonic() + seconds + 120
    while gen.poll() is None and time.monotonic() < deadline:
        samples.append(resident_mb(pid))
        time.sleep(0.5)
    if gen.poll() is None:
        gen.kill()
    out, err = gen.communicate()
    if gen.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{err}")
    return json.loads(out), samples


def measure(port: int, pid: int, clients: int, slow: int, seconds: float, warmup_seconds: float,
            requests: int = 1_000_000) -> dict:
    """Warm the server up with the same mix, then run it bounded; errors, latency and resident memory."""
    sources = sorted(get_json(port, "/stats")[1].get("sources") or {})
    memory = {"start_mb": resident_mb(pid)}
    run_generator(port, pid, clients, 0, warmup_seconds, requests, sources, start=len(dev_queries()) // 2)
    memory["after_warmup_mb"] = resident_mb(pid)
    run, samples = run_generator(port, pid, clients, slow, seconds, requests, sources)
    memory["end_mb"] = resident_mb(pid)
    memory["max_during_run_mb"] = max(samples, default=memory["end_mb"])
    memory["growth_after_warmup"] = round(memory["end_mb"] / memory["after_warmup_mb"] - 1, 4)
    return {**run, "server_memory": memory}


def benchmark(args: argparse.Namespace) -> None:
    """Serve the index, measure one mixed run, write the result file and print a summary."""
    port = free_port()
    log = ROOT / "var" / "load_mixed.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    server = start_server(args.index_dir, port, {}, log, args.ready_timeout)
    try:
        run = measure(port, server.pid, args.clients, args.slow, args.seconds, args.warmup_seconds)
        stats = get_json(port, "/stats")[1]
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {"benchmark": "load_mixed", "date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit(),
              "machine": machine_facts(), "index_dir": str(args.index_dir),
              "index": {k: stats.get(k) for k in ("index_version", "articles", "passages")},
              "workload": "GET /search, dev queries cycled; mode hybrid/dense/keyword, offset 0/10/20, "
                          "no/since/until/both date filters, a source filter on every 5th (some unknown)",
              "bounds": {"seconds": args.seconds, "warmup_seconds": args.warmup_seconds}, **run}
    what = f"load-mixed-{args.index_dir.resolve().name.removesuffix('-index')}"
    out = write_result(args.out or result_path(what, facts=result["machine"]), result)
    mem = run["server_memory"]
    print(f"{run['clients']} clients + {run['slow_clients']} slow: {run['ok']} ok, {run['errors']} errors, "  # noqa: T201 - CLI
          f"p50 {run.get('p50_ms')} ms, p99 {run.get('p99_ms')} ms; RSS {mem['after_warmup_mb']} -> {mem['end_mb']} MB "
          f"({mem['growth_after_warmup']:+.1%}); slow clients: {run['slow_client_answers']}\nwrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = generator_parser(parser)
    g.add_argument("--slow", type=int, default=0, help="slow clients beside the users")
    g.add_argument("--sources", type=json.loads, default=[], help="the index's sources, as a JSON list")
    parser.add_argument("--index-dir", type=Path, help="index folder to serve")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--slow", type=int, default=8, help="slow clients (half idle, half sending half a request)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, help="default bench/results/load-mixed-<index folder>-<cpu kind>.json")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    args = parser.parse_args()
    if args.command == "generate":
        generate(args)
    elif not args.index_dir:
        parser.error("--index-dir is required")
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
