"""Benchmark: in-process query latency of the full Searcher by corpus size, one thread.

For each index (the real Reuters title+body index, 19,043 articles; synthetic full indexes of 100k and 1M
passages from bench/synth_index.py) it opens a Searcher with the default settings (default embedding
backend, the index type the build chose) and runs every dev query (headlines then topics) through
hybrid + article grouping and through dense, interleaved so other processes' load falls on both alike
(the first 20 queries once before, untimed). Records p50/p99/mean ms, requests/s of one thread, the
query embedding's own p50, and the process's resident memory. Writes bench/results/query-latency-<cpu kind>.json,
keeping entries of indexes not measured in this run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT, commit, dev_queries, machine_facts, memory_kb, percentile, result_path
from indexer.embed import Embedder
from indexer.settings import Settings
from search_api.searcher import Searcher, SearchRequest

DEFAULT_INDEXES = {"19k-articles": ROOT / "var" / "reuters-src-title-body", "100k": ROOT / "var" / "synth-100k",
                   "1m": ROOT / "var" / "synth-1m"}
MODES = {"hybrid+grouping": {"mode": "hybrid", "group": "article"}, "dense": {"mode": "dense", "group": "article"}}


def resident_mb() -> float:
    """Anonymous resident memory of this process, MB (what the index and model hold privately)."""
    return round(memory_kb()["RssAnon"] / 1024, 1)


def stats(took: list[float]) -> dict:
    """p50, p99, mean (ms) and the requests/s one thread achieves."""
    return {"p50_ms": round(percentile(took, 50), 2), "p99_ms": round(percentile(took, 99), 2),
            "mean_ms": round(statistics.fmean(took), 2), "requests_per_s": round(1000 * len(took) / sum(took), 1),
            "queries": len(took)}


def measure(index_dir: Path, queries: list[str], embedder: Embedder, k: int) -> dict:
    """Latency of every mode and of query embedding alone over one index."""
    settings = Settings.from_env(index_dir=index_dir)
    before = resident_mb()
    t0 = time.perf_counter()
    searcher = Searcher.open(index_dir, settings, embedder)
    open_s = time.perf_counter() - t0
    try:
        for q in queries[:20]:
            for options in MODES.values():
                searcher.search(SearchRequest(q=q, k=k, **options))
        took: dict[str, list[float]] = {name: [] for name in MODES}
        embed: list[float] = []
        for q in queries:
            for name, options in MODES.items():
                t0 = time.perf_counter()
                searcher.search(SearchRequest(q=q, k=k, **options))
                took[name].append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            embedder.encode_query(q)
            embed.append((time.perf_counter() - t0) * 1000)
        manifest = searcher.version.manifest
        return {"index_version": searcher.name, "articles": manifest["counts"]["articles"],
                "passages": manifest["counts"]["passages"], "faiss_spec": manifest["faiss"]["spec"],
                "nprobe": getattr(searcher.version.vectors.ivf, "nprobe", None),
                "ef_search": getattr(searcher.version.vectors.hnsw, "efSearch", None), "open_s": round(open_s, 1),
                "resident_mb_added": round(resident_mb() - before, 1), "modes": {n: stats(t) for n, t in took.items()},
                "query_embedding": stats(embed)}
    finally:
        searcher.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", nargs="+", default=[f"{k}={v}" for k, v in DEFAULT_INDEXES.items()],
                        help="label=index_dir pairs (default: the Reuters index and var/synth-100k, var/synth-1m)")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=0, help="only the first N dev queries (0: all 559)")
    parser.add_argument("--out", type=Path, help="default bench/results/query-latency-<cpu kind>.json")
    args = parser.parse_args()
    targets = dict(item.split("=", 1) for item in args.index)
    queries = dev_queries()[: args.queries or None]
    embedder = Embedder.from_settings(Settings.from_env())
    args.out = args.out or result_path("query-latency")
    result = json.loads(args.out.read_text()) if args.out.exists() else {"benchmark": "query_latency", "indexes": {}}
    for label, folder in targets.items():
        if not (Path(folder) / "CURRENT").exists():
            print(f"{label}: no index in {folder}, skipped (python -m bench.synth_index --out {folder})")
            continue
        row = measure(Path(folder), queries, embedder, args.k)
        row.update(date=datetime.now(UTC).isoformat(timespec="seconds"), commit=commit(), backend=embedder.backend)
        result["indexes"][label] = row
        result["machine"] = machine_facts()
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        for name, r in row["modes"].items():
            print(f"{label:14} {row['passages']:>9,} passages {row['faiss_spec']:18} {name:16} p50 {r['p50_ms']:6.2f} ms"
                  f"  p99 {r['p99_ms']:6.2f} ms  {r['requests_per_s']:6.1f} req/s", flush=True)


if __name__ == "__main__":
    main()
