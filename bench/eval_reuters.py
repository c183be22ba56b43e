"""Benchmark: retrieval quality on the dev sets over the full Reuters-21578 corpus (19,043 articles).

headlines (500 known-item queries, bodies indexed without titles) and topics (59 subject-code queries,
title + body), each mode through the real Searcher with the code of `news-search eval` (means with 95%
bootstrap intervals; `--half tune|check` scores one half of bench/dev_split.json). Writes
bench/results/eval-<set>[-<half>]-<cpu kind>[-<tag>].json and prints one Markdown table per set. The indexes are built
once into var/bench/eval-reuters-<fields> and reused while corpus and chunking are unchanged; set
NEWSEARCH_CACHE_DIR to share an embedding cache. Run: `.venv/bin/python -m bench.eval_reuters`
(`--set rrf_k=30` etc. for ablations).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from bench.common import REUTERS, SETS, commit, dev_set, index_dir, machine_facts, result_path, write_result
from indexer.embed import Embedder
from indexer.settings import Settings
from search_api.evaluation.harness import COLLAPSE_CHOICES, HALVES, evaluate_corpus, table


def run_set(name: str, modes: list[str], assignments: list[str], collapse: str, embedder: Embedder,
            index_tag: str = "", half: str | None = None) -> dict:
    """Build or reuse the set's index and score every mode."""
    fields = SETS[name]
    settings = Settings.from_env(index_dir=index_dir(fields, index_tag), fields=fields).assign(assignments)
    queries, qrels = dev_set(name, half)
    result, _ = evaluate_corpus(sorted(REUTERS.glob("corpus-*.jsonl.gz")), settings, embedder, queries, qrels,
                                modes, collapse, progress=True)
    split = {"file": "bench/dev_split.json", "set": name, "half": half} if half else None
    return {"benchmark": "eval_reuters", "dev_set": name, "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": commit(), "machine": machine_facts(),
            "overrides": assignments, "split": split, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--modes", nargs="+", choices=["dense", "keyword", "hybrid"],
                        default=["dense", "keyword", "hybrid"])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="setting override")
    parser.add_argument("--collapse", choices=COLLAPSE_CHOICES, default="on",
                        help="on (default): the hits as served; off: every article in its own place")
    parser.add_argument("--half", choices=HALVES, help="score one half of bench/dev_split.json (default: all)")
    parser.add_argument("--tag", default="", help="suffix of the result files, for ablations")
    parser.add_argument("--index-tag", default="", help="suffix of the index folders, to keep e.g. another "
                        "backend's indexes beside the default ones instead of rebuilding over them")
    args = parser.parse_args()
    embedder = Embedder.from_settings(Settings.from_env())
    for name in args.sets:
        result = run_set(name, args.modes, args.set, args.collapse, embedder, args.index_tag, args.half)
        what = f"eval-{name}-{args.half}" if args.half else f"eval-{name}"
        out = write_result(result_path(what, args.tag, result["machine"]), result)
        print(table(result, out.stem))
        print()


if __name__ == "__main__":
    main()
