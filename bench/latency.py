"""Benchmark: in-process query latency over the full Reuters index (title + body), every dev query.

Dense alone (one hit per article) against hybrid with filters and grouping (a date window holding
about half the corpus and a source filter), plus keyword alone and hybrid without filters. Each
query runs `--repeat` times per configuration, interleaved so that load from other processes falls
on all of them alike (the first 20 queries run once before, as warm-up). Writes
bench/results/latency-reuters-<cpu kind>.json (p50, p99, mean in ms) and prints a table. Needs the index of
`bench.eval_reuters` (built if missing).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, date, datetime

from bench.common import REUTERS, commit, dev_queries, index_dir, machine_facts, percentile, result_path, write_result
from indexer.embed import Embedder
from indexer.settings import Settings
from search_api.evaluation.harness import ensure_index
from search_api.searcher import Searcher, SearchRequest

SOURCE = "Reuters newswire 1987 (Reuters-21578, Distribution 1.0)"
CONFIGS = {
    "dense": {"mode": "dense"},
    "keyword": {"mode": "keyword"},
    "hybrid": {"mode": "hybrid"},
    "hybrid+filters": {"mode": "hybrid", "since": date(1987, 3, 1), "until": date(1987, 4, 15), "sources": (SOURCE,)},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of each query per configuration")
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    settings = Settings.from_env(index_dir=index_dir("title+body"), fields="title+body")
    embedder = Embedder.from_settings(settings)
    ensure_index(sorted(REUTERS.glob("corpus-*.jsonl.gz")), settings, embedder, progress=True)
    searcher = Searcher.open(settings.index_dir, settings, embedder)
    queries = dev_queries()
    took: dict[str, list[float]] = {name: [] for name in CONFIGS}
    hits: dict[str, int] = {name: 0 for name in CONFIGS}
    for q in queries[:20]:
        for options in CONFIGS.values():
            searcher.search(SearchRequest(q=q, k=args.k, **options))  # warm-up: model, caches, FTS pages
    for q in queries:
        for _ in range(args.repeat):
            for name, options in CONFIGS.items():
                t0 = time.perf_counter()
                result = searcher.search(SearchRequest(q=q, k=args.k, **options))
                took[name].append((time.perf_counter() - t0) * 1000)
                hits[name] += len(result.hits)
    rows = {name: {"p50_ms": round(percentile(v, 50), 2), "p99_ms": round(percentile(v, 99), 2),
                   "mean_ms": round(statistics.fmean(v), 2), "queries": len(v), "mean_hits": round(hits[name] / len(v), 2)}
            for name, v in took.items()}
    dense = rows["dense"]
    result = {"benchmark": "latency", "date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit(),
              "machine": machine_facts(), "index_version": searcher.name,
              "articles": searcher.version.manifest["counts"]["articles"], "k": args.k, "repeat": args.repeat,
              "filters": {k: str(v) for k, v in CONFIGS["hybrid+filters"].items()}, "configs": rows,
              "hybrid_filters_over_dense": {"p50": round(rows["hybrid+filters"]["p50_ms"] / dense["p50_ms"], 2),
                                            "p99": round(rows["hybrid+filters"]["p99_ms"] / dense["p99_ms"], 2)}}
    searcher.close()
    write_result(result_path("latency-reuters", facts=result["machine"]), result)
    print("| configuration | p50 ms | p99 ms | mean ms |\n|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['p50_ms']} | {r['p99_ms']} | {r['mean_ms']} |")
    print(f"hybrid+filters / dense: p50 x{result['hybrid_filters_over_dense']['p50']}, "
          f"p99 x{result['hybrid_filters_over_dense']['p99']}")


if __name__ == "__main__":
    main()
