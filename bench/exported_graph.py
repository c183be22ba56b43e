"""Benchmark: the exported model graph's attention form (eager, as exported now; sdpa, as exported before export
format 2) in every runtime that reads the export, on real Reuters passages, rounds interleaved.

Writes bench/results/exported-graph-<cpu kind>.json: passages/s per runtime and form, how far the two forms'
vectors are apart, and where OpenVINO's time goes in one batch of 16 × 144 word pieces (its per-node profile).
Run: `.venv/bin/python -m bench.exported_graph` (after `python -m bench.build_reuters`).
"""

from __future__ import annotations

import argparse
import collections
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.build_reuters import embedded_texts
from bench.common import ROOT, commit, machine_facts, result_path, write_result
from bench.vector_data import REUTERS_INDEX
from indexer.backends import OPENVINO_TYPES, export_onnx, onnx_runtime, openvino_bf16_capable, openvino_runtime
from indexer.embed import Embedder

FORMS = ("sdpa", "eager")
FOLDER = ROOT / "var" / "bench" / "exported-graph"
PRECISIONS = ["bf16", "fp32"] if openvino_bf16_capable() else ["fp32"]


def exported(base: Embedder, form: str) -> Path:
    """The model exported with attention in `form`, made once into var/bench/exported-graph/."""
    path = FOLDER / f"{form}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(base.model_path, path, list(base.tokenizer.model_input_names), attention=form)
    return path


def runtimes(base: Embedder) -> dict[str, Embedder]:
    """An embedder per (runtime, form), each on its own export of the model; OpenVINO as builds compile it."""
    out = {}
    for form in FORMS:
        path = exported(base, form)
        loaded = {f"openvino {p}": openvino_runtime(path, 0, used=p) for p in PRECISIONS}
        loaded["onnxruntime fp32"] = onnx_runtime(path, 0)
        for name, runtime in loaded.items():
            embedder = Embedder(batch_size=base.batch_size)
            embedder.__dict__["runtime"] = runtime  # the cached_property's slot
            out[f"{name}, {form}"] = embedder
    return out


def op_profile(path: Path, precision: str, batch: int = 16, length: int = 144, runs: int = 10) -> dict:
    """OpenVINO's own per-node timings (PERF_COUNT) of one batch of real-sized token ids, summed by node type and
    kernel, one request on every core: the share of the forward pass each kind of work takes."""
    import openvino

    compiled = openvino.Core().compile_model(str(path), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": OPENVINO_TYPES[precision], "PERF_COUNT": True})
    request = compiled.create_infer_request()
    ids = np.random.default_rng(0).integers(1000, 20000, (batch, length), dtype=np.int64)
    names = {i.get_any_name() for i in compiled.inputs}
    feeds = {k: v for k, v in {"input_ids": ids, "attention_mask": np.ones_like(ids),
                               "token_type_ids": np.zeros_like(ids)}.items() if k in names}
    for _ in range(3):
        request.infer(feeds)
    started = time.perf_counter()
    for _ in range(runs):
        request.infer(feeds)  # the profile is the last run's
    seconds = (time.perf_counter() - started) / runs
    spent: collections.Counter = collections.Counter()
    for node in request.profiling_info:
        spent[f"{node.node_type} ({node.exec_type})"] += node.real_time.total_seconds()
    total = sum(spent.values())
    return {"batch": batch, "length": length, "ms_per_batch": round(seconds * 1000, 2),
            "passages_per_second": round(batch / seconds, 1),
            "share": {name: round(t / total, 4) for name, t in spent.most_common() if t / total >= 0.005}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=2000, help="real passages timed per configuration")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    texts = embedded_texts(REUTERS_INDEX)
    random.Random(0).shuffle(texts)
    texts = texts[: args.passages]
    configs = runtimes(Embedder())
    seen: dict[str, list[float]] = {name: [] for name in configs}
    vectors = {}
    for embedder in configs.values():
        embedder.encode(texts[:64])  # warm-up of every shape family and stream
    for _ in range(args.rounds):
        for name, embedder in configs.items():
            started = time.perf_counter()
            vectors[name] = embedder.encode(texts)
            seen[name].append(len(texts) / (time.perf_counter() - started))
    apart = {}
    for name in configs:
        runtime, form = name.rsplit(", ", 1)
        if form == FORMS[0]:
            a, b = vectors[name], vectors[f"{runtime}, {FORMS[1]}"]
            apart[runtime] = {"max_abs_difference": float(np.abs(a - b).max()),
                              "min_cosine": round(float((a * b).sum(axis=1).min()), 7)}
    base = Embedder()
    profiles = {f"openvino {p}, {form}": op_profile(exported(base, form), p) for p in PRECISIONS for form in FORMS}
    result = {"benchmark": "exported_graph", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "commit": commit(), "machine": machine_facts(), "passages": len(texts), "rounds": args.rounds,
              "batch_size": next(iter(configs.values())).batch_size,
              "passages_per_second": {name: {"median": round(statistics.median(v), 1), "runs": [round(x, 1) for x in v]}
                                      for name, v in seen.items()},
              "forms_apart": apart, "openvino_profile": profiles}
    out = write_result(result_path("exported-graph", facts=result["machine"]), result)
    print("| runtime, attention form | passages/s (median) | runs |\n|---|---:|---|")
    for name, row in result["passages_per_second"].items():
        print(f"| {name} | {row['median']} | {row['runs']} |")
    for runtime, row in apart.items():
        print(f"{runtime}: forms' vectors differ by at most {row['max_abs_difference']:.2g} (min cosine {row['min_cosine']})")
    for name, profile in profiles.items():
        shares = ", ".join(f"{k} {v:.0%}" for k, v in list(profile["share"].items())[:6])
        print(f"{name}: {profile['passages_per_second']} passages/s at {profile['batch']} x {profile['length']}; {shares}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
