"""Benchmark: the dev-set eval of `bench/eval_reuters.py` on index folders given as they are (no build, no
marker check), so two code trees can be scored on the same passages and vectors: run it with PYTHONPATH set
to the tree to score, e.g. main's FTS5 keyword side against this tree's tantivy on copies of the same
full-Reuters indexes (a copy opened here gets its keyword index once, as any version written before it).
Writes bench/results/<prefix>-<set>-<half>-<tag>.json (one file per set).
Run: `PYTHONPATH=. python -m bench.eval_index --half check --index headlines=DIR --index topics=DIR --tag x`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.build_reuters import commit
from bench.eval_reuters import SETS, dev_set
from bench.machine import machine_facts
from indexer.embed import Embedder
from indexer.settings import Settings
from search_api.evaluate import HALVES, evaluate, table
from search_api.searcher import Searcher

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half", choices=HALVES, required=True)
    parser.add_argument("--index", action="append", required=True, metavar="SET=DIR", help="index folder of a set")
    parser.add_argument("--tag", required=True, help="names the result files")
    parser.add_argument("--prefix", default="tantivy-eval")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"folder of the result files (default {RESULTS})")
    args = parser.parse_args()
    embedder = Embedder.from_settings(Settings.from_env())
    for name, folder in (pair.split("=", 1) for pair in args.index):
        index = Path(folder)
        settings = Settings.from_env(index_dir=index, fields=SETS[name])
        queries, qrels = dev_set(name, args.half)
        started = time.perf_counter()
        searcher = Searcher.open(index, settings, embedder)
        opened = time.perf_counter() - started
        try:
            result = evaluate(searcher, queries, qrels, ["dense", "keyword", "hybrid"])
        finally:
            searcher.close()
        result.update({"benchmark": "eval_index", "index_dir": str(index), "half": args.half, "open_s": round(opened, 1),
                       "commit": commit(), "machine": machine_facts()})
        out = args.out / f"{args.prefix}-{name}-{args.half}-{args.tag}.json"
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(table(result, f"{name} {args.half} {args.tag}"))  # noqa: T201 - CLI


if __name__ == "__main__":
    main()
