"""Benchmark: articles without a title, indexed with the default fields=title+body (issue 13, "Headline
stand-in per article"), on the check half of the headlines dev set.

The held-out checker indexes Reuters bodies without their titles under the default settings; this does the
same on the dev set. Steps:

1. `python -m bench.eval_untitled prepare --corpus-out DIR --queries-out FILE --qrels-out FILE` writes a
   title-stripped copy of the Reuters corpus (research-only text: keep it out of the repository) and the
   check half's queries and judgements (`news-search eval` scores every judged query, a query it was not
   given as 0, so both files are restricted; `compare` keeps the check half's scores either way).
2. For each code version to compare, in a checkout of it, with NEWSEARCH_CACHE_DIR set to a shared cache:
   `news-search eval --corpus DIR --queries FILE --qrels FILE --index-dir INDEX --out RESULT.json`.
3. `python -m bench.eval_untitled compare LABEL=RESULT.json ... --out bench/results/eval-untitled-check-<cpu kind>.json` gives
   each metric per mode with a 95% bootstrap interval of the paired difference against the first result and
   a paired randomization test's p-value.
"""

from __future__ import annotations

import argparse
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import EVAL, REUTERS, SPLIT, commit, machine_facts, result_path, write_result
from search_api.evaluation import significance

METRICS = ("mrr@10", "ndcg@10")


def check_half() -> set[str]:
    """The headlines queries of the check half (bench/dev_split.json)."""
    return set(json.loads(SPLIT.read_text())["sets"]["headlines"]["check"])


def prepare(corpus_out: Path, queries_out: Path, qrels_out: Path) -> tuple[int, int]:
    """Write the title-stripped corpus and the check half's queries and qrels; returns (articles, queries)."""
    corpus_out.mkdir(parents=True, exist_ok=True)
    articles = 0
    for path in sorted(REUTERS.glob("corpus-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as src, gzip.open(corpus_out / path.name, "wt",
                                                                          encoding="utf-8") as dst:
            for line in src:
                record = json.loads(line)
                record["title"] = ""
                dst.write(json.dumps(record, ensure_ascii=False) + "\n")
                articles += 1
    check = check_half()
    lines = [line for line in (EVAL / "headlines-queries.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip() and json.loads(line)["_id"] in check]
    queries_out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    header, *judged = (EVAL / "headlines-qrels.tsv").read_text(encoding="utf-8").splitlines()
    qrels_out.write_text("\n".join([header, *(j for j in judged if j.split("\t")[0] in check)]) + "\n",
                         encoding="utf-8")
    return articles, len(lines)


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean of b - a with a 95% bootstrap interval (queries resampled) and a two-sided sign-flip p-value."""
    found = significance.paired(b, a)
    return {"diff": round(found.diff, 4), "ci95": [round(found.low, 4), round(found.high, 4)], "p": round(found.p, 4)}


def compare(results: dict[str, dict]) -> dict:
    """Per mode and metric: each result's mean, and its paired difference against the first result."""
    labels = list(results)
    base = results[labels[0]]
    out: dict = {}
    check = check_half()
    for mode in base["modes"]:
        qids = sorted(set(base["modes"][mode]["per_query"]) & check)
        for label in labels:
            if not check <= set(results[label]["modes"][mode]["per_query"]):
                raise SystemExit(f"{label} did not score every check-half query in mode {mode}")
        for metric in METRICS:
            scores = {label: np.array([results[label]["modes"][mode]["per_query"][q][metric] for q in qids])
                      for label in labels}
            row = {label: {"mean": round(float(s.mean()), 4)} for label, s in scores.items()}
            for label in labels[1:]:
                row[label]["vs_" + labels[0]] = paired(scores[labels[0]], scores[label])
            out.setdefault(mode, {})[metric] = row
    return out


def table(comparison: dict, labels: list[str]) -> str:
    """Markdown: one row per mode and metric."""
    head = "| mode | metric | " + " | ".join(labels) + " |\n|---|---|" + "---|" * len(labels)
    rows = []
    for mode, metrics in comparison.items():
        for metric, row in metrics.items():
            cells = [f"{row[labels[0]]['mean']:.4f}"]
            for label in labels[1:]:
                d = row[label]["vs_" + labels[0]]
                cells.append(f"{row[label]['mean']:.4f} ({d['diff']:+.4f}, 95% [{d['ci95'][0]:+.4f}, "
                             f"{d['ci95'][1]:+.4f}], p={d['p']:.4f})")
            rows.append(f"| {mode} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join([head, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write the title-stripped corpus and the check-half queries")
    p.add_argument("--corpus-out", type=Path, required=True)
    p.add_argument("--queries-out", type=Path, required=True)
    p.add_argument("--qrels-out", type=Path, required=True)
    p = sub.add_parser("compare", help="paired differences of `news-search eval --out` results")
    p.add_argument("results", nargs="+", help="LABEL=RESULT.json, the first is the baseline")
    p.add_argument("--out", type=Path, help="default bench/results/eval-untitled-check-<cpu kind>.json")
    args = parser.parse_args()
    if args.command == "prepare":
        articles, queries = prepare(args.corpus_out, args.queries_out, args.qrels_out)
        print(f"{articles} articles without titles in {args.corpus_out}; {queries} check-half queries in "
              f"{args.queries_out}, their judgements in {args.qrels_out}")
        return
    results = {label: json.loads(Path(path).read_text()) for label, path in (r.split("=", 1) for r in args.results)}
    comparison = compare(results)
    first = next(iter(results.values()))
    out = {"benchmark": "eval_untitled", "dev_set": "headlines", "half": "check", "queries": len(check_half()),
           "articles": first["articles"], "date": datetime.now(UTC).isoformat(timespec="seconds"),
           "commit": commit(), "machine": machine_facts(), "resamples": significance.RESAMPLES, "seed": significance.SEED,
           "runs": {label: {"index_version": r["index_version"], "chunking": r["chunking"]}
                    for label, r in results.items()},
           "comparison": comparison}
    write_result(args.out or result_path("eval-untitled-check", facts=out["machine"]), out)
    print(table(comparison, list(results)))


if __name__ == "__main__":
    main()
