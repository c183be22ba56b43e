"""Benchmark: `--engine ray` building a Reuters sample into a Milvus server, the vectors coming back to the driver
(the code of --base-commit: embedding actors return every vector, the driver caches them and hands rows to inserting
actors) against the embedding actors writing their rows themselves (this checkout). Per run: wall, the driver's CPU
and peak RSS, the bytes the driver takes from and gives to Ray, and the load average.

Each run is a fresh process with a fresh embedding cache, against one `milvus-lite server`. Writes
bench/results/ray-write-<cpu kind>.json. Run: `.venv/bin/python -m bench.ray_write [--articles 2000] [--repeats 2]`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import REUTERS, ROOT, commit, machine_facts, result_path, write_result

VARIANTS = ("driver", "direct")


def sample(n: int, folder: Path) -> Path:
    """The first `n` Reuters articles as a JSONL file in `folder` (never in the repository)."""
    path = folder / "reuters-sample.jsonl"
    with open(path, "w", encoding="utf-8") as dst:
        for part in sorted(REUTERS.glob("corpus-*.jsonl.gz")):
            with gzip.open(part, "rt", encoding="utf-8") as src:
                for line in src:
                    if n <= 0:
                        return path
                    dst.write(line)
                    n -= 1
    return path


def checkout(rev: str, folder: Path) -> Path:
    """The code of commit `rev` extracted into `folder` (git archive: the repository is only read)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def start_milvus(folder: Path) -> tuple[subprocess.Popen, str]:
    """`milvus-lite server` on a free 127.0.0.1 port with its data in `folder`, once it answers."""
    import socket

    from pymilvus import MilvusClient

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(folder), "--host",
                             "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            MilvusClient(uri=uri).close()
            return proc, uri
        except Exception:  # noqa: BLE001 - not up yet, whatever pymilvus raises
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("milvus-lite server did not start") from None
            time.sleep(0.5)


def column_bytes(batch: dict) -> int:
    """Bytes of a batch's columns (of their items for columns of Python objects)."""
    return sum(sum(len(x) if isinstance(x, bytes) else len(pickle.dumps(x)) for x in v) if v.dtype == object
               else v.nbytes for v in map(np.asarray, batch.values()))


def count_ray_traffic(counts: dict[str, int]) -> None:
    """Count what the driver gives to Ray (from_items) and takes back (iter_batches, take_all), in `counts`."""
    import ray.data
    from ray.data import Dataset

    from_items, iter_batches, take_all = ray.data.from_items, Dataset.iter_batches, Dataset.take_all

    def counted_from_items(items, *args, **kwargs):  # noqa: ANN001, ANN202 - ray.data.from_items' own signature
        counts["sent_bytes"] += len(pickle.dumps(items))
        return from_items(items, *args, **kwargs)

    def counted_iter_batches(self, *args, **kwargs):  # noqa: ANN001, ANN202
        for batch in iter_batches(self, *args, **kwargs):
            counts["received_batches_bytes"] += column_bytes(batch)
            yield batch

    def counted_take_all(self, *args, **kwargs):  # noqa: ANN001, ANN202
        rows = take_all(self, *args, **kwargs)
        counts["received_rows_bytes"] += len(pickle.dumps(rows))
        return rows

    ray.data.from_items, Dataset.iter_batches, Dataset.take_all = counted_from_items, counted_iter_batches, counted_take_all


def one_run(corpus: Path, uri: str, collection: str, folder: Path) -> dict:
    """Build `corpus` with the ray engine into the Milvus at `uri` in this process (the code on PYTHONPATH)."""
    from indexer.embed import Embedder
    from indexer.pipeline import build
    from indexer.settings import Settings

    settings = Settings(index_dir=folder / "index", cache_dir=str(folder / "cache"), store="milvus", milvus_uri=uri,
                        milvus_collection=collection, engine="ray", fields="body")
    embedder = Embedder.from_settings(settings)
    counts = {"sent_bytes": 0, "received_batches_bytes": 0, "received_rows_bytes": 0}
    count_ray_traffic(counts)
    load = os.getloadavg()
    cpu0, t0 = time.process_time(), time.perf_counter()
    report = build([corpus], settings, embedder, progress=False)
    return {"wall_s": round(time.perf_counter() - t0, 1), "driver_cpu_s": round(time.process_time() - cpu0, 1),
            "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "articles": report.articles, "passages": report.passages, "embedded": report.embedded, **counts,
            "load_1min_before_after": [round(load[0], 2), round(os.getloadavg()[0], 2)]}


def run_child(code: Path, corpus: Path, uri: str, collection: str, folder: Path) -> dict:
    """one_run in a fresh process with `code` first on its path (Ray's workers inherit it)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    args = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(
        {"corpus": str(corpus), "uri": uri, "collection": collection, "folder": str(folder)})]
    out = subprocess.run(args, env=env, cwd=code, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"run failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Both variants, --repeats times each, alternating; one result file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--base-commit", default="3424929", help="the driver-path code (before this change)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(one_run(Path(job["corpus"]), job["uri"], job["collection"], Path(job["folder"]))))  # noqa: T201
        return
    with tempfile.TemporaryDirectory(prefix="ray-write-") as tmp:
        folder = Path(tmp)
        corpus = sample(args.articles, folder)
        code = {"driver": checkout(args.base_commit, folder / "base"), "direct": ROOT}
        proc, uri = start_milvus(folder / "milvus")
        runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        try:
            for i in range(args.repeats):
                for variant in VARIANTS:
                    runs[variant].append(run_child(code[variant], corpus, uri, f"{variant}{i}",
                                                   folder / f"{variant}{i}"))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    result = {"what": "ray engine build into a Milvus server: vectors through the driver vs written by the workers",
              "articles": args.articles, "fields": "body", "milvus": "milvus-lite server (gRPC, 127.0.0.1)",
              "variants": {"driver": f"code of {args.base_commit}", "direct": f"code of {commit()}"},
              "commit": commit(), "machine": machine_facts(), "runs": runs}
    print(json.dumps(runs, indent=2))  # noqa: T201
    print(write_result(result_path("ray-write"), result))  # noqa: T201


if __name__ == "__main__":
    main()
