"""Benchmark: all-mpnet-base-v2 beside all-MiniLM-L6-v2 in one run on this CPU.

speed: a cold build (no embedding cache) of the same sample of Reuters articles with each model, MiniLM timed
before and after mpnet, the query embedding p50 over dev queries, and each index's size.
quality: the headlines check half (bench/dev_split.json) over a reduced corpus, the same for both models (the
judged articles of those queries, their identical-body duplicates, and a fixed random sample of the other
articles), bodies only as the set asks; dense and hybrid MRR@10 with 95% bootstrap intervals of the paired
difference and a paired randomization p-value.
Writes bench/results/models-<part>-<cpu kind>.json. Run:
`NEWSEARCH_CACHE_DIR=/work/var-shared/cache .venv/bin/python -m bench.models --parts speed quality`
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import EVAL, REUTERS, ROOT, SPLIT, commit, machine_facts, result_path, write_result
from indexer.embed import Embedder
from indexer.models import KNOWN_MODELS
from indexer.pipeline import build
from indexer.settings import Settings
from search_api.evaluation import significance
from search_api.evaluation.harness import evaluate_corpus, load_qrels, load_queries

SEED = 20261207  # the dev split's seed: one fixed draw of the sampled articles
WORK = ROOT / "var" / "bench" / "models"  # corpora written here hold Reuters text: never committed (var/ is ignored)


def reuters_records() -> dict[str, dict]:
    """Every Reuters article record by id, in corpus order."""
    out: dict[str, dict] = {}
    for path in sorted(REUTERS.glob("corpus-*.jsonl.gz")):
        with gzip.open(path, "rt") as fh:
            for line in fh:
                record = json.loads(line)
                out[record["id"]] = record
    return out


def write_corpus(records: dict[str, dict], ids: list[str], path: Path) -> Path:
    """The chosen articles as one .jsonl.gz corpus file, in corpus order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chosen = set(ids)
    with gzip.open(path, "wt") as fh:
        for rid, record in records.items():
            if rid in chosen:
                fh.write(json.dumps(record) + "\n")
    return path


def sample(ids: list[str], size: int, exclude: set[str] = frozenset()) -> list[str]:
    """A fixed random sample of `size` ids outside `exclude`."""
    pool = sorted(set(ids) - exclude)
    return random.Random(SEED).sample(pool, min(size, len(pool)))


def check_half() -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The headlines check half: its queries and their judgements."""
    split = json.loads(SPLIT.read_text())["sets"]["headlines"]["check"]
    queries = load_queries(EVAL / "headlines-queries.jsonl")
    qrels = load_qrels(EVAL / "headlines-qrels.tsv")
    return {q: queries[q] for q in split}, {q: qrels[q] for q in split if q in qrels}


def paired(base: list[float], other: list[float]) -> dict:
    """Mean of each, the mean paired difference (other - base) with its 95% bootstrap interval, and a two-sided
    paired randomization (sign-flip) p-value."""
    found = significance.paired(other, base)
    return {"base": round(found.mean_b, 4), "other": round(found.mean_a, 4), "difference": round(found.diff, 4),
            "ci95": [round(found.low, 4), round(found.high, 4)], "p": round(found.p, 4), "queries": found.queries}


def query_latency(embedder: Embedder, queries: list[str]) -> dict:
    """Median milliseconds to embed one query on the query runtime (after a few warm-up queries), and the CPU
    milliseconds the process spent per query (less sensitive than wall time to other jobs on the machine)."""
    for text in queries[:5]:
        embedder.encode_query(text)
    took = []
    cpu = time.process_time()
    for text in queries:
        started = time.perf_counter()
        embedder.encode_query(text)
        took.append((time.perf_counter() - started) * 1000)
    return {"query_p50_ms": round(statistics.median(took), 2),
            "query_cpu_ms": round((time.process_time() - cpu) * 1000 / len(queries), 2)}


def speed_run(model: str, corpus: Path, queries: list[str]) -> dict:
    """A cold build of `corpus` with `model` (no embedding cache), then its query latency and index size."""
    index_dir = WORK / f"speed-{model}"
    shutil.rmtree(index_dir, ignore_errors=True)
    settings = Settings.from_env(index_dir=index_dir, model=model, cache_dir="none")
    embedder = Embedder.from_settings(settings)
    started = time.perf_counter()
    embedder.load()
    embedder.load(queries=True)
    loaded = time.perf_counter() - started
    cpu = time.process_time()
    report = build([corpus], settings, embedder, progress=False)
    cpu = time.process_time() - cpu
    return {"model": embedder.name, "fingerprint": embedder.fingerprint, "dim": embedder.dim,
            "backend": embedder.backend, "precision": embedder.precision, "query_backend": embedder.query_backend,
            "load_seconds": round(loaded, 1), "articles": report.articles, "passages": report.passages,
            "embedded": report.embedded, "seconds": round(report.seconds, 1),
            "embed_seconds": round(report.embed_seconds, 1),
            "passages_per_second": round(report.embedded / max(report.embed_seconds, 1e-9), 2),
            # CPU seconds of the whole build (every thread) per embedded passage: what the build costs however
            # busy the machine was; on an idle machine wall time is about this over the cores used.
            "build_cpu_seconds": round(cpu, 1), "cpu_ms_per_passage": round(cpu * 1000 / max(report.embedded, 1), 1),
            "index_mb": round(report.index_bytes / 1e6, 2),
            "vectors_mb": round((index_dir / report.version / "vectors.faiss").stat().st_size / 1e6, 2),
            **query_latency(embedder, queries), "load_average": os.getloadavg()}


def speed(records: dict[str, dict], articles: int) -> dict:
    """Both models on the same sample; MiniLM before and after mpnet, to see what the shared CPU did meanwhile."""
    corpus = write_corpus(records, sample(list(records), articles), WORK / f"speed-{articles}.jsonl.gz")
    queries = list(check_half()[0].values())[:100]
    runs = [speed_run(model, corpus, queries) for model in (KNOWN_MODELS[0], KNOWN_MODELS[1], KNOWN_MODELS[0])]
    return {"articles": articles, "runs": runs}


def quality(records: dict[str, dict], articles: int) -> dict:
    """Both models over the reduced corpus, scored on the headlines check half."""
    queries, qrels = check_half()
    judged = {doc for rel in qrels.values() for doc in rel if doc in records}
    ids = sorted(judged) + sample(list(records), articles - len(judged), exclude=judged)
    corpus = write_corpus(records, ids, WORK / f"quality-{articles}.jsonl.gz")
    per_model = {}
    for model in KNOWN_MODELS:
        settings = Settings.from_env(index_dir=WORK / f"quality-{articles}-{model}", model=model, fields="body")
        embedder = Embedder.from_settings(settings)
        started = time.perf_counter()
        result, built = evaluate_corpus([corpus], settings, embedder, queries, qrels, ["dense", "hybrid"])
        per_model[model] = {"name": embedder.name, "fingerprint": embedder.fingerprint, "built": built,
                            "seconds": round(time.perf_counter() - started, 1), **result}
    base, other = (per_model[m]["modes"] for m in KNOWN_MODELS)
    order = sorted(qrels)
    comparison = {mode: {metric: paired([base[mode]["per_query"][q][metric] for q in order],
                                        [other[mode]["per_query"][q][metric] for q in order])
                         for metric in ("mrr@10", "ndcg@10")}
                  for mode in ("dense", "hybrid")}
    return {"corpus": {"articles": len(ids), "judged": len(judged), "sampled": len(ids) - len(judged),
                       "seed": SEED, "fields": "body"},
            "comparison (other = all-mpnet-base-v2, base = all-MiniLM-L6-v2)": comparison, "models": per_model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", nargs="+", choices=["speed", "quality"], default=["speed", "quality"])
    parser.add_argument("--speed-articles", type=int, default=400)
    parser.add_argument("--quality-articles", type=int, default=700)  # bench/RESULTS.md says why not 3,000
    args = parser.parse_args()
    records = reuters_records()
    for part in args.parts:
        started = time.perf_counter()
        body = speed(records, args.speed_articles) if part == "speed" else quality(records, args.quality_articles)
        result = {"benchmark": "models", "part": part, "date": datetime.now(UTC).isoformat(timespec="seconds"),
                  "commit": commit(), "machine_facts": machine_facts(), "seconds": round(time.perf_counter() - started),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), **body}
        write_result(result_path(f"models-{part}", facts=result["machine_facts"]), result)
        print(json.dumps({k: v for k, v in result.items() if k != "models"}, indent=2, default=str))


if __name__ == "__main__":
    main()
