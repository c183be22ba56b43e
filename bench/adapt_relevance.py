"""Benchmark: does the relevance calibration (search_api/relevance.py, fitted on the base model) carry to an adapted
model? Brier score of the top-10 hits and the share of relevant top-10 hits hidden under the default floor, base
vs adapted, on the indexes bench/adapt_reuters.py built (run it first; `--full`: its whole-corpus ones). Measures
only.
Writes bench/results/adapt-relevance-<tag>-<cpu kind>.json.
Run: `.venv/bin/python -m bench.adapt_relevance --model MODEL_DIR --work WORK [--half check] [--tag T]`
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from bench.adapt_reuters import dev_half
from bench.calibrate_relevance import DEPTH, calibration_report, collect, floor_effects
from bench.common import SETS, commit, machine_facts, result_path, write_result
from indexer.embed import Embedder
from indexer.settings import Settings
from search_api.searcher import Searcher


def records_of(index: Path, fields: str, model: Path | None, queries: dict[str, str], qrels: dict) -> dict:
    """Relevance signals and labels of every ranked hit of each judged query, over one built index."""
    settings = Settings.from_env(index_dir=index, fields=fields, model=str(model) if model else "", max_k=DEPTH)
    searcher = Searcher.open(index, settings, Embedder.from_settings(settings))
    try:
        return collect(searcher, queries, qrels)
    finally:
        searcher.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="the adapted model folder")
    parser.add_argument("--work", type=Path, required=True, help="bench/adapt_reuters.py's --work folder")
    parser.add_argument("--half", choices=("tune", "check"), default="check")
    parser.add_argument("--full", action="store_true", help="the whole-corpus indexes (adapt_reuters.py --full)")
    parser.add_argument("--tag", default="reduced")
    args = parser.parse_args()
    floor = Settings().min_relevance
    out = {"benchmark": "adapt_relevance", "date": datetime.now(UTC).isoformat(timespec="seconds"),
           "commit": commit(), "machine": machine_facts(), "model": str(args.model), "half": args.half, "full": args.full,
           "floor": floor, "sets": {}}
    for name, fields in SETS.items():
        queries, qrels = dev_half(name, args.half)
        for label, model in (("base", None), ("adapted", args.model)):
            corpus = "full" if args.full else args.half
            index = args.work / f"{model.name if model else 'base'}-{corpus}-{fields.replace('+', '-')}"
            records = records_of(index, fields, model, queries, qrels)
            found = {"calibration": calibration_report(records), **floor_effects(records, floor)}
            out["sets"].setdefault(name, {})[label] = found
            cal = found["calibration"]
            print(f"{name} {label}: Brier {cal['brier']} (base rate {cal['brier_base_rate']}), relevant "
                  f"{cal['relevant_share']} mean relevance {cal['mean_relevance']}, relevant top-10 hits under "
                  f"{floor}: {found['recall_lost']}, flagged {found['flagged']}")
    print(f"wrote {write_result(result_path(f'adapt-relevance-{args.tag}'), out, indent=1)}")


if __name__ == "__main__":
    main()
