"""Benchmark: the dev-set eval of `bench/eval_reuters.py` on index folders given as they are (no build, no
marker check), so two code trees can be scored on the same passages and vectors: run it with PYTHONPATH set
to the tree to score, e.g. main's FTS5 keyword side against this tree's tantivy on copies of the same
full-Reuters indexes (a copy opened here gets its keyword index once, as any version written before it).
Writes bench/results/<prefix>-<set>-<half>-<cpu kind>-<tag>.json (one file per set).
Run: `PYTHONPATH=. python -m bench.eval_index --half check --index headlines=DIR --index topics=DIR --tag x`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.common import SETS, commit, dev_set, machine_facts, result_path, write_result
from indexer.embed import Embedder
from indexer.settings import Settings
from search_api.evaluation.harness import HALVES, evaluate, table
from search_api.searcher import Searcher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half", choices=HALVES, required=True)
    parser.add_argument("--index", action="append", required=True, metavar="SET=DIR", help="index folder of a set")
    parser.add_argument("--tag", required=True, help="names the result files")
    parser.add_argument("--prefix", default="tantivy-eval")
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
        write_result(result_path(f"{args.prefix}-{name}-{args.half}", args.tag), result)
        print(table(result, f"{name} {args.half} {args.tag}"))  # noqa: T201 - CLI


if __name__ == "__main__":
    main()
