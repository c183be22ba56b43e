"""Benchmark: where a `Searcher.search` spends its CPU, step by step (the CPU time of the thread running each
named step, inclusive: a step the searcher runs in its keyword pool is timed there), per mode, over the dev
queries; totals of the calling thread and of the whole process (with the embedding runtime's threads), the
search's wall time, and the wall time the calling thread spends waiting for the keyword pool's results.
Run: `python -m bench.search_breakdown --index-dir DIR --label L`; writes
bench/results/search-breakdown-<label>-<cpu kind>[-<variant>].json and prints a table.
"""

from __future__ import annotations

import argparse
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import commit, machine_facts, result_path, write_result
from bench.http_load import dev_queries, summary
from indexer.settings import Settings

# (step name, where the callable lives, attribute): the store's calls on the version's text and vectors, the
# searcher's own steps, and the pure ranking functions the searcher module calls.
STEPS = (
    ("embed query", "embedder", "encode_query"),
    ("keyword_articles (tantivy + ids)", "text", "keyword_articles"),
    ("dense articles (FAISS + pooling)", "searcher", "_dense_articles"),
    ("FAISS search", "vectors", "search"),
    ("relevance signals", "searcher", "signals"),
    ("word_presence", "text", "word_presence"),
    ("article cosines", "searcher", "_article_cosines"),
    ("rrf", "module", "rrf"),
    ("ranked", "module", "ranked"),
    ("best_per_group (collapse)", "module", "best_per_group"),
    ("hits (passages, highlights)", "searcher", "_hits"),
    ("shown passages and highlights", "searcher", "_shown"),  # since speed2: read beside the presence search
    ("passage shown per hit", "searcher", "_passage_ids"),
    ("best_keyword_passages", "text", "best_keyword_passages"),
    ("first_passages", "text", "first_passages"),
    ("passages (SQLite rows)", "text", "passages"),
    ("highlight", "module", "highlight"),
)


def timed(spent: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, adding its CPU seconds (this thread) to spent[name]."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] += time.thread_time() - started

    return wrapper


def waits(spent: dict[str, float], thread: int) -> Callable[[], None]:
    """Add the wall seconds `thread` spends in Future.result (waiting for the searcher's pool) to
    spent["waiting for the keyword pool (wall)"]; returns the function that undoes it."""
    name, result = "waiting for the keyword pool (wall)", Future.result
    spent[name] = 0.0

    def timed_result(self: Future, timeout: float | None = None) -> Any:
        if threading.get_ident() != thread:
            return result(self, timeout)
        started = time.perf_counter()
        try:
            return result(self, timeout)
        finally:
            spent[name] += time.perf_counter() - started

    Future.result = timed_result  # type: ignore[method-assign]
    return lambda: setattr(Future, "result", result)


def instrument(searcher: Any, module: Any, spent: dict[str, float]) -> list[str]:
    """Wrap each step found on the opened searcher (instance attributes: the searcher is this run's alone) and
    in the searcher's module; returns the steps found."""
    owners = {"embedder": searcher.embedder, "text": searcher.version.text, "vectors": searcher.version.vectors,
              "searcher": searcher, "module": module}
    found = []
    for name, owner, attr in STEPS:
        target = owners[owner]
        if not hasattr(target, attr):
            continue
        spent[name] = 0.0
        setattr(target, attr, timed(spent, name, getattr(target, attr)))
        found.append(name)
    return found


def run(index_dir: Path, modes: list[str], count: int) -> dict:
    """Per mode: total and per-step CPU ms per query (p50, p99, mean) and each step's share of the mean."""
    from search_api import searcher as module
    from search_api.searcher import Searcher, SearchRequest

    searcher = Searcher.open(index_dir, Settings.from_env(index_dir=index_dir))
    spent: dict[str, float] = {}
    steps = instrument(searcher, module, spent)
    undo = waits(spent, threading.get_ident())
    steps.append("waiting for the keyword pool (wall)")
    queries = dev_queries()
    out: dict = {}
    for mode in modes:
        for q in queries[-20:]:
            searcher.search(SearchRequest(q=q, mode=mode))  # warm-up
        per_step: dict[str, list[float]] = {name: [] for name in steps}
        total, process, wall = [], [], []
        for i in range(count):
            for name in steps:
                spent[name] = 0.0
            started, process0, wall0 = time.thread_time(), time.process_time(), time.perf_counter()
            searcher.search(SearchRequest(q=queries[i % len(queries)], mode=mode))
            total.append((time.thread_time() - started) * 1000)
            process.append((time.process_time() - process0) * 1000)
            wall.append((time.perf_counter() - wall0) * 1000)
            for name in steps:
                per_step[name].append(spent[name] * 1000)
        mean = sum(total) / len(total)
        out[mode] = {"total": summary(total), "process": summary(process), "wall": summary(wall), "steps": {
            name: {**{k: v for k, v in summary(ms).items() if k in ("p50_ms", "p99_ms", "mean_ms")},
                   "share_of_mean": round(sum(ms) / len(ms) / mean, 3)}
            for name, ms in per_step.items() if any(ms)}}
    undo()
    searcher.close()
    return out


def table(result: dict) -> str:
    """Each mode's steps as Markdown tables."""
    lines = []
    for mode, m in result["modes"].items():
        t, p, w = m["total"], m.get("process", {}), m.get("wall", {})
        lines += [f"\n{mode}: CPU p50 {t['p50_ms']} / mean {t['mean_ms']} / p99 {t['p99_ms']} ms (calling thread); "
                  f"process {p.get('p50_ms')} / {p.get('mean_ms')} / {p.get('p99_ms')} ms; "
                  f"wall {w.get('p50_ms')} / {w.get('mean_ms')} / {w.get('p99_ms')} ms",
                  "| step (inclusive) | p50 ms | mean ms | p99 ms | share of mean |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {s['p50_ms']} | {s['mean_ms']} | {s['p99_ms']} | {s['share_of_mean']:.0%} |"
                  for name, s in m["steps"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--label", required=True, help="the index, in the result file's name (e.g. synth1m)")
    parser.add_argument("--variant", default="", help="how the run differs, in the result file's name")
    parser.add_argument("--modes", nargs="+", default=["hybrid", "dense", "keyword"])
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    result = {"benchmark": "search_breakdown", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "commit": commit(), "machine": machine_facts(), "index_dir": str(args.index_dir),
              "queries": args.queries, "modes": run(args.index_dir, args.modes, args.queries)}
    out = write_result(result_path(f"search-breakdown-{args.label}", args.variant), result)
    print(table(result))  # noqa: T201 - CLI
    print(f"wrote {out}")  # noqa: T201 - CLI


if __name__ == "__main__":
    main()
