"""Benchmark: the base model (or another adapted one, `--baseline`) against one adapted by `news-index adapt`, on
one half of both dev sets (the checking half; `--half tune` for choosing between recipes).

Indexes of the whole corpus take ~25 min of embedding each on this 2-core CPU, so by default both models are
measured on a reduced corpus fixed by a seed: every article judged by a checking-half headlines query, up to
--per-topic articles judged by each checking-half topics query, and --extra other articles (`--full` uses the whole
corpus). The same corpus, chunking and queries for both models; qrels keep only articles in the corpus. Reports
each metric's paired difference (adapted - base) with a 95% bootstrap interval and a sign-flip p-value, and the
training record (time, peak memory). Writes bench/results/adapt-<tag>-<cpu kind>.json.
Run: `NEWSEARCH_CACHE_DIR=/work/var-shared/cache .venv/bin/python -m bench.adapt_reuters --model MODEL_DIR`
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from bench.common import EVAL, REUTERS, ROOT, SETS, commit, machine_facts, result_path, write_result
from indexer.adapt import ids_hash
from indexer.adapt_train import STATE
from indexer.embed import Embedder
from indexer.settings import Settings
from search_api.evaluation import significance
from search_api.evaluation.harness import evaluate_corpus, load_qrels, load_queries

SPLIT = ROOT / "bench" / "dev_split.json"
METRIC = {"headlines": "mrr@10", "topics": "ndcg@10"}  # each set's headline metric (data README)


def dev_half(name: str, half: str = "check") -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """A dev set's queries of one half (`tune` or `check`) and their qrels."""
    chosen = set(json.loads(SPLIT.read_text())["sets"][name][half])
    queries = {q: t for q, t in load_queries(EVAL / f"{name}-queries.jsonl").items() if q in chosen}
    qrels = {q: rel for q, rel in load_qrels(EVAL / f"{name}-qrels.tsv").items() if q in chosen}
    return queries, qrels


def reduced_ids(per_topic: int, extra: int, seed: int, all_ids: list[str], half: str = "check") -> set[str]:
    """The articles of the reduced corpus (see the module docstring). Articles are taken in an order fixed by the
    seed, so a smaller corpus is part of a larger one (and finds its vectors in the embedding cache)."""
    def order(ids: set[str]) -> list[str]:
        return sorted(ids, key=lambda i: hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest())

    chosen = {d for rel in dev_half("headlines", half)[1].values() for d in rel}
    for _, rel in sorted(dev_half("topics", half)[1].items()):
        chosen.update(order(set(rel))[:per_topic])
    return chosen | set(order(set(all_ids) - chosen)[:extra])


def write_corpus(out: Path, per_topic: int, extra: int, seed: int, half: str = "check") -> int:
    """Write the reduced corpus as one JSON-lines file (kept outside the repository: Reuters text); its size."""
    lines = []
    for path in sorted(REUTERS.glob("corpus-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            lines.extend(fh)
    ids = [json.loads(line)["id"] for line in lines]
    keep = reduced_ids(per_topic, extra, seed, ids, half)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file():  # written once: its mtime is part of the eval indexes' identity
        out.write_text("".join(line for i, line in zip(ids, lines) if i in keep))
    return len(keep)


def paired(base: list[float], adapted: list[float]) -> dict:
    """Mean difference adapted - base over queries, its 95% bootstrap interval, and a sign-flip p-value."""
    found = significance.paired(adapted, base)
    return {"diff": round(found.diff, 4), "ci95": [round(found.low, 4), round(found.high, 4)], "p": round(found.p, 4)}


def run_set(name: str, corpus: list[Path], models: dict[str, Path | None], work: Path, modes: list[str],
            half: str = "check", full: bool = False) -> dict:
    """Both models' scores on one half of a set over `corpus`, and the paired differences. A reduced corpus is
    each half's own; the whole corpus (`full`) is one, so both halves search the same indexes."""
    queries, qrels = dev_half(name, half)
    in_corpus = {json.loads(line)["id"] for path in corpus for line in _lines(path)}
    qrels = {q: kept for q, rel in qrels.items() if (kept := {d: g for d, g in rel.items() if d in in_corpus})}
    scores = {}
    for label, model in models.items():
        folder = model.name if model else "base"  # each adapted model's indexes and scores apart
        index = work / f"{folder}-{'full' if full else half}-{SETS[name].replace('+', '-')}"
        settings = Settings.from_env(index_dir=index, fields=SETS[name], model=str(model) if model else "")
        embedder = Embedder.from_settings(settings)
        # Scores are kept beside the index: the base model's are made once (--base-only) while the other trains.
        kept = work / f"{folder}-{half}-{name}-scores.json"
        identity = {"corpus": [str(p) for p in corpus], "model": embedder.fingerprint, "modes": modes}
        if kept.is_file() and json.loads(kept.read_text())["identity"] == identity:
            scores[label] = json.loads(kept.read_text())["result"]
            continue
        scores[label], _ = evaluate_corpus(corpus, settings, embedder, queries, qrels, modes, progress=True)
        kept.write_text(json.dumps({"identity": identity, "result": scores[label]}) + "\n")
    if len(scores) < 2:
        return {}
    base, adapted = scores["baseline"]["modes"], scores["adapted"]["modes"]
    compared = {mode: {metric: {**paired([base[mode]["per_query"][q][metric] for q in sorted(qrels)],
                                         [adapted[mode]["per_query"][q][metric] for q in sorted(qrels)]),
                                "base": base[mode]["means"][metric], "adapted": adapted[mode]["means"][metric]}
                       for metric in base[mode]["means"]} for mode in modes}
    return {"queries": len(qrels), "articles": scores["baseline"]["articles"], "compared": compared,
            "median_query_ms": {k: {m: r["modes"][m]["median_query_ms"] for m in modes} for k, r in scores.items()},
            "per_query": {k: {m: r["modes"][m]["per_query"] for m in modes} for k, r in scores.items()}}


def _lines(path: Path) -> list[str]:
    """A JSON-lines corpus file's lines: the reduced corpus is plain, the whole one (`--full`) gzipped."""
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")) as fh:
        return [line for line in fh if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="the adapted model folder")
    parser.add_argument("--baseline", type=Path, help="compare with this adapted model instead of the base model")
    parser.add_argument("--half", choices=("tune", "check"), default="check", help="dev-set half (choose on tune)")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "adapt", help="corpus and indexes")
    parser.add_argument("--full", action="store_true", help="the whole corpus instead of the reduced one")
    parser.add_argument("--per-topic", type=int, default=10)
    parser.add_argument("--extra", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--modes", nargs="+", default=["dense", "hybrid"])
    parser.add_argument("--tag", default="reduced")
    parser.add_argument("--base-only", action="store_true", help="only build and score the base model's indexes "
                        "(they are reused by the full run), e.g. while the adapted model trains")
    args = parser.parse_args()
    record_file = args.model / STATE / "record.json"
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    judged = {d for rel in load_qrels(EVAL / "headlines-qrels.tsv").values() for d in rel}
    if not args.base_only and record.get("excluded_ids", {}).get("hash") != ids_hash(sorted(judged)):
        print("WARNING: the model was not adapted with --exclude-ids = the headlines' judged articles; "
              "its headlines figures are not valid")
    if args.full:
        corpus, size = sorted(REUTERS.glob("corpus-*.jsonl.gz")), 19043
    else:
        corpus = [args.work / f"corpus-{args.half}-{args.per_topic}-{args.extra}-{args.seed}.jsonl"]
        size = write_corpus(corpus[0], args.per_topic, args.extra, args.seed, args.half)
    out = {"benchmark": "adapt_reuters", "date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit(),
           "machine": machine_facts(), "model": str(args.model),
           "baseline": str(args.baseline or "base"), "half": args.half, "training": record,
           "corpus": {"full": args.full, "articles": size, "per_topic": args.per_topic, "extra": args.extra,
                      "seed": args.seed}, "sets": {}}
    if args.base_only:
        for name in args.sets:
            run_set(name, corpus, {"baseline": None}, args.work, args.modes, args.half, args.full)
        return
    for name in args.sets:
        models = {"baseline": args.baseline, "adapted": args.model}
        out["sets"][name] = run_set(name, corpus, models, args.work, args.modes, args.half, args.full)
        for mode, metrics in out["sets"][name]["compared"].items():
            m = metrics[METRIC[name]]
            print(f"{name} {args.half} {mode} {METRIC[name]}: baseline {m['base']:.4f} adapted {m['adapted']:.4f} "
                  f"diff {m['diff']:+.4f} [{m['ci95'][0]:+.4f}, {m['ci95'][1]:+.4f}] p={m['p']}")
    path = write_result(result_path(f"adapt-{args.tag}"), out, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
