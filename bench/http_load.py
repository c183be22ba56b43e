"""Benchmark: /search over HTTP against a real `news-search serve` on 127.0.0.1, loaded from another process.

The server runs as a subprocess over `--index-dir`; once /readyz answers, a load generator in a
separate Python process (this module with `generate`) runs `--clients` concurrent keep-alive
connections, each sending GET /search (default mode, one hit per article) with the 559 dev queries
shuffled and cycled, until `--requests` are answered or `--seconds` pass. Latency is timed per
request in the generator; the server's CPU time (all its threads and child processes) and the
generator's own CPU time are read around each run, since both share this machine's cores.
Also times `Searcher.search` in-process over the same queries (before the server starts).
Writes bench/results/http-load-<label>-<cpu kind>[-<variant>].json and prints a table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import common
from bench.common import ROOT, commit, machine_facts, memory_kb, percentile, result_path, write_result

TICKS = os.sysconf("SC_CLK_TCK")


def dev_queries(seed: int = 7) -> list[str]:
    """The dev queries of every eval set, shuffled once (the same order for every run)."""
    queries = common.dev_queries()
    random.Random(seed).shuffle(queries)
    return queries


def summary(latencies_ms: list[float]) -> dict:
    """p50, p90, p99, mean and max of a list of latencies, in ms."""
    if not latencies_ms:
        return {}
    return {"p50_ms": round(percentile(latencies_ms, 50), 2), "p90_ms": round(percentile(latencies_ms, 90), 2),
            "p99_ms": round(percentile(latencies_ms, 99), 2), "mean_ms": round(statistics.fmean(latencies_ms), 2),
            "max_ms": round(max(latencies_ms), 2)}


# -- the load generator (runs in its own process) ---------------------------------------------------


class Load:
    """Shared state of the client threads: the next query, the bounds, and what was measured."""

    def __init__(self, queries: list[str], requests: int, seconds: float, start: int):
        self.queries = queries
        self.limit = requests
        self.deadline = time.perf_counter() + seconds
        self.next = start
        self.sent = 0
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.hits = 0

    def take(self) -> str | None:
        """The next query to send, or None once the count or the time is used up."""
        with self.lock:
            if self.sent >= self.limit or time.perf_counter() >= self.deadline:
                return None
            self.sent += 1
            self.next += 1
            return self.queries[self.next % len(self.queries)]

    def record(self, ms: float, error: str | None, hits: int) -> None:
        """One answered (or failed) request."""
        with self.lock:
            if error:
                self.errors[error] = self.errors.get(error, 0) + 1
            else:
                self.latencies.append(ms)
                self.hits += hits


def client(load: Load, port: int, path: str, timeout: float, query: Callable[[str], str] | None = None) -> None:
    """One user: a keep-alive connection sending one request at a time (`query` makes the query string of an item)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    while (q := load.take()) is not None:
        url = f"{path}?{query(q) if query else urllib.parse.urlencode({'q': q, 'k': 10})}"
        started = time.perf_counter()
        try:
            conn.request("GET", url)
            response = conn.getresponse()
            body = response.read()
            ms = (time.perf_counter() - started) * 1000
            if response.status != 200:
                load.record(ms, f"HTTP {response.status}", 0)
                continue
            load.record(ms, None, len(json.loads(body)["hits"]))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            load.record((time.perf_counter() - started) * 1000, type(exc).__name__, 0)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.close()


def generate(args: argparse.Namespace) -> None:
    """Run the clients and print one JSON object with what they measured."""
    load = Load(dev_queries(), args.requests, args.seconds, args.start)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(load, args.port, "/search", args.timeout))
               for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    ok = len(load.latencies)
    print(json.dumps({"clients": args.clients, "requests": ok + sum(load.errors.values()), "ok": ok,
                      "errors": sum(load.errors.values()), "error_kinds": load.errors, "seconds": round(wall, 3),
                      "requests_per_s": round(ok / wall, 2), **summary(load.latencies),
                      "mean_hits": round(load.hits / ok, 2) if ok else 0,
                      "client_cpu_s": round(cpu, 3), "client_cpu_ms_per_request": round(cpu * 1000 / max(ok, 1), 3)}))


# -- the server and the runs ------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, its threads and its live descendants."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def get_json(port: int, path: str) -> tuple[int, dict]:
    """Status and JSON body of one GET."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def start_server(index_dir: Path, port: int, env: dict[str, str], log: Path, timeout: float,
                 source: Path | None = None) -> subprocess.Popen:
    """`news-search serve` on 127.0.0.1:port (of the code in `source`, default this tree), once /readyz says ready."""
    if source is not None:
        env = {**env, "PYTHONPATH": str(source.resolve())}
    command = [sys.executable, "-m", "search_api.cli", "serve", "--index-dir", str(index_dir.resolve()), "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning"]
    # The access log (one JSON line per request) is part of serving: it is written, to a file.
    server = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                              stderr=open(log, "w"), cwd=source or ROOT)  # noqa: SIM115 - the child owns it
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}; see {log}")
        try:
            if get_json(port, "/readyz")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit(f"the server was not ready after {timeout:.0f} s; see {log}")


def run_load(port: int, server: subprocess.Popen, clients: int, requests: int, seconds: float, start: int) -> dict:
    """One bounded run of the load generator process, with the server's CPU time around it."""
    command = [sys.executable, "-m", "bench.http_load", "generate", "--port", str(port), "--clients", str(clients),
               "--requests", str(requests), "--seconds", str(seconds), "--start", str(start)]
    cpu0 = cpu_seconds(server.pid)
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=seconds + 120)
    cpu = cpu_seconds(server.pid) - cpu0
    if done.returncode != 0:
        raise SystemExit(f"the load generator failed:\n{done.stderr}")
    result = json.loads(done.stdout)
    result["server_cpu_s"] = round(cpu, 3)
    result["server_cpu_ms_per_request"] = round(cpu * 1000 / max(result["ok"], 1), 3)
    result["server_cores_busy"] = round(cpu / result["seconds"], 2)
    return result


def in_process(index_dir: Path, env: dict[str, str], queries: list[str], count: int,
               modes: tuple[str, ...] = ("hybrid", "dense", "keyword")) -> dict:
    """Searcher.search over the same queries, one at a time, in this process (no HTTP): wall and CPU time of
    the calling thread per query, and of the whole process (the embedding runtime's and the searcher's keyword
    threads too), for each mode (the first is the default reported), so each side's share of a hybrid search
    shows."""
    from indexer.settings import Settings
    from search_api.searcher import Searcher, SearchRequest

    settings = Settings.from_env({**os.environ, **env}, index_dir=index_dir)
    searcher = Searcher.open(index_dir, settings)
    out: dict = {"queries": count}
    for mode in modes:
        for q in queries[-20:]:
            searcher.search(SearchRequest(q=q, mode=mode))  # warm-up
        took, cpu, process = [], [], []
        for i in range(count):
            started, cpu0, process0 = time.perf_counter(), time.thread_time(), time.process_time()
            searcher.search(SearchRequest(q=queries[i % len(queries)], mode=mode))
            took.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - cpu0) * 1000)
            process.append((time.process_time() - process0) * 1000)
        cpu_summary = {f"{name}_{k}": v for name, values in (("cpu", cpu), ("process_cpu", process))
                       for k, v in summary(values).items() if k in ("p50_ms", "p99_ms", "mean_ms")}
        out[mode] = {**summary(took), **cpu_summary}
        if mode == modes[0]:
            out.update(out[mode])
    searcher.close()
    return out


def benchmark(args: argparse.Namespace) -> None:
    """Start the server, run each client count, write the result file and print a table."""
    env = dict(pair.split("=", 1) for pair in args.env)
    queries = dev_queries()
    result: dict = {"benchmark": "http_load", "label": args.label, "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "commit": commit(), "uncommitted_code": uncommitted(), "machine": machine_facts(), "index_dir": str(args.index_dir),
                    "server_env": env, "server_code": str(args.source or ROOT), "query": "GET /search?q=<dev query>&k=10 (default mode, group=article)",
                    "queries": len(queries), "bounds": {"requests": args.requests, "seconds": args.seconds}}
    if args.in_process:
        result["in_process"] = in_process(args.index_dir, env, queries, min(args.requests, len(queries)))
    port = free_port()
    log = ROOT / "var" / f"http_load-{args.label}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    server = start_server(args.index_dir, port, env, log, args.ready_timeout, args.source)
    result["server_ready_s"] = round(time.perf_counter() - started, 1)
    try:
        stats = get_json(port, "/stats")[1]
        result["index"] = {k: stats.get(k) for k in ("index_version", "articles", "passages", "faiss")}
        run_load(port, server, 2, args.warmup, 120, len(queries) // 2)  # warm-up: model, caches, FTS pages
        result["runs"] = [run_load(port, server, n, args.requests, args.seconds, 0) for n in args.clients]
        result["server_memory_mb"] = memory_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    out = write_result(result_path(f"http-load-{args.label}", args.variant), result)
    print(table(result))
    print(f"wrote {out}")


def memory_mb(pid: int) -> dict[str, float]:
    """The server's resident memory now and at its peak, and the anonymous (private, not file-backed) part."""
    status = memory_kb(pid)
    return {name: round(status[key] / 1024, 1)
            for name, key in (("resident", "VmRSS"), ("peak_resident", "VmHWM"), ("anonymous", "RssAnon"))}


def uncommitted() -> bool:
    """Whether the served packages differ from the commit recorded (then the figures are not that commit's)."""
    out = subprocess.run(["git", "status", "--porcelain", "--", "indexer", "search_api"], cwd=ROOT,
                         capture_output=True, text=True)
    return bool(out.stdout.strip())


def table(result: dict) -> str:
    """The runs as a Markdown table."""
    lines = ["| clients | requests | errors | req/s | p50 ms | p99 ms | mean ms | server CPU ms/req | client CPU ms/req |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        lines.append(f"| {r['clients']} | {r['ok']} | {r['errors']} | {r['requests_per_s']} | {r['p50_ms']} | "
                     f"{r['p99_ms']} | {r['mean_ms']} | {r['server_cpu_ms_per_request']} | "
                     f"{r['client_cpu_ms_per_request']} |")
    if "in_process" in result:
        ip = result["in_process"]
        for mode in ("hybrid", "dense", "keyword"):
            if mode in ip:
                m = ip[mode]
                lines.append(f"\nin-process Searcher.search, {mode}: wall p50 {m['p50_ms']} / p99 {m['p99_ms']} ms, "
                             f"CPU p50 {m['cpu_p50_ms']} / p99 {m['cpu_p99_ms']} ms (calling thread), "
                             f"{m.get('process_cpu_p50_ms')} / {m.get('process_cpu_p99_ms')} ms (process)")
    return "\n".join(lines)


def generator_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `generate` subcommand (the load generator process) and its bounds, on `parser`."""
    g = parser.add_subparsers(dest="command").add_parser("generate", help="(internal) the load generator process")
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--clients", type=int, required=True)
    g.add_argument("--requests", type=int, required=True)
    g.add_argument("--seconds", type=float, required=True)
    g.add_argument("--start", type=int, default=0, help="offset into the query list")
    g.add_argument("--timeout", type=float, default=30.0, help="seconds before a request counts as an error")
    return g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    generator_parser(parser)
    parser.add_argument("--index-dir", type=Path, help="index folder to serve")
    parser.add_argument("--label", help="the index, in the result file's name (e.g. synth100k)")
    parser.add_argument("--variant", default="", help="how the run differs, in the result file's name (e.g. dense)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="concurrent clients per run")
    parser.add_argument("--requests", type=int, default=1000, help="at most this many requests per run")
    parser.add_argument("--seconds", type=float, default=60.0, help="at most this long per run")
    parser.add_argument("--warmup", type=int, default=60, help="requests before the timed runs")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment of the server (and the in-process run), e.g. NEWSEARCH_THREADS=1")
    parser.add_argument("--source", type=Path, help="serve the code of this folder (e.g. an older commit, unpacked "
                        "with `git archive`) instead of this tree, for before/after figures")
    parser.add_argument("--in-process", action="store_true", help="also time Searcher.search without HTTP (always this tree's code)")
    parser.add_argument("--ready-timeout", type=float, default=600.0, help="seconds to wait for /readyz")
    args = parser.parse_args()
    if args.command == "generate":
        generate(args)
        return
    if not args.index_dir or not args.label:
        parser.error("--index-dir and --label are required")
    benchmark(args)


if __name__ == "__main__":
    main()
