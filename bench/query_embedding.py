"""Benchmark: embedding one query at a time, per runtime: latency and CPU per query, alone and with callers
in parallel (as a server's threads call it), and the vectors' cosine to the passages' backend (OpenVINO, batched).

Runtimes: OpenVINO compiled for queries (latency hint, all cores, at the CPU's precision), ONNX Runtime as a
query backend uses it (threads sleep between runs), ONNX Runtime with its default polling threads (as
NEWSEARCH_BACKEND=onnx runs it), and torch fp32. Every dev query (559) goes through `Embedder.encode_query`: tokenize, pad, run,
normalise. Writes bench/results/query-embedding-<cpu kind>.json. Run: `.venv/bin/python -m bench.query_embedding`.
"""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime

import numpy as np

from bench.common import callers, commit, dev_queries, machine_facts, result_path, write_result
from indexer.embed import Embedder


def runtimes() -> dict[str, Embedder]:
    """One embedder per measured query runtime, all on the same model files; the default one is marked."""
    default = Embedder(backend="openvino").query_backend
    out = {f"{name}{' (default)' if backend == default else ''}": Embedder(backend="openvino", query_backend=backend)
           for name, backend in (("openvino", "openvino"), ("onnx", "onnx"), ("torch fp32", "torch"))}
    # Queries on the passages' own ONNX Runtime session, whose threads poll for work between runs.
    out["onnx, polling threads"] = Embedder(backend="onnx", query_backend="onnx")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 4], help="parallel callers per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of every runtime, interleaved")
    args = parser.parse_args()
    queries = dev_queries()
    passages = Embedder(backend="openvino", query_backend="openvino")
    reference = passages.encode(queries)  # the passages' runtime, batched: what a query should land beside
    measured = runtimes()
    rows: dict[str, dict] = {}
    for name, embedder in measured.items():
        vectors = np.stack([embedder.encode_query(q) for q in queries])  # also warms the runtime
        cosine = np.sum(vectors * reference, axis=1)
        rows[name] = {"mean_cosine": round(float(cosine.mean()), 7), "worst_cosine": round(float(cosine.min()), 7),
                      "runs": []}
    for _ in range(args.rounds):  # interleaved, so other load on the machine falls on every runtime alike
        for name, embedder in measured.items():
            rows[name]["runs"].append([callers(embedder.encode_query, queries, n) for n in args.callers])
    for row in rows.values():
        row["best"] = [min((run[i] for run in row["runs"]), key=lambda r: r["wall_ms_per_query"])
                       for i in range(len(args.callers))]
    result = {"benchmark": "query_embedding", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "commit": commit(), "machine": machine_facts(), "queries": len(queries),
              "mean_word_pieces": round(statistics.fmean(len(passages.tokenizer(q)["input_ids"]) for q in queries), 1),
              "runtimes": rows}
    out = write_result(result_path("query-embedding", facts=result["machine"]), result)
    print("| runtime | callers | p50 ms | wall ms/query | CPU ms/query | queries/s | mean / worst cosine |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, row in rows.items():
        for best in row["best"]:
            print(f"| {name} | {best['callers']} | {best['p50_ms']} | {best['wall_ms_per_query']} | "
                  f"{best['cpu_ms_per_query']} | {best['queries_per_s']} | {row['mean_cosine']} / {row['worst_cosine']} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
