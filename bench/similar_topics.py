"""Related coverage (GET /articles/{id}/similar) against a keyword more-like-this baseline: for a fixed sample
of Reuters articles with a topic code, the share of the top 10 related articles (the article and its wire
copies left out) that share a Reuters topic with it. Needs an index built with stories (docs/stories.md).
Writes bench/results/similar-topics-<cpu kind>.json."""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import Counter
from pathlib import Path

from bench.common import machine_facts, result_path, write_result
from bench.stories_data import STORIES_INDEX
from indexer.settings import Settings
from search_api.evaluation.significance import paired
from search_api.ranking.highlight import words_of
from search_api.searcher import Searcher, SearchRequest
from search_api.server.stories import similar

TOP = 10
MLT_TERMS = 25  # Elasticsearch's more_like_this defaults: 25 query terms, min_term_freq 2, min_doc_freq 5
MLT_MIN_TF, MLT_MIN_DF = 2, 5


def mlt_query(text: str, df: Counter, n: int) -> str:
    """The article's MLT_TERMS words of highest tf-idf (as Elasticsearch's more_like_this picks them)."""
    tf = Counter(words_of(text))
    scored = [(c * math.log(n / df[w]), w) for w, c in tf.items() if c >= MLT_MIN_TF and df[w] >= MLT_MIN_DF]
    if not scored:  # a short article: every word once
        scored = [(math.log(n / max(df[w], 1)), w) for w in tf if df[w] >= MLT_MIN_DF]
    return " ".join(w for _, w in sorted(scored, key=lambda p: (-p[0], p[1]))[:MLT_TERMS]) or text[:200]


def main() -> None:
    """Run both on the sample and write the result file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index-dir", type=Path, default=STORIES_INDEX)
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    machine = machine_facts()
    searcher = Searcher.open(args.index_dir, Settings(index_dir=args.index_dir))
    catalog = searcher.version.text.catalog()
    articles = searcher.version.text.articles(catalog.article_ids[1:])
    rows = [(a.id, a.title, a.body, json.dumps(a.meta), group) for a, group in zip(articles, catalog.dup_groups[1:])]
    topics = {r[0]: set(json.loads(r[3]).get("topics") or []) for r in rows}
    group_of = {r[0]: r[4] or r[0] for r in rows}
    copies: dict[str, set[str]] = {}
    for aid, group in group_of.items():
        copies.setdefault(group, set()).add(aid)
    texts = {r[0]: f"{r[1]}\n{r[2]}" for r in rows}
    df = Counter(w for t in texts.values() for w in set(words_of(t)))
    sample = random.Random(17).sample(sorted(a for a, t in topics.items() if t), args.sample)
    shares: dict[str, list[float]] = {"similar": [], "keyword_mlt": []}
    seconds: dict[str, float] = {"similar": 0.0, "keyword_mlt": 0.0}
    for aid in sample:
        own = copies[group_of[aid]]
        t0 = time.perf_counter()
        related = [h["article_id"] for h in similar(searcher, aid, TOP)]
        seconds["similar"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        ranking = searcher.ranking(SearchRequest(q=mlt_query(texts[aid], df, len(rows)), k=TOP, mode="keyword"))
        mlt = [key for key, _ in ranking if key not in own][:TOP]
        seconds["keyword_mlt"] += time.perf_counter() - t0
        for name, hits in (("similar", related), ("keyword_mlt", mlt)):
            shares[name].append(sum(bool(topics[h] & topics[aid]) for h in hits) / TOP)
    comparison = paired(shares["similar"], shares["keyword_mlt"]).as_dict()
    report = {"machine": machine, "index": str(args.index_dir), "index_version": searcher.name,
              "sample": len(sample), "top": TOP, "share_same_topic": comparison,
              "ms_per_article": {k: round(1000 * v / len(sample), 1) for k, v in seconds.items()}}
    searcher.close()
    out = args.out or result_path("similar-topics", facts=machine)
    write_result(out, report)
    print(json.dumps(report["share_same_topic"]), report["ms_per_article"])


if __name__ == "__main__":
    main()
