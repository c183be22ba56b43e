"""Benchmark (issue 13): both models' dense lists in one fusion. Over whole-corpus indexes of the base model and
of an adapted one (bench/adapt_reuters.py --full builds them), each query's base dense, adapted dense and keyword
article lists are fused by weighted RRF, collapsed as served, and scored against the single-model hybrids.
Variants are fixed here before any run; choose on `--half tune`, confirm on `--half check` with `--keep`.
Run: `NEWSEARCH_CACHE_DIR=/work/var-shared/cache .venv/bin/python -m bench.dual_dense --model MODEL_DIR --work W`
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from bench.adapt_reuters import dev_half, paired
from bench.common import SETS, commit, machine_facts, result_path, write_result
from indexer.embed import Embedder
from indexer.settings import Settings
from search_api.evaluation.harness import DEPTH
from search_api.evaluation.metrics import mean_scores, per_query
from search_api.ranking.fusion import best_per_group, ranked, rrf
from search_api.ranking.query_words import query_words
from search_api.searcher import Searcher

# name -> weights of (base dense, adapted dense, keyword); decided before the first run
VARIANTS = {
    "base-hybrid": (1.0, 0.0, 1.0),
    "adapted-hybrid": (0.0, 1.0, 1.0),
    "dual": (1.0, 1.0, 1.0),
    "dual-split": (0.5, 0.5, 1.0),
    "dual-dense": (1.0, 1.0, 0.0),
}


def fused(lists: tuple[list[str], list[str], list[str]], weights: tuple[float, ...], k: float,
          dup_group: dict[str, str]) -> list[str]:
    """The collapsed article ranking of weighted RRF over the lists whose weight is not zero."""
    used = [(ranking, w) for ranking, w in zip(lists, weights) if w]
    order = ranked(rrf([r for r, _ in used], [w for _, w in used], k))
    return best_per_group(order, dup_group)[0][:DEPTH]


def run_set(name: str, half: str, model: Path, work: Path, base_tag: str) -> dict:
    """Every variant's per-query scores on one half of a set, and each variant against base-hybrid."""
    queries, qrels = dev_half(name, half)
    fields = SETS[name]
    suffix = f"full-{fields.replace('+', '-')}"
    opened = {}
    for label, folder, model_arg in (("base", base_tag, ""), ("adapted", model.name, str(model))):
        settings = Settings.from_env(index_dir=work / f"{folder}-{suffix}", fields=fields, model=model_arg)
        opened[label] = Searcher.open(settings.index_dir, settings, Embedder.from_settings(settings))
    base, adapted = opened["base"], opened["adapted"]
    s = base.settings
    runs: dict[str, dict[str, list[str]]] = {v: {} for v in VARIANTS}
    try:
        for qid, text in queries.items():
            if qid not in qrels:
                continue
            dense = [searcher._dense_articles(searcher.embedder.encode_query(text), s.candidates, None, None)[0]
                     for searcher in (base, adapted)]
            keyword = [aid for aid, _ in base.keyword_articles(query_words(text, s.keyword_stop_words),
                                                                s.candidates)]
            for variant, weights in VARIANTS.items():
                runs[variant][qid] = fused((dense[0], dense[1], keyword), weights, s.rrf_k, base._dup_group)
    finally:
        for searcher in opened.values():
            searcher.close()
    scores = {v: per_query(r, qrels) for v, r in runs.items()}
    metric = {"headlines": "mrr@10", "topics": "ndcg@10"}[name]
    qids = sorted(scores["base-hybrid"])
    return {
        "queries": len(qids), "metric": metric,
        "means": {v: round(mean_scores(sc)[metric], 4) for v, sc in scores.items()},
        "vs_base_hybrid": {v: paired([scores["base-hybrid"][q][metric] for q in qids],
                                     [scores[v][q][metric] for q in qids]) for v in VARIANTS if v != "base-hybrid"},
        "per_query": {v: {q: sc[q][metric] for q in qids} for v, sc in scores.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="the adapted model folder")
    ap.add_argument("--work", type=Path, required=True, help="folder of the whole-corpus indexes (<model>-full-<fields>)")
    ap.add_argument("--base-tag", default="base", help="folder prefix of the base model's indexes")
    ap.add_argument("--half", choices=["tune", "check"], default="tune")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--tag", required=True, help="result file variant")
    args = ap.parse_args()
    started = datetime.now(UTC)
    result = {"bench": "dual_dense", "started": started.isoformat(timespec="seconds"), "commit": commit(),
              "machine": machine_facts(), "model": str(args.model), "half": args.half,
              "variants": {k: list(v) for k, v in VARIANTS.items()},
              "sets": {name: run_set(name, args.half, args.model, args.work, args.base_tag) for name in args.sets}}
    print_sets(result, "vs_base_hybrid", "base-hybrid")
    print(write_result(result_path("dual-dense", args.tag), result))


def print_sets(result: dict, compared: str, against: str) -> None:
    """Each set's variant means and each variant's paired difference, one line each."""
    for name, found in result["sets"].items():
        print(f"{name} ({found['queries']} queries, {found['metric']}): "
              + ", ".join(f"{v} {m}" for v, m in found["means"].items()))
        for v, d in found[compared].items():
            print(f"  {v} - {against}: {d['diff']:+.4f} {d['ci95']} p {d['p']}")


if __name__ == "__main__":
    main()
