"""Benchmark: the store's keyword calls alone on a built index (CPU time of this thread per query, dev queries):
`keyword_articles` (tantivy, the Searcher's 200 candidates), `word_presence` over those 200 (relevance),
and `best_keyword_passages` for 10 of them (FTS5 over passages: the passage shown for a keyword-only hit);
`word_presence_per_word` is the presence as computed before (one tantivy search per word), timed in the same run
and checked to give the same matrix. With --keyword-dir (a bare keyword/ folder, e.g. a copy of the 1M synthetic
index's) only the tantivy calls are timed.
Run: `python -m bench.keyword_share --index-dir DIR --label L`; writes bench/results/keyword-share-<cpu kind>-<label>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tantivy

from bench.common import commit, machine_facts, result_path, write_result
from bench.http_load import dev_queries, summary
from indexer.settings import Settings
from indexer.storage import open_store
from indexer.storage.base import KeywordWeights
from indexer.storage.tantivy_keyword import KeywordIndex, terms_of
from search_api.ranking.query_words import query_words


def presence_per_word(index: KeywordIndex, words: Sequence[str], keys: Sequence[int]) -> np.ndarray:
    """KeywordIndex.presence's matrix as it was computed before: one search per word over the keys."""
    t, present = tantivy, np.zeros((len(words), len(keys)), dtype=bool)
    at: dict[int, list[int]] = {}
    for i, k in enumerate(keys):
        at.setdefault(k, []).append(i)
    among = t.Query.term_set_query(index.schema, "key", list(keys)) if keys else None
    for i, word in enumerate(words):
        terms = terms_of(word)
        if not terms or among is None or not min(index.searcher.doc_freq("text", term) for term in terms):
            continue
        query = t.Query.boolean_query([(t.Occur.Must, t.Query.term_query(index.schema, "text", term))
                                       for term in terms] + [(t.Occur.Must, among)])
        hits = index.searcher.search(query, len(keys), count=False).hits
        for key in index.searcher.fast_field_values("key", [h[1] for h in hits]):
            present[i, at[int(key)]] = True
    return present


def tantivy_only(folder: Path, queries: Sequence[str]) -> tuple[dict[str, list[float]], int]:
    """CPU ms of the keyword index's own calls per query, and the queries whose presence matrices differ."""
    index = KeywordIndex(folder)
    cpu: dict[str, list[float]] = {"search": [], "presence": [], "presence_per_word": []}
    differ = 0
    for i, text in enumerate(queries):
        t0 = time.thread_time()
        keys = [k for k, _ in sorted(index.search(query_words(text), 200, KeywordWeights()), key=lambda h: -h[1])]
        t1 = time.thread_time()
        _, _, present = index.presence(query_words(text, False), keys[:200])
        t2 = time.thread_time()
        before = presence_per_word(index, query_words(text, False), keys[:200])
        t3 = time.thread_time()
        differ += not np.array_equal(present, before)
        if i >= 20:  # after a warm-up
            for name, took in zip(cpu, (t1 - t0, t2 - t1, t3 - t2)):
                cpu[name].append(took * 1000)
    return cpu, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path)
    parser.add_argument("--keyword-dir", type=Path, help="time only a bare keyword index's calls")
    parser.add_argument("--label", required=True)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    if args.keyword_dir is not None:
        cpu, differ = tantivy_only(args.keyword_dir, dev_queries()[: args.queries + 20])
        report(args.keyword_dir, args, cpu, differ)
        return
    version = open_store(Settings.from_env(index_dir=args.index_dir)).open(verify=False)
    catalog_num = {aid: n for n, aid in enumerate(version.text.catalog().article_ids)}
    cpu: dict[str, list[float]] = {"keyword_articles": [], "word_presence": [], "best_keyword_passages": [],
                                   "word_presence_per_word": []}
    key_of, _ = version.text._keys()
    differ = 0
    for i, text in enumerate(dev_queries()[: args.queries + 20]):
        words = query_words(text)
        t0 = time.thread_time()
        hits = version.text.keyword_articles(words, 200, KeywordWeights())
        t1 = time.thread_time()
        all_words, numbers = query_words(text, False), [catalog_num[a] for a, _ in hits]
        _, _, present = version.text.word_presence(all_words, numbers)
        t2 = time.thread_time()
        version.text.best_keyword_passages(words, [a for a, _ in hits[:10]])
        t3 = time.thread_time()
        before = presence_per_word(version.text.keyword, all_words, key_of[numbers].tolist())
        t4 = time.thread_time()
        differ += not np.array_equal(present, before)
        if i >= 20:  # after a warm-up
            for name, took in zip(cpu, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                took_ms = took * 1000
                cpu[name].append(took_ms)
    version.close()
    report(args.index_dir, args, cpu, differ)


def report(folder: Path, args: argparse.Namespace, cpu: dict[str, list[float]], differ: int) -> None:
    """Write and print the result file."""
    result = {"benchmark": "keyword_share", "commit": commit(), "machine": machine_facts(),
              "index_dir": str(folder), "queries": args.queries, "presence_differs": differ,
              "cpu_ms": {name: summary(values) for name, values in cpu.items()}}
    write_result(result_path("keyword-share", args.label), result)
    print(json.dumps(result["cpu_ms"], indent=2))  # noqa: T201 - CLI


if __name__ == "__main__":
    main()
