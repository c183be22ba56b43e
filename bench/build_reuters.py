"""Benchmark: a cold build of the full Reuters-21578 corpus (19,043 articles) with the real model.

Writes bench/results/build-reuters-<fields>-<cpu kind>-<backend>.json (articles/s, passages/s, index size, peak
memory, achieved GFLOP/s against the measured GEMM rate) and prints two example queries with their top hits. Run: `make bench` or
`.venv/bin/python -m bench.build_reuters [--fields body]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import REUTERS, ROOT, commit, machine_facts, result_path, write_result
from bench.flops import ceiling_rate, gemm_rates, model_shape, passage_flops, total_flops
from indexer.embed import Embedder, embedding_text
from indexer.pipeline import build
from indexer.settings import Settings
from indexer.storage.local import LocalVersion
from search_api.searcher import Searcher, SearchRequest

EXAMPLES = ["cocoa harvest in Bahia hurt by drought", "OPEC agrees to cut oil output"]


def embedded_texts(index_dir: Path) -> list[str]:
    """Each distinct text the build of the published version embedded (title in context where it was), sorted."""
    version = LocalVersion.open(index_dir, verify=False)
    try:
        titled = version.manifest["chunking"].get("title_context", False)
        texts = {embedding_text(t, x, titled) for t, x in version.text.passage_texts()}
    finally:
        version.close()
    return sorted(texts)


def embedded_lengths(index_dir: Path, embedder: Embedder) -> list[int]:
    """Word pieces (special tokens included, truncated as the model truncates) of each distinct text
    the build embedded, read back from the published version."""
    ids = embedder.tokenizer(embedded_texts(index_dir), truncation=True, max_length=embedder.max_tokens)["input_ids"]
    return [len(i) for i in ids]


def efficiency(report, lengths: list[int], embedder: Embedder, rates: dict) -> dict:  # noqa: ANN001
    """Achieved GFLOP/s of the embedding stage against the GEMM rate of the backend's precision."""
    shape = model_shape(embedder.model_path)
    achieved = total_flops(lengths, shape) / max(report.embed_seconds, 1e-9) / 1e9
    ceiling = ceiling_rate(embedder.precision, rates)
    return {"gemm_gflops": rates, "ceiling_gflops": ceiling, "achieved_gflops": round(achieved, 1),
            "fraction_of_ceiling": round(achieved / ceiling, 3),
            "mean_word_pieces": round(sum(lengths) / len(lengths), 1),
            "ceiling_passages_per_second_at_256": round(ceiling * 1e9 / passage_flops(256, shape), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fields", choices=["title+body", "body"], default="title+body")
    parser.add_argument("--index-dir", type=Path, help="default var/bench/reuters-<fields>")
    parser.add_argument("--keep", action="store_true", help="reuse the folder's embedding cache (not a cold build)")
    args = parser.parse_args()
    tag = args.fields.replace("+", "-")
    index_dir = args.index_dir or ROOT / "var" / "bench" / f"reuters-{tag}"
    if index_dir.exists() and not args.keep:
        shutil.rmtree(index_dir)
    settings = Settings.from_env(index_dir=index_dir, fields=args.fields)
    embedder = Embedder.from_settings(settings)
    facts, rates = machine_facts(), gemm_rates()
    t0 = time.perf_counter()
    embedder.load()  # model load timed separately from the build
    load_seconds = time.perf_counter() - t0
    report = build(sorted(REUTERS.glob("corpus-*.jsonl.gz")), settings, embedder, progress=True)
    searcher = Searcher.open(index_dir, settings, embedder)
    examples = []
    for q in EXAMPLES:
        result = searcher.search(SearchRequest(q=q, k=3))
        examples.append({"query": q, "took_ms": result.took_ms, "top": [
            {"rank": h.rank, "article_id": h.article_id, "title": h.title, "score": h.score,
             "sentence": h.text[h.highlights[0][0]:h.highlights[0][1]] if h.highlights else h.text[:160]}
            for h in result.hits]})
    result = {
        "benchmark": "build_reuters", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(), "machine": machine_facts(),
        "machine_facts": facts, "backend": embedder.backend, "precision": embedder.precision,
        "batch_size": embedder.batch_size,
        "fields": args.fields, "cold": not args.keep, "model_load_seconds": round(load_seconds, 2),
        "articles": report.articles, "passages": report.passages, "embedded": report.embedded,
        "skipped": len(report.problems), "seconds": round(report.seconds, 1),
        "embed_seconds": round(report.embed_seconds, 1),
        "articles_per_second": round(report.articles / report.seconds, 2),
        "passages_per_second_embedding": round(report.embedded / max(report.embed_seconds, 1e-9), 2),
        "index_mb": round(report.index_bytes / 1e6, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "examples": examples,
        "efficiency": efficiency(report, embedded_lengths(index_dir, embedder), embedder, rates),
    }
    write_result(result_path(f"build-reuters-{tag}", embedder.kind, result["machine"]), result)
    print(report.summary())
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
