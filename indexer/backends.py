"""Embedding runtimes: the model's forward pass on torch (fp32 or bf16), ONNX Runtime (fp32 or int8) or OpenVINO.

Each takes a padded batch of token ids and returns the model's sentence embeddings as float32.
The ONNX file the other runtimes read is exported from the sentence-transformers model once and kept.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib.util
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from indexer.errors import ConfigError
from indexer.files import replacing

BACKENDS = ("openvino", "torch", "torch-bf16", "onnx", "onnx-int8")
AUTO = "auto"  # NEWSEARCH_BACKEND=auto: the fastest allowed backend on this machine, measured (indexer/doctor.py)
# Backends whose vectors equal fp32 ONNX Runtime's up to float rounding when they run in fp32 (bench/RESULTS.md
# "Query embedding"), so their indexes take queries embedded by ONNX Runtime; others embed queries as their passages.
FP32_EXPORTS = ("openvino", "onnx")
# The arithmetic each backend's name implies; OpenVINO's depends on the CPU (see `precision`).
NOMINAL_PRECISION = {"torch-bf16": "bf16", "onnx-int8": "int8"}
EXPORT_FORMAT = 2  # bump when the exported graph changes, so old exports are not reused (2: eager attention)

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


InputNames = Sequence[str] | Callable[[], Sequence[str]]  # or a function giving them, called only to export


def exported_onnx(model_path: Path, fingerprint: str, export_dir: Path, input_names: InputNames,
                  int8: bool = False) -> Path:
    """The model as an ONNX file (pooling and normalisation included), exported on first use and kept.

    Files are keyed by the model's fingerprint, so a changed model folder is exported again; each is
    written to a temporary name and renamed, so a concurrent or killed export never leaves half a file.
    """
    folder = export_dir / f"{fingerprint}-v{EXPORT_FORMAT}"
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        export_onnx(model_path, fp32, input_names)
    if not int8:
        return fp32
    quantized = folder / "model-int8.onnx"
    if not quantized.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Weights per output channel: one scale per row keeps the vectors far closer to fp32.
        with replacing(quantized) as tmp, _quiet("root"):
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
    return quantized


def export_onnx(model_path: Path, target: Path, input_names: InputNames, attention: str = "eager") -> None:
    """Trace the sentence-transformers model into an ONNX file, its attention in the form `attention` names
    (transformers' attn_implementation: eager, as exported; sdpa, as exported before, for bench/exported_graph.py)."""
    import torch

    input_names = list(input_names() if callable(input_names) else input_names)
    model = load_sentence_transformer(model_path, 0)
    _set_attention(model, attention)

    class Graph(torch.nn.Module):
        """The whole sentence-transformers pipeline as one function of the token tensors."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(input_names, tensors)))["sentence_embedding"]

    sample = model.tokenizer(["an example passage to trace", "another"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in input_names}
    with replacing(target) as tmp, torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow: shapes here are dynamic
        # The TorchScript exporter: dynamic batch and length, no onnxscript needed.
        torch.onnx.export(Graph().eval(), tuple(sample[n] for n in input_names), str(tmp),
                          input_names=input_names, output_names=["embedding"],
                          dynamic_axes={**axes, "embedding": {0: "batch"}}, opset_version=17, dynamo=False)


def _set_attention(model, attention: str) -> None:  # noqa: ANN001 - a SentenceTransformer, imported lazily
    """Eager attention traces as plain matrix products and a softmax, which both runtimes fuse; the traced
    scaled_dot_product_attention brings mask-repair nodes (IsNaN, Where) in every layer that neither fuses
    (bench/RESULTS.md "The exported graph"). In fp32 the two give the same vectors up to rounding."""
    for module in model.modules():
        if hasattr(module, "set_attn_implementation") and getattr(module, "config", None) is not None:
            module.set_attn_implementation(attention)
            return


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


# NEWSEARCH_OPENVINO_PRECISION: auto is OpenVINO's own default for the CPU (bf16 where it has AVX512-BF16 or AMX).
OPENVINO_PRECISIONS = ("auto", "fp32", "bf16")
OPENVINO_TYPES = {"fp32": "f32", "bf16": "bf16"}  # our names -> OpenVINO's element types
_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


def _openvino():  # noqa: ANN202 - the openvino module, imported lazily
    try:
        import openvino
    except ImportError:  # a core dependency: missing means the install did not finish
        raise ConfigError("backend openvino needs the package openvino: run `make install`, or set "
                          "NEWSEARCH_BACKEND=onnx") from None
    return openvino


@functools.cache
def openvino_default_precision() -> str:
    """OpenVINO's own default precision on this CPU: bf16 where it has bf16 instructions, else fp32."""
    return _NAMES.get(_openvino().Core().get_property("CPU", "INFERENCE_PRECISION_HINT").to_string(), "fp32")


@functools.cache
def openvino_bf16_capable() -> bool:
    """True when OpenVINO can run bf16 on this CPU (it may still default to fp32 on some such CPUs)."""
    return "BF16" in _openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def nominal_precision(backend: str) -> str:
    """The precision a backend's name implies (and what manifests written before the field recorded)."""
    return NOMINAL_PRECISION.get(backend, "fp32")


def precision(backend: str, openvino: str = "auto") -> str:
    """The arithmetic a backend computes vectors in on this machine (fp32, bf16 or int8); `openvino` is
    NEWSEARCH_OPENVINO_PRECISION."""
    if backend != "openvino":
        return nominal_precision(backend)
    check_openvino_precision(openvino)
    if openvino == "bf16" and not openvino_bf16_capable():
        raise ConfigError("NEWSEARCH_OPENVINO_PRECISION=bf16 needs a CPU with bf16 instructions (AVX512-BF16 or "
                          "AMX) and this one has none; set it to auto or fp32")
    return openvino_default_precision() if openvino == "auto" else openvino


def vectors_kind(backend: str, used: str) -> str:
    """What identifies a backend's vectors in cache keys and update checks: the backend's name, with the
    precision `used` appended when the name does not imply it (OpenVINO in bf16)."""
    return backend if used == nominal_precision(backend) else f"{backend}-{used}"


def openvino_runtime(path: Path, threads: int, queries: bool = False, used: str = "fp32") -> Runtime:
    """OpenVINO on the CPU in precision `used`, asked for explicitly and read back, so the manifest's record
    is what ran.

    For queries, one stream on every thread (the least latency for one short text); for passages, one stream
    per core, so batches run side by side (`OpenVinoRuntime.many`), which gives more passages/s than one
    stream on every core (bench/RESULTS.md, "Embedding backends", bf16 table).
    The compiled model is cached (OpenVINO's CACHE_DIR) beside the export, so under the model's fingerprint,
    in a folder per OpenVINO version and precision: a later process reads it instead of compiling again.
    """
    openvino = _openvino()
    cache = path.parent / f"openvino-cache-{openvino.__version__}-{used}"
    config = {"PERFORMANCE_HINT": "LATENCY" if queries else "THROUGHPUT",
              "CACHE_DIR": str(cache), "INFERENCE_PRECISION_HINT": OPENVINO_TYPES[used]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    core = openvino.Core()
    # From the file's path, not a read model: with the cache warm, OpenVINO then skips reading the ONNX file.
    compiled = core.compile_model(str(path), "CPU", config)
    ran = _NAMES.get(compiled.get_property("INFERENCE_PRECISION_HINT").to_string())
    if ran != used:
        raise ConfigError(f"OpenVINO compiled the model for {ran} on this CPU, not the {used} asked for; set "
                          "NEWSEARCH_OPENVINO_PRECISION=auto")
    return OpenVinoRuntime(compiled)


class OpenVinoRuntime:
    """A compiled OpenVINO model: one batch at a time from any thread, or many batches through all its streams."""

    def __init__(self, compiled) -> None:  # noqa: ANN001 - openvino.CompiledModel, imported lazily
        self.compiled = compiled
        self.names = {i.get_any_name() for i in compiled.inputs}
        self.streams = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        # An infer request is not safe to share between threads (the server embeds queries in a thread
        # pool): each thread gets its own; the compiled model is shared.
        self.local = threading.local()

    def _inputs(self, feeds: Feeds) -> Feeds:
        return {k: v for k, v in feeds.items() if k in self.names}

    def __call__(self, feeds: Feeds) -> np.ndarray:
        if not hasattr(self.local, "request"):
            self.local.request = self.compiled.create_infer_request()
        return self.local.request.infer(self._inputs(feeds))[0].copy()

    def many(self, batches: Iterable[Feeds]) -> list[np.ndarray]:
        """Outputs of every batch, in order. Up to `streams` batches run at once, each on a request of this
        call's own (so callers in several threads do not share one); a failed batch raises once every
        request it started has stopped."""
        if self.streams < 2:
            return [self(feeds) for feeds in batches]
        free = [self.compiled.create_infer_request() for _ in range(self.streams)]
        running: collections.deque = collections.deque()  # in submission order, so outputs come out in order
        out: list[np.ndarray] = []
        try:
            for feeds in batches:
                if not free:
                    out.append(_finished(running[0]))
                    free.append(running.popleft())
                request = free.pop()
                request.start_async(self._inputs(feeds))
                running.append(request)
            while running:
                out.append(_finished(running[0]))
                running.popleft()
        except BaseException:
            for request in running:  # let every started batch end before its inputs and request go away
                with contextlib.suppress(Exception):
                    request.wait()
            raise
        return out


def _finished(request) -> np.ndarray:  # noqa: ANN001 - openvino.InferRequest
    """Wait for a started request (raising its error, if it failed) and copy its output."""
    request.wait()
    return request.get_output_tensor(0).data.copy()


def check_openvino_precision(value: str) -> None:
    """Refuse a NEWSEARCH_OPENVINO_PRECISION that is not one of OPENVINO_PRECISIONS, listing them."""
    if value not in OPENVINO_PRECISIONS:
        raise ConfigError(f"NEWSEARCH_OPENVINO_PRECISION must be one of {', '.join(OPENVINO_PRECISIONS)}, "
                          f"not {value!r}")


def check_backend(backend: str, variable: str = "NEWSEARCH_BACKEND", allow_auto: bool = False) -> None:
    """Refuse a backend name that is not one of BACKENDS (or auto, where `allow_auto`), listing them."""
    names = (AUTO, *BACKENDS) if allow_auto else BACKENDS
    if backend not in names:
        raise ConfigError(f"{variable} must be one of {', '.join(names)}, not {backend!r}")


def query_backend_for(backend: str, openvino: str = "auto") -> str:
    """The default query backend for passages on `backend`: ONNX Runtime (least latency and CPU per query of the
    fp32 runtimes) where it gives the passages' vectors, else the passages' backend itself (OpenVINO in bf16 is
    the fastest allowed one for one query: bench/RESULTS.md, "Query embedding", bf16 table)."""
    return "onnx" if backend in FP32_EXPORTS and precision(backend, openvino) == "fp32" else backend


def load_runtime(backend: str, model_path: Path, fingerprint: str, export_dir: Path, threads: int,
                 input_names: InputNames, queries: bool = False, variable: str = "NEWSEARCH_BACKEND",
                 openvino: str = "auto") -> Runtime:
    """The runtime a backend names, ready to run (`queries`: tuned for one short text at a time)."""
    check_backend(backend, variable)
    if backend in ("torch", "torch-bf16"):
        return torch_runtime(model_path, threads, bf16=backend == "torch-bf16")
    _require(backend, variable)
    path = exported_onnx(model_path, fingerprint, export_dir, input_names, int8=backend == "onnx-int8")
    if backend == "openvino":
        return openvino_runtime(path, threads, queries, precision(backend, openvino))
    return onnx_runtime(path, threads, spin=not queries)


def _require(backend: str, variable: str) -> None:
    # All core dependencies: a missing one means the install did not finish.
    # Looked up, not imported: importing onnx is slow (bench/RESULTS.md, "Fixed cost of a process"), and only an export needs it.
    needs = ["onnx", "openvino" if backend == "openvino" else "onnxruntime"]
    for module in needs:
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"backend {backend} needs the package {module}: run `make install`, "
                              f"or set {variable}=torch") from None
