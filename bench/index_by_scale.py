"""Benchmark: FAISS index types by corpus size on real embeddings (vector level, in-process).

For each size (the real Reuters passages, then 100k and 1M by perturbing them, see bench/vector_data.py)
and each candidate type (exact flat, IVF with 8-bit scalar quantization, HNSW over flat or SQ8 codes) it
records build time, file size and resident memory per passage (loaded and memory-mapped, each in a fresh
process), and for every search parameter: recall@10 against exact inner-product search, and latency of
single-query searches with one thread and with two threads searching concurrently (as a server's two
workers do). Queries: the 559 embedded dev queries and 1,000 real passages held out of the base.
Writes bench/results/index-by-scale-<size>-<cpu kind>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from bench.common import ROOT, commit, machine_facts, memory_kb, percentile, result_path
from bench.vector_data import NOISE, VectorSet, vector_set
from indexer.storage.faiss_vectors import ivf_lists

TRAIN_MAX = 1 << 18

K = 10
DEEP = 800  # passages the Searcher asks FAISS for per query (candidates 200 x 4, to group into articles)
TIMED = 500  # queries timed per parameter value (the first 50 run once before, untimed)
SIZES: dict[str, int | None] = {"real": None, "100k": 100_000, "300k": 300_000, "1m": 1_000_000}


def candidates(n: int, families: list[str]) -> list[tuple[str, str, str | None, list[int]]]:
    """(family, factory string, search parameter, values) for a base of n vectors."""
    nlist = ivf_lists(n)
    probes = [8, 16, 32, 64, 128, 256] if n < 500_000 else [64, 128, 256, 512, 1024]
    table = {
        "flat": ("IDMap2,Flat", None, [0]),
        "ivf-sq8": (f"IVF{nlist},SQ8", "nprobe", probes),
        # four times the lists (each a quarter as long): fewer codes scanned for the same recall?
        "ivf4x-sq8": (f"IVF{4 * nlist},SQ8", "nprobe", [p * 2 for p in probes]),
        "ivf-flat": (f"IVF{nlist},Flat", "nprobe", [8, 16, 32, 64]),
        "hnsw-sq8": ("IDMap2,HNSW32,SQ8", "efSearch", [16, 32, 64, 128, 256] if n < 500_000 else [32, 64, 128, 256, 512]),
        "hnsw-flat": ("IDMap2,HNSW32", "efSearch", [16, 32, 64, 128]),
    }
    return [(f, *table[f]) for f in families]


def build(spec: str, vs: VectorSet) -> tuple[faiss.Index, dict]:
    """Train and fill one index; returns it with its build times."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # builds use both cores, as news-index does
    index = faiss.index_factory(vs.base.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    t0 = time.perf_counter()
    if not index.is_trained:
        ivf = faiss.extract_index_ivf(index) if "IVF" in spec else None
        # 64 points per list trains k-means as well as the whole set here (FAISS samples 256/list at most);
        # at most TRAIN_MAX points, as k-means costs points x lists.
        size = min(len(vs.base), 64 * ivf.nlist, TRAIN_MAX) if ivf is not None else len(vs.base)
        sample = vs.base[np.random.default_rng(0).choice(len(vs.base), size, replace=False)]
        index.train(sample)
    t1 = time.perf_counter()
    if "IVF" in spec:
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
    index.add_with_ids(vs.base, vs.ids)
    t2 = time.perf_counter()
    return index, {"train_s": round(t1 - t0, 2), "add_s": round(t2 - t1, 2), "build_s": round(t2 - t0, 2)}


def set_param(index: faiss.Index, name: str | None, value: int) -> None:
    """nprobe of an IVF index or efSearch of an HNSW one (under its IDMap2 wrapper)."""
    if name == "nprobe":
        faiss.extract_index_ivf(index).nprobe = value
    elif name == "efSearch":
        faiss.downcast_index(faiss.downcast_index(index).index).hnsw.efSearch = value


def recall(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per query: the share of the exact top-k among the found top-k."""
    return np.array([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth)])


def timed_search(index: faiss.Index, queries: np.ndarray, threads: int, k: int = K) -> tuple[list[float], float]:
    """Milliseconds per single-query search and queries/s, with `threads` searching at once."""
    def one(q: np.ndarray) -> float:
        t0 = time.perf_counter()
        index.search(q.reshape(1, -1), k)
        return (time.perf_counter() - t0) * 1000

    for q in queries[:50]:
        one(q)
    t0 = time.perf_counter()
    if threads == 1:
        took = [one(q) for q in queries]
    else:
        with ThreadPoolExecutor(threads) as pool:
            took = list(pool.map(one, queries))
    return took, len(queries) / (time.perf_counter() - t0)


def resident(path: Path, flag: int) -> dict:
    """Memory of a fresh process after loading `path` (with read flag) and searching every query once."""
    out = subprocess.run([sys.executable, "-m", "bench.index_by_scale", "--probe", str(path), str(flag)],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def probe(path: str, flag: int) -> None:
    """The child side of `resident`: prints anonymous and file-backed resident MB it added."""
    def rss() -> dict[str, int]:
        return {k: v for k, v in memory_kb().items() if k in ("RssAnon", "RssFile")}

    from bench.vector_data import query_vectors

    queries = query_vectors()
    before = rss()
    index = faiss.read_index(path, flag)
    index.search(queries, K)
    after = rss()
    print(json.dumps({k: round((after[k] - before[k]) / 1024, 1) for k in after}))


def measure(family, spec, param, values, vs: VectorSet, truth: np.ndarray, workdir: Path) -> dict:
    """Everything recorded for one index type at one size."""
    index, times = build(spec, vs)
    path = workdir / "index.faiss"
    faiss.write_index(index, str(path))
    n = len(vs.base)
    row = {"family": family, "spec": spec, "param": param, **times, "file_bytes_per_passage": round(path.stat().st_size / n, 1),
           "resident_mb": resident(path, 0), "mmap_resident_mb": resident(path, faiss.IO_FLAG_MMAP_IFC), "runs": []}
    row["resident_bytes_per_passage"] = round(row["resident_mb"]["RssAnon"] * 2**20 / n, 1)
    queries = vs.all_queries
    n_dev = len(vs.queries)
    for value in values:
        set_param(index, param, value)
        faiss.omp_set_num_threads(1)
        _, found = index.search(queries, K)
        r = recall(found, truth)
        run = {"value": value, "recall@10": round(float(r.mean()), 4), "recall@10_dev_queries": round(float(r[:n_dev].mean()), 4),
               "recall@10_held_out": round(float(r[n_dev:].mean()), 4), "recall@10_min": round(float(r.min()), 2)}
        sample = queries[np.random.default_rng(1).permutation(len(queries))[:TIMED]]
        for threads in (1, 2):
            took, qps = timed_search(index, sample, threads)
            run[f"threads{threads}"] = {"p50_ms": round(percentile(took, 50), 3), "p99_ms": round(percentile(took, 99), 3),
                                        "qps": round(qps, 1)}
        took, _ = timed_search(index, sample[:200], 1, DEEP)
        run[f"threads1_k{DEEP}"] = {"p50_ms": round(percentile(took, 50), 3), "p99_ms": round(percentile(took, 99), 3)}
        row["runs"].append(run)
        print(f"  {family:9} {param or '':8} {value:4}  recall@10 {run['recall@10']:.4f}  "
              f"p50 {run['threads1']['p50_ms']:.3f} ms  p99 {run['threads1']['p99_ms']:.3f} ms  "
              f"2-thread qps {run['threads2']['qps']:.0f}  k={DEEP} p50 {run[f'threads1_k{DEEP}']['p50_ms']:.3f} ms", flush=True)
    return row


def realism(vs: VectorSet, truth_scores: np.ndarray) -> dict:
    """Top-1 and top-10 cosines of the dev queries: a synthetic base should look like a denser real one."""
    dev = truth_scores[: len(vs.queries)]
    return {"dev_query_top1_cos_median": round(float(np.median(dev[:, 0])), 4),
            "dev_query_top10_cos_median": round(float(np.median(dev[:, K - 1])), 4)}


def run_size(label: str, families: list[str], source: Path | None) -> dict:
    """All candidates at one size; writes and returns its result."""
    vs = vector_set(SIZES[label], source=source)
    n = len(vs.base)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    exact = faiss.IndexFlatIP(vs.base.shape[1])
    exact.add(vs.base)
    scores, truth = exact.search(vs.all_queries, K)
    del exact
    print(f"{label}: {n} passages, {len(vs.all_queries)} queries", flush=True)
    out = result_path(f"index-by-scale-{label}")
    # Types not measured in this run keep their earlier rows (each row says when and at which commit).
    rows: list[dict] = [r for r in json.loads(out.read_text())["types"] if r["family"] not in families] if out.exists() else []
    result = {"benchmark": "index_by_scale", "date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit(),
              "machine": machine_facts(), "size": label, "passages": n, "synthetic": n > 28_805,
              "noise": NOISE if n > 28_805 else None, "queries": {"dev": len(vs.queries), "held_out": len(vs.held_out)},
              "k": K, "timed_queries": TIMED, "realism": realism(vs, scores), "types": rows}
    with tempfile.TemporaryDirectory(dir=ROOT / "var") as tmp:
        for family, spec, param, values in candidates(n, families):
            row = measure(family, spec, param, values, vs, truth, Path(tmp))
            rows.append({**row, "date": result["date"], "commit": result["commit"]})
            out.write_text(json.dumps(result, indent=2) + "\n")  # each type as it finishes: big sizes take long
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--types", nargs="+", default=["flat", "ivf-sq8", "ivf-flat", "hnsw-sq8", "hnsw-flat"],
                        choices=["flat", "ivf-sq8", "ivf4x-sq8", "ivf-flat", "hnsw-sq8", "hnsw-flat"])
    parser.add_argument("--source", type=Path, help="Reuters title+body index dir (default var/bench/reuters-title-body)")
    parser.add_argument("--probe", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe[0], int(args.probe[1]))
        return
    for label in args.sizes:
        run_size(label, args.types, args.source)


if __name__ == "__main__":
    main()
