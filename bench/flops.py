"""The physical limit of embedding on this machine: measured GEMM rates and the model's FLOPs per passage.

A passage of L word pieces costs, per layer, 8·L·h² (Q, K, V and output projections) + 4·L·h·i (the
feed-forward pair) + 4·L²·h (attention scores and their weighted sum) floating-point operations.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import commit, machine_facts, result_path, write_result
from indexer.backends import openvino_bf16_capable
from indexer.models import minilm_folder


def model_shape(model_path: Path) -> tuple[int, int, int]:
    """(layers, hidden size, feed-forward size) from a transformers config.json."""
    config = json.loads((model_path / "config.json").read_text())
    return config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]


def passage_flops(length: int, shape: tuple[int, int, int]) -> float:
    """Floating-point operations of one forward pass over `length` word pieces."""
    layers, h, i = shape
    return layers * (8 * length * h * h + 4 * length * h * i + 4 * length * length * h)


def total_flops(lengths: Iterable[int], shape: tuple[int, int, int]) -> float:
    """FLOPs of embedding passages of these lengths (padding excluded: it is work not worth doing)."""
    return float(sum(passage_flops(n, shape) for n in lengths))


def _rate(multiply, flops: float, seconds: float = 2.0) -> float:  # noqa: ANN001
    multiply()
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        multiply()
        runs += 1
    return flops * runs / (time.perf_counter() - started) / 1e9


def gemm_rates(n: int = 2048, seconds: float = 2.0) -> dict[str, float]:
    """GFLOP/s of an n×n matrix product in every library that runs the model here: numpy (OpenBLAS), torch
    and OpenVINO (oneDNN) in fp32, and torch and OpenVINO in bf16 (at full size where the CPU has bf16, as
    the library's `openvino_bf16_capable` tells).

    OpenBLAS may pick an older kernel than the CPU has (its Haswell one on Zen 5, half the AVX-512 rate), so
    the fp32 ceiling is the best of the three libraries, not numpy's alone.
    """
    import torch

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    flops = 2.0 * n**3
    rates = {"numpy_fp32": _rate(lambda: a @ b, flops, seconds), "torch_fp32": _rate(lambda: ta @ tb, flops, seconds),
             "openvino_fp32": _openvino_rate(a, b, "f32", seconds)}
    if openvino_bf16_capable():
        ha, hb = ta.bfloat16(), tb.bfloat16()
        rates["torch_bf16"] = _rate(lambda: ha @ hb, flops, seconds)
        rates["openvino_bf16"] = _openvino_rate(a, b, "bf16", seconds)
    else:
        small = 256  # bf16 without hardware support is emulated and very slow: measure it on a small product
        sa, sb = (t[:small, :small].contiguous().bfloat16() for t in (ta, tb))
        rates["torch_bf16"] = _rate(lambda: sa @ sb, 2.0 * small**3, seconds)
    return {k: round(v, 1) for k, v in rates.items()}


def _openvino_rate(a: np.ndarray, b: np.ndarray, precision: str, seconds: float) -> float:
    """GFLOP/s of a @ b compiled by OpenVINO for the CPU at an inference precision ("f32" or "bf16")."""
    import openvino
    from openvino import opset13

    param = opset13.parameter(list(a.shape), openvino.Type.f32)
    model = openvino.Model([opset13.matmul(param, opset13.constant(b), False, False)], [param])
    compiled = openvino.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                            "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    # Shared input and output buffers: a copy of 16 MB each way would be counted as multiply time.
    return _rate(lambda: request.infer({0: a}, share_inputs=True, share_outputs=True),
                 2.0 * a.shape[0] * a.shape[1] * b.shape[1], seconds)


def ceiling_rate(precision: str, rates: dict[str, float]) -> float:
    """The GEMM rate a backend running in `precision` can at best reach: the best bf16 rate for bf16, else the best
    fp32 rate (int8 is counted against fp32: "fp32-equivalent")."""
    family = "_bf16" if precision == "bf16" else "_fp32"
    return max(v for k, v in rates.items() if k.endswith(family))


def main() -> None:
    parser = argparse.ArgumentParser(description="GEMM ceilings (fp32, bf16) of this machine, and what they allow "
                                     "the model at 256 word pieces; writes bench/results/flops-<cpu kind>.json.")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of every rate, each kept (default 3)")
    args = parser.parse_args()
    shape = model_shape(minilm_folder())
    per_passage = passage_flops(256, shape)
    runs = [gemm_rates() for _ in range(args.rounds)]
    best = {name: max(run[name] for run in runs) for name in runs[0]}
    ceilings = {p: ceiling_rate(p, best) for p in ("fp32", "bf16") if any(k.endswith(p) for k in best)}
    result = {"benchmark": "flops", "date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit(),
              "machine": machine_facts(), "gemm_gflops_runs": runs, "gemm_gflops_best": best,
              "flops_per_passage_256": per_passage,
              "ceiling_passages_per_second_at_256": {p: round(c * 1e9 / per_passage, 1) for p, c in ceilings.items()}}
    path = write_result(result_path("flops", facts=result["machine"]), result)
    for name, rate in best.items():
        print(f"{name:14s} {rate:8.1f} GFLOP/s  (runs: {', '.join(str(run[name]) for run in runs)})")
    for precision, rate in result["ceiling_passages_per_second_at_256"].items():
        print(f"ceiling {precision}: {rate} passages/s at 256 word pieces")
    print(f"written: {path}")


if __name__ == "__main__":
    main()
