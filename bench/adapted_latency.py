"""Benchmark (issue 13): what an adapted query encoder costs a server. Each model's query runtimes are loaded in a
process of their own (resident memory after loading), then every dev query goes through `Embedder.encode_query`,
rounds interleaved between the base model and the adapted one (short queries go to the base runtime inside it).
Writes bench/results/adapted-latency-<cpu kind>.json.
Run: `.venv/bin/python -m bench.adapted_latency --model MODEL_DIR`
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import EVAL, commit, machine_facts, memory_kb, result_path, write_result
from search_api.evaluation.harness import load_queries


def measure(model: str, rounds: int) -> dict:
    """In this process: load the query runtimes of `model` ('' for the base one), then time every dev query."""
    from indexer.embed import Embedder
    from indexer.settings import Settings

    before = memory_kb()
    embedder = Embedder.from_settings(Settings.from_env(model=model))
    embedder.load(queries=True)
    loaded = memory_kb()
    queries = [t for name in ("headlines", "topics") for t in load_queries(EVAL / f"{name}-queries.jsonl").values()]
    wall, cpu = [], []
    for _ in range(rounds):
        for text in queries:
            t0, c0 = time.perf_counter(), time.process_time()
            embedder.encode_query(text)
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    short = sum(embedder.is_short(q) for q in queries)
    return {"model": embedder.name, "queries": len(queries), "to_base_runtime": short,
            "rss_mb_loaded": round(loaded["VmRSS"] / 1024), "rss_mb_added_by_load": round((loaded["VmRSS"] - before["VmRSS"]) / 1024),
            "p50_ms": round(statistics.median(wall), 3), "p99_ms": round(sorted(wall)[int(0.99 * len(wall))], 3),
            "cpu_ms_mean": round(statistics.fmean(cpu), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="the adapted model folder")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved runs of each model")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, 1)))
        return
    runs: dict[str, list[dict]] = {"base": [], "adapted": []}
    for _ in range(args.rounds):
        for label, model in (("base", ""), ("adapted", str(args.model))):
            out = subprocess.run([sys.executable, "-m", "bench.adapted_latency", "--child", model],
                                 capture_output=True, text=True, check=True).stdout
            runs[label].append(json.loads(out.strip().splitlines()[-1]))
    result = {"benchmark": "adapted_latency", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "commit": commit(), "machine": machine_facts(), "model": str(args.model), "runs": runs}
    for label, found in runs.items():
        print(f"{label}: p50 {[r['p50_ms'] for r in found]} ms, CPU {[r['cpu_ms_mean'] for r in found]} ms/query, "
              f"resident {[r['rss_mb_loaded'] for r in found]} MB, to the base runtime {found[0]['to_base_runtime']}"
              f" of {found[0]['queries']}")
    print(write_result(result_path("adapted-latency"), result))


if __name__ == "__main__":
    main()
