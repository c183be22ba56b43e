"""Benchmark: the fixed cost of a process. Wall time of `news-search query` from a cold process (caches warm: the
second call), of `news-index build` over corpus/ (51 articles, embedding cache off) and of `news-search serve`
from start to its first 200 on /readyz, each `--runs` times, against the targets of issue 18.

Writes bench/results/fixed-cost-<cpu kind>.json with the CPU, the backend NEWSEARCH_BACKEND=auto chose and the load
average around each run (the machine may be shared). Run: `.venv/bin/python -m bench.fixed_cost`. With `--source DIR`
(repeatable: a code tree, e.g. `git archive <commit> | tar -x -C DIR`) each tree's processes are timed too, in turn in
every round, on the same venv, corpus and caches, so code before and after a change meet the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.common import ROOT, commit, machine_facts, result_path, write_result

CORPUS = ROOT / "corpus"
TARGETS = {"query": 2.0, "build": 10.0, "serve_ready": 3.0}  # seconds (issue 18)
QUERY = "oil prices fall after OPEC meeting"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


Timing = tuple[float, float]  # (wall seconds, CPU seconds: user + system of the process and its threads)


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> Timing:
    """Wall and CPU seconds of a command run to its end (its output discarded; a failure stops the bench).

    On a shared machine the wall time waits for cores others hold; the CPU time barely does, so it bounds what
    the same run takes alone from below (the processes here are mostly single-threaded).
    """
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd[:4])} failed: {err[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime


def source_env(env: dict[str, str], source: Path) -> dict[str, str]:
    """The environment that runs a code tree's modules (it comes first on the path)."""
    return {**env, "PYTHONPATH": str(source)}


def time_build(folder: Path, env: dict[str, str], source: Path = ROOT) -> Timing:
    """A fresh build of corpus/ (embedding cache off, so every passage is embedded) by a code tree."""
    shutil.rmtree(folder, ignore_errors=True)
    return _timed([sys.executable, "-m", "indexer.cli", "build", str(CORPUS), "--index-dir", str(folder), "--quiet"],
                  {**source_env(env, source), "NEWSEARCH_CACHE_DIR": "none"}, source)


def time_query(folder: Path, env: dict[str, str], source: Path = ROOT) -> Timing:
    """One `news-search query` process, start to exit."""
    return _timed([sys.executable, "-m", "search_api.cli", "query", QUERY, "--index-dir", str(folder), "-k", "10"],
                  source_env(env, source), source)


def time_serve(folder: Path, env: dict[str, str], source: Path = ROOT, limit: float = 300.0) -> Timing:
    """`news-search serve` from spawn to its first 200 on /readyz, and the CPU seconds it had used by then (from
    /proc); the server is stopped after."""
    port = _free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "search_api.cli", "serve", "--index-dir", str(folder), "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            env=source_env(env, source), cwd=source,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < limit:
            if proc.poll() is not None:
                raise SystemExit(f"news-search serve exited with {proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return time.perf_counter() - started, _cpu_seconds(proc.pid)
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise SystemExit(f"news-search serve was not ready within {limit} s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(timings: list[Timing], target: float) -> dict:
    """The runs' wall and CPU seconds, their medians and range, and whether the median wall time meets the target."""
    wall = [t[0] for t in timings]
    median = statistics.median(wall)
    return {"runs": [round(s, 2) for s in wall], "median": round(median, 2), "min": round(min(wall), 2),
            "max": round(max(wall), 2), "cpu_seconds": [round(t[1], 2) for t in timings],
            "cpu_median": round(statistics.median(t[1] for t in timings), 2), "target": target, "met": median <= target}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", type=Path, action="append", default=[],
                        help="another code tree to time beside this one (named by its folder's name)")
    parser.add_argument("--out", type=Path, help="default bench/results/fixed-cost-<cpu kind>.json")
    args = parser.parse_args()
    env = {**os.environ}
    env.pop("NEWSEARCH_INDEX_DIR", None)
    facts = machine_facts()
    picked = _auto_choice()  # measured now if this machine has no choice yet
    trees = {"this": ROOT, **{source.resolve().name: source.resolve() for source in args.source}}
    work = Path(tempfile.mkdtemp(prefix="fixed-cost-"))
    runs = {label: {name: [] for name in TARGETS} for label in trees}
    loads = []
    try:
        for label, tree in trees.items():
            time_build(work / label / "index", env, tree)  # warms every cache and leaves the index to query
            time_query(work / label / "index", env, tree)  # the first query after a build: caches warm from here
        for _ in range(args.runs):  # interleaved, so a change in the machine's load falls on every target and tree
            for label, tree in trees.items():
                loads.append(os.getloadavg()[0])
                index, timed = work / label / "index", runs[label]
                timed["build"].append(time_build(work / label / "build", env, tree))
                timed["query"].append(time_query(index, env, tree))
                timed["serve_ready"].append(time_serve(index, env, tree))
                print(label, {k: v[-1] for k, v in timed.items()}, flush=True)
        loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"benchmark": "fixed_cost", "date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit(),
              "machine_facts": facts, "load_average_1min": [round(x, 2) for x in loads],
              "backend": {"auto": picked.backend, "openvino_precision": picked.openvino_precision,
                          "reason": picked.reason, "set": os.environ.get("NEWSEARCH_BACKEND", "(unset: auto)")},
              "corpus": str(CORPUS.relative_to(ROOT)), "query": QUERY,
              "targets": {name: summary(runs["this"][name], TARGETS[name]) for name in TARGETS},
              "sources": {label: {"path": str(tree), "targets": {name: summary(runs[label][name], TARGETS[name])
                                                                  for name in TARGETS}}
                          for label, tree in trees.items() if label != "this"}}
    write_result(args.out or result_path("fixed-cost", facts=facts), result)
    print(json.dumps({"this": result["targets"], **{k: v["targets"] for k, v in result["sources"].items()}},
                     indent=2))


def _auto_choice():  # noqa: ANN202 - indexer.doctor.Choice, imported here to keep --help light
    """What NEWSEARCH_BACKEND=auto runs here (measured now if this machine has no choice yet)."""
    from indexer.doctor import chosen
    from indexer.embed import Embedder
    from indexer.settings import Settings

    embedder = Embedder.from_settings(Settings.from_env())
    return chosen(embedder.model_path, embedder.fingerprint, embedder.export_dir, embedder.threads,
                  embedder.batch_size, embedder.requested[1])


if __name__ == "__main__":
    main()
