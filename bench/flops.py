"""The physical limit of embedding on this machine: measured GEMM rates and the model's FLOPs per passage.

A passage of L word pieces costs, per layer, 8·L·h² (Q, K, V and output projections) + 4·L·h·i (the
feed-forward pair) + 4·L²·h (attention scores and their weighted sum) floating-point operations.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np


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
    """GFLOP/s of an n×n matrix product: numpy (OpenBLAS) fp32, torch fp32 and torch bf16."""
    import torch

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ha, hb = ta.bfloat16(), tb.bfloat16()
    flops = 2.0 * n**3
    small = 256  # bf16 without hardware support is emulated and very slow: measure it on a small product
    sa, sb = ha[:small, :small].contiguous(), hb[:small, :small].contiguous()
    return {"numpy_fp32": round(_rate(lambda: a @ b, flops, seconds), 1),
            "torch_fp32": round(_rate(lambda: ta @ tb, flops, seconds), 1),
            "torch_bf16": round(_rate(lambda: sa @ sb, 2.0 * small**3, seconds), 1)}


def ceiling_rate(backend: str, rates: dict[str, float], bf16_hardware: bool) -> float:
    """The GEMM rate a backend can at best reach: bf16 for torch-bf16 (and OpenVINO where the CPU has
    bf16, its default precision there), else the best measured fp32 rate."""
    fp32 = max(rates["numpy_fp32"], rates["torch_fp32"])
    if backend == "torch-bf16" or (backend == "openvino" and bf16_hardware):
        return rates["torch_bf16"]
    return fp32
