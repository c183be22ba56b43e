"""Benchmark: every embedding backend against the physical limit and against torch fp32.

Per backend: passages/s at 256 word pieces for several batch sizes (and achieved GFLOP/s as a fraction
of the GEMM rate of its precision), single-query latency, and drift from torch fp32 on real Reuters
passages (mean and worst cosine; overlap of each dev query's top 10 among those passages). Quality on
the dev sets comes from `bench.eval_reuters --tag <backend>` runs when their files exist. Writes
bench/results/embed-backends-<cpu kind>.json. Run: `.venv/bin/python -m bench.embed_backends`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from datetime import UTC, datetime

import numpy as np

from bench.common import REUTERS, commit, dev_queries, machine_facts, result_path, write_result
from bench.flops import ceiling_rate, gemm_rates, model_shape, passage_flops
from indexer.backends import BACKENDS, openvino_bf16_capable
from indexer.doctor import drift, passes_gate
from indexer.embed import Embedder, with_context
from indexer.settings import Settings


def reuters_texts(limit: int, min_words: int = 0) -> list[str]:
    """Title-in-context texts of the first Reuters articles with at least `min_words` body words."""
    texts: list[str] = []
    for path in sorted(REUTERS.glob("corpus-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                body = record.get("body") or ""
                if len(body.split()) >= min_words and body:
                    texts.append(with_context(record.get("title") or "", body[:2000]))
                if len(texts) >= limit:
                    return texts
    return texts


def throughput(embedder: Embedder, texts: list[str], batch: int) -> float:
    """Passages/s of encode() over `texts` (all truncated to the model's 256 word pieces)."""
    embedder.batch_size = batch
    embedder.encode(texts[: batch * 4])  # warm-up: first-run allocations and kernel choice, on every stream
    started = time.perf_counter()
    embedder.encode(texts)
    return len(texts) / (time.perf_counter() - started)


def query_ms(embedder: Embedder, queries: list[str]) -> float:
    """Median milliseconds to embed one query."""
    for q in queries[:5]:
        embedder.encode_query(q)
    took = []
    for q in queries[:100]:
        started = time.perf_counter()
        embedder.encode_query(q)
        took.append((time.perf_counter() - started) * 1000)
    return round(float(np.median(took)), 2)


def dev_quality(kind: str) -> dict:
    """nDCG@10 and MRR@10 of dense and hybrid per dev set from the eval runs of this kind of vectors (backend,
    with the precision where the CPU chose it: `--tag openvino-bf16`), when they exist."""
    out = {}
    for name in ("headlines", "topics"):
        path = result_path(f"eval-{name}", kind)
        if path.is_file():
            modes = json.loads(path.read_text())["modes"]
            out[name] = {m: {k: modes[m]["means"][k] for k in ("ndcg@10", "mrr@10")}
                         for m in ("dense", "hybrid") if m in modes}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--passages", type=int, default=256, help="256-word-piece passages timed per batch size")
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 16, 32, 64])
    parser.add_argument("--drift-passages", type=int, default=1000)
    args = parser.parse_args()
    facts, rates = machine_facts(), gemm_rates()
    bf16_hw = openvino_bf16_capable()
    long_texts = reuters_texts(args.passages, min_words=260)
    sample, queries = reuters_texts(args.drift_passages), dev_queries()
    reference = Embedder(backend="torch")
    ref_vectors, ref_queries = reference.encode(sample), reference.encode(queries)
    shape = model_shape(reference.model_path)
    per_passage = passage_flops(256, shape)
    rows = {}
    for backend in args.backends:
        embedder = Embedder(backend=backend, query_backend=backend)
        embedder.load()
        timed = long_texts
        if backend == "torch-bf16" and not bf16_hw:
            timed = long_texts[:4]  # emulated bf16: a few passages already take a minute
        speeds = {b: round(throughput(embedder, timed, b), 2) for b in args.batches}
        best = max(speeds.values())
        ceiling = ceiling_rate(embedder.precision, rates)
        row = {"precision": embedder.precision, "passages_per_second_256": speeds, "best": best,
               "achieved_gflops": round(best * per_passage / 1e9, 1), "ceiling_gflops": ceiling,
               "fraction_of_ceiling": round(best * per_passage / 1e9 / ceiling, 3),
               "query_ms_p50": query_ms(embedder, queries)}
        if not (backend == "torch-bf16" and not bf16_hw):
            embedder.batch_size = Settings.batch_size
            row["drift"] = drift(embedder.encode(sample), ref_vectors, embedder.encode(queries), ref_queries)
            row["passes_cosine_gate"] = passes_gate(row["drift"])  # the rule NEWSEARCH_BACKEND=auto applies
        row["dev_quality"] = dev_quality(embedder.kind)
        rows[backend] = row
        print(backend, json.dumps(row), flush=True)
    result = {"benchmark": "embed_backends", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "commit": commit(), "machine_facts": facts, "gemm_gflops": rates,
              "flops_per_passage_256": per_passage, "timed_passages": len(long_texts),
              "drift_passages": len(sample), "drift_queries": len(queries), "backends": rows}
    write_result(result_path("embed-backends", facts=facts), result)


if __name__ == "__main__":
    main()
