"""Benchmark: one query's IVF search split over the CPU's cores (FAISS `parallel_mode` 1: the probed lists are
shared out) against the default (mode 0: one thread a query), at the Searcher's depth, by 1 and by several callers.

Vectors: `bench/vector_data.py`'s 1M set (real Reuters passages plus perturbed copies) in the index the product
picks for 1M (IVF4096,SQ8, nprobe 128); queries: the 559 dev queries. Writes
bench/results/faiss-threads-<cpu kind>.json. Run: `.venv/bin/python -m bench.faiss_threads --source <index>`.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from bench.common import callers, commit, machine_facts, result_path, write_result
from bench.vector_data import vector_set
from indexer.storage.faiss_vectors import default_nprobe, index_spec

DEPTH = 800  # passages the Searcher asks FAISS for (200 articles' worth)


def searcher(index: faiss.Index):  # noqa: ANN201
    """One query vector's search at the Searcher's depth."""
    return lambda q: index.search(q.reshape(1, -1), DEPTH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=None, help="built Reuters title+body index (only read)")
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both modes")
    args = parser.parse_args()

    vs = vector_set(args.passages, source=args.source)
    spec = index_spec(len(vs.base))
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    index = faiss.index_factory(vs.base.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    index.train(vs.base)
    index.add(vs.base)
    built = time.perf_counter() - started
    ivf = faiss.extract_index_ivf(index)
    ivf.nprobe = default_nprobe(ivf.nlist, index.ntotal)
    queries = vs.queries

    answers = {}
    for mode in (0, 1):
        ivf.parallel_mode = mode
        answers[mode] = index.search(queries, DEPTH)
    same_ids = float(np.mean(answers[0][1] == answers[1][1]))

    runs: dict[str, list] = {"0": [], "1": []}
    for _ in range(args.rounds):
        for mode in (0, 1):
            ivf.parallel_mode = mode
            callers(searcher(index), queries[:50], 1)  # warm
            runs[str(mode)].append([callers(searcher(index), queries, n) for n in (1, 2, 8)])
            print(mode, runs[str(mode)][-1], flush=True)

    best = {mode: [min((r[i] for r in rs), key=lambda x: x["p50_ms"]) for i in range(3)] for mode, rs in runs.items()}
    result = {"benchmark": "faiss_threads", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "commit": commit(), "machine": machine_facts(), "faiss": faiss.__version__, "passages": len(vs.base),
              "spec": spec, "nprobe": ivf.nprobe, "depth": DEPTH, "queries": len(queries), "omp_threads": os.cpu_count(),
              "build_s": round(built, 1), "same_ids_share": same_ids,
              "modes": {"0": "one thread a query (FAISS default)", "1": "the probed lists shared out over the threads"},
              "runs": runs, "best_p50_of_rounds": best}
    path = result_path("faiss-threads")
    write_result(path, result)
    print(path)


if __name__ == "__main__":
    main()
