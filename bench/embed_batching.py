"""Benchmark: how passage batches are run, on real Reuters passages of the title + body build.

Two questions, both on the default backend: (1) throughput of one OpenVINO stream on every core against one
stream per core (batches side by side), per batch size and padding multiple, in interleaved rounds; (2)
whether a text's vector depends on its batch: one batched run against the same texts in shuffled blocks and
alone, per padding multiple. Writes bench/results/embed-batching-<cpu kind>.json.
Run: `.venv/bin/python -m bench.embed_batching` (after `python -m bench.build_reuters`).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime

import numpy as np

from bench.build_reuters import embedded_texts
from bench.common import commit, machine_facts, result_path, write_result
from bench.vector_data import REUTERS_INDEX
from indexer.backends import exported_onnx, openvino_runtime
from indexer.embed import Embedder


def embedders(batches: list[int], pads: list[int]) -> dict[str, Embedder]:
    """One embedder per configuration; every one shares the two compiled models (one stream, streams)."""
    base = Embedder()
    if base.backend != "openvino":
        raise SystemExit("this benchmark compares OpenVINO's streams: run it with NEWSEARCH_BACKEND unset")
    path = exported_onnx(base.model_path, base.fingerprint, base.export_dir, list(base.tokenizer.model_input_names))
    compiled = {"one stream": openvino_runtime(path, 0, queries=True, used=base.precision),
                "streams": openvino_runtime(path, 0, queries=False, used=base.precision)}
    out = {}
    for mode, runtime in compiled.items():
        for batch in batches:
            for pad in pads:
                embedder = Embedder(batch_size=batch)
                embedder.pad_multiple = pad
                embedder.__dict__["runtime"] = runtime  # the cached_property's slot: reuse one compile
                out[f"{mode}, batch {batch}, pad {pad}"] = embedder
    return out


def throughput(configs: dict[str, Embedder], texts: list[str], rounds: int) -> dict[str, dict]:
    """Passages/s of every configuration over `texts`, rounds interleaved so machine noise falls on all alike."""
    seen: dict[str, list[float]] = {name: [] for name in configs}
    for embedder in configs.values():
        embedder.encode(texts[:64])  # warm-up of every shape family and stream
    for _ in range(rounds):
        for name, embedder in configs.items():
            started = time.perf_counter()
            embedder.encode(texts)
            seen[name].append(len(texts) / (time.perf_counter() - started))
    return {name: {"median": round(statistics.median(v), 1), "runs": [round(x, 1) for x in v]}
            for name, v in seen.items()}


def invariance(texts: list[str], pads: list[int], block: int, shuffles: int, alone: int) -> dict[str, dict]:
    """Largest coordinate difference between one batched run and the same texts in shuffled blocks / alone."""
    out = {}
    for pad in pads:
        embedder = Embedder()
        embedder.pad_multiple = pad
        together = embedder.encode(texts)
        worst_blocks, rng = 0.0, random.Random(pad)
        for _ in range(shuffles):
            order = list(range(len(texts)))
            rng.shuffle(order)
            for start in range(0, len(order), block):
                rows = order[start : start + block]
                worst_blocks = max(worst_blocks, float(np.abs(embedder.encode([texts[i] for i in rows]) -
                                                          together[rows]).max()))
        single = np.stack([embedder.encode([t])[0] for t in texts[:alone]])
        differ = np.abs(single - together[:alone]).max(axis=1)
        out[f"pad {pad}"] = {"max_diff_blocks": worst_blocks, "max_diff_alone": float(differ.max()),
                             "texts_differing_alone": int((differ > 0).sum())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=3000, help="real passages timed per configuration")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--pads", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--check-passages", type=int, default=1500, help="passages of the invariance check")
    args = parser.parse_args()
    texts = embedded_texts(REUTERS_INDEX)
    random.Random(0).shuffle(texts)
    configs = embedders(args.batches, args.pads)
    first = next(iter(configs.values()))
    lengths = [len(i) for i in first.tokenizer(texts[: args.passages], truncation=True,
                                                max_length=first.max_tokens)["input_ids"]]
    result = {"benchmark": "embed_batching", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "commit": commit(), "machine": machine_facts(), "precision": first.precision,
              "passages": args.passages, "mean_word_pieces": round(statistics.fmean(lengths), 1),
              "throughput": throughput(configs, texts[: args.passages], args.rounds),
              "invariance": invariance(texts[: args.check_passages], sorted({1, 4, 8, 16} | set(args.pads)),
                                       block=37, shuffles=3, alone=300)}
    out = write_result(result_path("embed-batching", facts=result["machine"]), result)
    print("| configuration | passages/s (median) | runs |\n|---|---:|---|")
    for name, row in result["throughput"].items():
        print(f"| {name} | {row['median']} | {row['runs']} |")
    print("\n| padding multiple | max difference, shuffled blocks | alone | texts differing alone |\n|---|---:|---:|---:|")
    for name, row in result["invariance"].items():
        print(f"| {name} | {row['max_diff_blocks']:.2g} | {row['max_diff_alone']:.2g} | {row['texts_differing_alone']} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
