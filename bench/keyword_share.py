"""Benchmark: the store's keyword calls alone on a built index (CPU time of this thread per query, dev queries):
`keyword_articles` (tantivy, the Searcher's 200 candidates), `word_presence` over those 200 (relevance),
and `best_keyword_passages` for 10 of them (FTS5 over passages: the passage shown for a keyword-only hit).
Run: `python -m bench.keyword_share --index-dir DIR --label L`; writes bench/results/keyword-share-<cpu kind>-<label>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.common import commit, machine_facts, result_path, write_result
from bench.http_load import dev_queries, summary
from indexer.settings import Settings
from indexer.storage import open_store
from indexer.storage.base import KeywordWeights
from search_api.ranking.query_words import query_words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    version = open_store(Settings.from_env(index_dir=args.index_dir)).open(verify=False)
    catalog_num = {aid: n for n, aid in enumerate(version.text.catalog().article_ids)}
    cpu: dict[str, list[float]] = {"keyword_articles": [], "word_presence": [], "best_keyword_passages": []}
    for i, text in enumerate(dev_queries()[: args.queries + 20]):
        words = query_words(text)
        t0 = time.thread_time()
        hits = version.text.keyword_articles(words, 200, KeywordWeights())
        t1 = time.thread_time()
        version.text.word_presence(query_words(text, False), [catalog_num[a] for a, _ in hits])
        t2 = time.thread_time()
        version.text.best_keyword_passages(words, [a for a, _ in hits[:10]])
        t3 = time.thread_time()
        if i >= 20:  # after a warm-up
            for name, took in zip(cpu, (t1 - t0, t2 - t1, t3 - t2)):
                took_ms = took * 1000
                cpu[name].append(took_ms)
    version.close()
    result = {"benchmark": "keyword_share", "commit": commit(), "machine": machine_facts(),
              "index_dir": str(args.index_dir), "queries": args.queries,
              "cpu_ms": {name: summary(values) for name, values in cpu.items()}}
    write_result(result_path("keyword-share", args.label), result)
    print(json.dumps(result["cpu_ms"], indent=2))  # noqa: T201 - CLI


if __name__ == "__main__":
    main()
