"""Embedding runtimes: the model's forward pass on torch (fp32 or bf16), ONNX Runtime (fp32 or int8) or OpenVINO.

Each takes a padded batch of token ids and returns the model's sentence embeddings as float32.
The ONNX file the other runtimes read is exported from the sentence-transformers model once and kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from indexer.errors import ConfigError

BACKENDS = ("openvino", "torch", "torch-bf16", "onnx", "onnx-int8")
# Backends whose vectors equal fp32 ONNX Runtime's to 1e-7 on this model (bench/RESULTS.md "Query embedding"),
# so their indexes take queries embedded by ONNX Runtime; others embed queries as their passages.
FP32_EXPORTS = ("openvino", "onnx")
EXPORT_FORMAT = 1  # bump when the exported graph changes, so old exports are not reused

Feeds = dict[str, np.ndarray]
Runtime = Callable[[Feeds], np.ndarray]


def load_sentence_transformer(model_path: Path, threads: int):  # noqa: ANN201 - imported lazily
    """The SentenceTransformer in `model_path`, offline (hub access fails on this machine)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    # Counting tokens of whole articles is intended; silence "longer than max length" warnings.
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)
    model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    return model.eval()


def torch_runtime(model_path: Path, threads: int, bf16: bool = False) -> Runtime:
    """The sentence-transformers model itself, in fp32 or with bf16 weights and activations."""
    import torch

    model = load_sentence_transformer(model_path, threads)
    if bf16:
        model = model.to(torch.bfloat16)

    def run(feeds: Feeds) -> np.ndarray:
        with torch.inference_mode():
            out = model({k: torch.from_numpy(v) for k, v in feeds.items()})["sentence_embedding"]
        return out.float().numpy()

    return run


def exported_onnx(model_path: Path, fingerprint: str, export_dir: Path, input_names: list[str],
                  int8: bool = False) -> Path:
    """The model as an ONNX file (pooling and normalisation included), exported on first use and kept.

    Files are keyed by the model's fingerprint, so a changed model folder is exported again; each is
    written to a temporary name and renamed, so a concurrent or killed export never leaves half a file.
    """
    folder = export_dir / f"{fingerprint}-v{EXPORT_FORMAT}"
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        _export(model_path, fp32, input_names)
    if not int8:
        return fp32
    quantized = folder / "model-int8.onnx"
    if not quantized.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Weights per output channel: one scale per row keeps the vectors far closer to fp32.
        with _staging(quantized) as tmp, _quiet("root"):
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
    return quantized


def _export(model_path: Path, target: Path, input_names: list[str]) -> None:
    import torch

    model = load_sentence_transformer(model_path, 0)

    class Graph(torch.nn.Module):
        """The whole sentence-transformers pipeline as one function of the token tensors."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(input_names, tensors)))["sentence_embedding"]

    sample = model.tokenizer(["an example passage to trace", "another"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in input_names}
    with _staging(target) as tmp, torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow: shapes here are dynamic
        # The TorchScript exporter: dynamic batch and length, no onnxscript needed.
        torch.onnx.export(Graph().eval(), tuple(sample[n] for n in input_names), str(tmp),
                          input_names=input_names, output_names=["embedding"],
                          dynamic_axes={**axes, "embedding": {0: "batch"}}, opset_version=17, dynamo=False)


@contextlib.contextmanager
def _quiet(logger: str):  # noqa: ANN202
    """Silence a library's advice printed through logging (onnxruntime's quantizer uses the root logger)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


class _staging:
    """A temporary path beside `target`, renamed onto it when the block succeeds."""

    def __init__(self, target: Path):
        self.target = target

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.", dir=self.target.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, kind, *_exc) -> None:  # noqa: ANN001
        if kind is None:
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)


def onnx_runtime(path: Path, threads: int, spin: bool = True) -> Runtime:
    """An ONNX Runtime session on the CPU; without `spin`, idle threads sleep at once rather than poll."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.log_severity_level = 3
    if not spin:
        # Queries come one by one: between them a polling thread only takes CPU from the rest of the search.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return lambda feeds: session.run(None, {k: v for k, v in feeds.items() if k in names})[0]


def openvino_runtime(path: Path, threads: int) -> Runtime:
    """OpenVINO on the CPU at its default precision for this CPU (bf16 where the CPU has it, else fp32)."""
    import openvino

    core = openvino.Core()
    # LATENCY: one stream using every thread, which is how batches arrive here (one at a time).
    config = {"PERFORMANCE_HINT": "LATENCY", "CACHE_DIR": str(path.parent / "openvino-cache")}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    names = {i.get_any_name() for i in compiled.inputs}
    # An infer request is not safe to share between threads (the server embeds queries in a thread
    # pool): each thread gets its own; the compiled model is shared.
    local = threading.local()

    def run(feeds: Feeds) -> np.ndarray:
        if not hasattr(local, "request"):
            local.request = compiled.create_infer_request()
        return local.request.infer({k: v for k, v in feeds.items() if k in names})[0].copy()

    return run


def check_backend(backend: str, variable: str = "NEWSEARCH_BACKEND") -> None:
    """Refuse a backend name that is not one of BACKENDS, listing them."""
    if backend not in BACKENDS:
        raise ConfigError(f"{variable} must be one of {', '.join(BACKENDS)}, not {backend!r}")


def query_backend_for(backend: str) -> str:
    """The default query backend for passages on `backend`: ONNX Runtime (least latency and CPU per query) where
    it gives the passages' vectors, else the passages' backend itself."""
    return "onnx" if backend in FP32_EXPORTS else backend


def load_runtime(backend: str, model_path: Path, fingerprint: str, export_dir: Path, threads: int,
                 input_names: list[str], queries: bool = False, variable: str = "NEWSEARCH_BACKEND") -> Runtime:
    """The runtime a backend names, ready to run (`queries`: tuned for one short text at a time)."""
    check_backend(backend, variable)
    if backend in ("torch", "torch-bf16"):
        return torch_runtime(model_path, threads, bf16=backend == "torch-bf16")
    _require(backend, variable)
    path = exported_onnx(model_path, fingerprint, export_dir, input_names, int8=backend == "onnx-int8")
    if backend == "openvino":
        return openvino_runtime(path, threads)
    return onnx_runtime(path, threads, spin=not queries)


def _require(backend: str, variable: str) -> None:
    # All core dependencies: a missing one means the install did not finish.
    needs = ["onnx", "openvino" if backend == "openvino" else "onnxruntime"]
    for module in needs:
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(f"backend {backend} needs the package {module}: run `make install`, "
                              f"or set {variable}=torch") from None
