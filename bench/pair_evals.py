"""Benchmark report: eval_index result files of two code trees on the same index copies, paired per query (mean
difference b - a, paired bootstrap 95% interval, sign-flip p) for each set, half and mode; the keyword-engine
parity checks (FTS5 vs tantivy analyzers) are read from it. Writes bench/results/<out>-<cpu kind>.json.
Run: `python -m bench.pair_evals --a fts5-main --b tantivy-fts5porter --b tantivy --out tantivy2-paired`;
`--prefix eval --sets topics` pairs eval_reuters/eval_index files of one set (e.g. two models' indexes).
"""

from __future__ import annotations

import argparse
import json

from bench.common import RESULTS, commit, result_path, write_result
from search_api.evaluation.significance import paired

METRIC = {"headlines": "mrr@10", "topics": "ndcg@10"}  # each set's headline metric (bench/RESULTS.md)
MODES = ("dense", "keyword", "hybrid")


def per_query(tag: str, name: str, half: str, prefix: str = "tantivy-eval") -> dict[str, dict[str, dict[str, float]]]:
    """Each mode's per-query scores in one eval_index result file."""
    found = sorted(RESULTS.glob(f"{prefix}-{name}-{half}-*-{tag}.json"))
    if not found:
        raise SystemExit(f"no result file {prefix}-{name}-{half}-<cpu kind>-{tag}.json in {RESULTS}")
    path = found[0]
    return {mode: result["per_query"] for mode, result in json.loads(path.read_text())["modes"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="tag of the baseline result files")
    parser.add_argument("--b", action="append", required=True, help="tag(s) compared with it")
    parser.add_argument("--out", required=True)
    parser.add_argument("--prefix", default="tantivy-eval", help="the result files' prefix (eval: eval_reuters's)")
    parser.add_argument("--sets", nargs="+", choices=list(METRIC), default=list(METRIC))
    args = parser.parse_args()
    report: dict = {"benchmark": "pair_evals", "commit": commit(), "a": args.a, "pairs": {}}
    lines = []
    for b in args.b:
        for name in args.sets:
            metric = METRIC[name]
            for half in ("tune", "check"):
                base, other = per_query(args.a, name, half, args.prefix), per_query(b, name, half, args.prefix)
                for mode in MODES:
                    queries = sorted(base[mode])
                    found = paired([other[mode][q][metric] for q in queries], [base[mode][q][metric] for q in queries])
                    row = found.as_dict()
                    row["mean_a"], row["mean_b"] = row["mean_b"], row["mean_a"]  # paired(b, a): its first is b
                    report["pairs"][f"{b}|{name}|{half}|{mode}|{metric}"] = row
                    lines.append(f"| {b} | {name} {metric} | {half} | {mode} | {row['mean_a']:.4f} | {row['mean_b']:.4f}"
                                 f" | {row['diff']:+.4f} [{row['low']:+.4f}, {row['high']:+.4f}] | {row['p']} |"
                                 f" {row['changed']}/{row['queries']} |")
    write_result(result_path(args.out), report)
    print("| b | set | half | mode | a | b | b - a [95%] | p | changed |")  # noqa: T201 - CLI
    print("\n".join(lines))  # noqa: T201 - CLI


if __name__ == "__main__":
    main()
