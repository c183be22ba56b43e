"""Benchmark: does the Milvus store rank as the local store does? Builds the same corpus into both (local: FAISS +
SQLite FTS5; Milvus: Milvus Lite in-process), runs the same queries through the same Searcher in dense, keyword and
hybrid modes, and compares the top-10 articles: overlap@10 = shared articles / 10 per query, mean with a 95%
bootstrap interval. Corpora: corpus/ (queries: its titles and the topic queries) and a Reuters sample: the known-item
articles of the first --reuters headline dev queries, body only (queries: those headlines, whose known item also
gives MRR@10 for each store, and the topic queries). Nothing is tuned on these queries.

Writes bench/results/milvus-parity-<cpu kind>.json. Run:
`NEWSEARCH_CACHE_DIR=/work/var-shared/cache .venv/bin/python -m bench.milvus_parity [--reuters 400]`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.common import ROOT, commit, machine_facts, result_path, write_result
from indexer.embed import Embedder
from indexer.pipeline import build
from indexer.settings import Settings
from indexer.storage import open_store
from search_api.evaluation.significance import bootstrap_interval, paired
from search_api.searcher import Searcher, SearchRequest

MODES = ("dense", "keyword", "hybrid")
K = 10
SHARED = ROOT.parent / "shared" / "data"
REUTERS = SHARED / "reuters21578"
EVAL = SHARED / "eval"


def overlap(a: Sequence[str], b: Sequence[str], k: int = K) -> float:
    """Share of the top-k of `a` also in the top-k of `b` (1.0 when both are empty)."""
    a, b = list(a)[:k], list(b)[:k]
    size = max(len(a), len(b))
    return len(set(a) & set(b)) / size if size else 1.0


def build_both(paths: Sequence[Path], base: Settings, embedder: Embedder, folder: Path) -> dict[str, Searcher]:
    """The corpus built into a local store and a Milvus Lite store under `folder`; a Searcher over each."""
    searchers = {}
    for store in ("local", "milvus"):
        settings = base.replace(index_dir=folder / store, store=store)
        build(list(paths), settings, embedder, progress=False)
        searchers[store] = Searcher(open_store(settings).open(), embedder, settings)
    return searchers


def top_articles(searcher: Searcher, query: str, mode: str) -> list[str]:
    """The top-K article ids of one query in one mode (default collapse, no recency)."""
    return [key for key, _ in searcher.ranking(SearchRequest(q=query, k=K, mode=mode))][:K]  # type: ignore[arg-type]


def compare(searchers: dict[str, Searcher], queries: Sequence[str]) -> dict[str, dict]:
    """Overlap@10 of Milvus with local for each mode: mean, 95% interval, share of queries at >= 0.9; and the
    rankings themselves (for MRR)."""
    out = {}
    for mode in MODES:
        started = time.perf_counter()
        runs = {name: [top_articles(s, q, mode) for q in queries] for name, s in searchers.items()}
        scores = [overlap(a, b) for a, b in zip(runs["local"], runs["milvus"])]
        low, high = bootstrap_interval(scores)
        out[mode] = {"queries": len(queries), "overlap_at_10": round(float(np.mean(scores)), 4),
                     "interval_95": [round(low, 4), round(high, 4)],
                     "share_at_least_0.9": round(float(np.mean([s >= 0.9 for s in scores])), 4),
                     "identical_top10": round(float(np.mean([a == b for a, b in zip(runs["local"], runs["milvus"])])), 4),
                     "seconds": round(time.perf_counter() - started, 1), "runs": runs}
    return out


def headline_queries(n: int) -> dict[str, str]:
    """The first `n` headline dev queries: text -> the id of its known-item article."""
    relevant: dict[str, str] = {}
    with open(EVAL / "headlines-qrels.tsv", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            qid, doc, _ = line.rstrip("\n").split("\t")
            relevant.setdefault(qid, doc)
    queries = {}
    for line in open(EVAL / "headlines-queries.jsonl", encoding="utf-8"):
        q = json.loads(line)
        if q["_id"] in relevant and len(queries) < n:
            queries[q["text"]] = relevant[q["_id"]]
    return queries


def reuters_sample(ids: set[str], folder: Path) -> Path:
    """The Reuters articles `ids` as a JSONL file in `folder` (never in the repository)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "reuters-sample.jsonl"
    with open(path, "w", encoding="utf-8") as dst:
        for part in sorted(REUTERS.glob("corpus-*.jsonl.gz")):
            with gzip.open(part, "rt", encoding="utf-8") as src:
                dst.writelines(line for line in src if json.loads(line)["id"] in ids)
    return path


def topic_queries() -> list[str]:
    """The topic dev queries' texts (short subject phrases)."""
    return [json.loads(line)["text"] for line in open(EVAL / "topics-queries.jsonl", encoding="utf-8")]


def reciprocal_ranks(runs: Sequence[Sequence[str]], known: Sequence[str]) -> list[float]:
    """1/rank of each query's known item in its top-K (0 if absent)."""
    return [1.0 / (list(run).index(item) + 1) if item in run else 0.0 for run, item in zip(runs, known)]


def summary(results: dict[str, dict]) -> dict[str, dict]:
    """The figures without the rankings."""
    return {mode: {k: v for k, v in r.items() if k != "runs"} for mode, r in results.items()}


def run(reuters: int, folder: Path, embedder: Embedder, base: Settings) -> dict:
    """Both corpora, both stores, every mode."""
    report: dict = {}
    corpus = build_both([ROOT / "corpus"], base, embedder, folder / "corpus")
    titles = sorted(set(corpus["local"].version.text.titles().values()))
    report["corpus"] = summary(compare(corpus, titles + topic_queries()))
    headlines = headline_queries(reuters)
    # Body only, as the headline dev set prescribes (with titles indexed its queries would match them verbatim).
    sample = build_both([reuters_sample(set(headlines.values()), folder / "data")], base.replace(fields="body"),
                        embedder, folder / "reuters")
    results = compare(sample, list(headlines) + topic_queries())
    report["reuters_sample"] = {"articles": len(set(headlines.values())), "fields": "body",
                                "headline_queries": len(headlines), **summary(results)}
    for mode in MODES:
        runs = results[mode]["runs"]
        rr = {name: reciprocal_ranks(r[: len(headlines)], list(headlines.values())) for name, r in runs.items()}
        report["reuters_sample"][mode]["mrr_at_10_headlines_milvus_minus_local"] = paired(rr["milvus"],
                                                                                          rr["local"]).as_dict()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuters", type=int, default=400, help="headline queries whose known-item articles make the Reuters sample")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    machine = machine_facts()
    base = Settings.from_env()
    embedder = Embedder.from_settings(base)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="milvus-parity-") as tmp:
        report = run(args.reuters, Path(tmp), embedder, base)
    report = {"benchmark": "milvus_parity", "commit": commit(), "machine": machine, "k": K,
              "seconds": round(time.perf_counter() - started, 1), **report}
    out = write_result(args.out or result_path("milvus-parity", facts=machine), report)
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
