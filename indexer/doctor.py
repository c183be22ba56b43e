"""The embedding backend chosen by measurement (NEWSEARCH_BACKEND=auto): every allowed backend and precision is
timed on a small real sample and the fastest that passes the quality gate is kept, once per CPU, library
versions and model, as a small JSON file beside the exported models. `news-index doctor` reports it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from indexer.backends import EXPORT_FORMAT, openvino_bf16_capable
from indexer.files import write_whole

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the measurement or the decision rule changes, so older choices are measured again
# What may be chosen, in the order that breaks ties: the backends and precisions that passed the dev-set gate
# (bench/RESULTS.md "Embedding backends"); onnx-int8 failed it, so it is never chosen by measurement.
CANDIDATES = (("openvino", "bf16"), ("openvino", "fp32"), ("onnx", ""), ("torch-bf16", ""), ("torch", ""))
MIN_MEAN_COSINE = 0.99  # the gate's cosine rule, against torch fp32 (bench/embed_backends.py applies it too)
TIE = 0.05  # rates this close to the best count as equal (repeated timings wander by about as much)
ROUNDS = 3  # timed passes over the sample per candidate, in turn; the fastest of each counts
SAMPLE = Path(__file__).with_name("sample.json")
LIBRARIES = ("torch", "sentence-transformers", "transformers", "tokenizers", "onnx", "onnxruntime", "openvino")
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


@dataclass
class Choice:
    """What NEWSEARCH_BACKEND=auto runs on this machine, and the measurements it was chosen from."""

    backend: str
    openvino_precision: str  # the OpenVINO precision asked for ("auto" for the other backends)
    reason: str
    measured: list[dict] = field(default_factory=list)
    key: dict = field(default_factory=dict)
    date: str = ""
    seconds: float = 0.0
    path: str = ""
    measured_now: bool = False


def drift(vectors: np.ndarray, reference: np.ndarray, queries: np.ndarray, ref_queries: np.ndarray) -> dict:
    """Cosine to the reference vectors, and how much of each query's top 10 among the passages is unchanged."""
    cos = (vectors * reference).sum(axis=1)
    top = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    ref_top = np.argsort(-(ref_queries @ reference.T), axis=1)[:, :10]
    overlap = np.array([len(set(a) & set(b)) / 10 for a, b in zip(top, ref_top)])
    return {"mean_cosine": round(float(cos.mean()), 6), "min_cosine": round(float(cos.min()), 6),
            "mean_top10_overlap": round(float(overlap.mean()), 4), "worst_top10_overlap": float(overlap.min())}


def passes_gate(measured_drift: dict) -> bool:
    """The quality gate's rule on vectors: mean cosine to torch fp32 of at least MIN_MEAN_COSINE."""
    return measured_drift["mean_cosine"] >= MIN_MEAN_COSINE


def cpu_facts() -> dict:
    """The CPU's model name, its vector extensions that matter here, and a hash of all its flags."""
    info: dict[str, str] = {}
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            info.setdefault(name.strip(), value.strip())
    flags = sorted(set(info.get("flags", "").split()))
    return {"model": info.get("model name") or platform.processor() or platform.machine(),
            "simd": [f for f in CPU_FLAGS if f in flags],
            "flags_sha": hashlib.sha256(" ".join(flags).encode()).hexdigest()[:16]}


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


def machine_key(fingerprint: str, threads: int, openvino_precision: str) -> dict:
    """What a measured choice holds for: CPU, cores, library versions, model files and the settings it ran with."""
    return {"format": FORMAT, "export_format": EXPORT_FORMAT, "cpu": cpu_facts(),
            "cores": len(os.sched_getaffinity(0)), "threads": threads,
            "libraries": {name: _version(name) for name in LIBRARIES}, "model": fingerprint,
            "openvino_precision": openvino_precision}


def choice_file(export_dir: Path, key: dict) -> Path:
    """Where the choice for `key` is kept: beside the exported models, one small file per key."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return export_dir / "backend-choice" / f"{digest}.json"


def candidates(openvino_precision: str = "auto") -> list[tuple[str, str]]:
    """The backends and precisions worth timing here: bf16 ones only where the CPU has bf16 instructions
    (emulated bf16 is many times slower), OpenVINO only in the precision NEWSEARCH_OPENVINO_PRECISION asks for."""
    bf16 = openvino_bf16_capable()
    out = []
    for backend, precision in CANDIDATES:
        if "bf16" in (backend + precision) and not bf16:
            continue
        if backend == "openvino" and openvino_precision not in ("auto", precision):
            continue
        out.append((backend, precision))
    return out


def decide(rows: list[dict]) -> tuple[dict, str]:
    """The fastest row that passed the gate (ties within TIE go to the earlier candidate), and why."""
    allowed = [r for r in rows if r.get("passes_gate")]
    if not allowed:
        raise RuntimeError("no backend passed the quality gate")  # torch fp32 is the reference: cannot happen
    best = max(r["passages_per_second"] for r in allowed)
    tied = [r for r in allowed if r["passages_per_second"] >= best * (1 - TIE)]
    pick = tied[0]  # rows come in CANDIDATES order
    failed = [r["name"] for r in rows if not r.get("passes_gate")]
    why = (f"{pick['name']}: {pick['passages_per_second']:.1f} passages/s, the fastest of {len(allowed)} that passed "
           f"the gate (mean cosine to torch fp32 >= {MIN_MEAN_COSINE})")
    if len(tied) > 1:
        why += f"; within {TIE:.0%} of the best, so the first in the preference order ({', '.join(r['name'] for r in tied)})"
    if failed:
        why += f"; failed the gate: {', '.join(failed)}"
    return pick, why


def _sample() -> tuple[list[str], list[str]]:
    from indexer.embed import with_context

    data = json.loads(SAMPLE.read_text())
    return [with_context(p["title"], p["text"]) for p in data["passages"]], data["queries"]


def measure(model_path: Path, export_dir: Path, threads: int, batch_size: int,
            openvino_precision: str = "auto") -> list[dict]:
    """Time every candidate on the sample and check each one's drift from torch fp32 (the reference).

    Every candidate is loaded and warmed up first, then the timed passes go round the candidates in turn, so a
    change in what else the machine runs falls on all of them alike; each keeps its fastest pass.
    """
    from indexer.embed import Embedder

    texts, queries = _sample()
    runs = []
    for backend, precision in candidates(openvino_precision):
        embedder = Embedder(model_path, batch_size, threads, backend, export_dir, query_backend=backend,
                            openvino_precision=precision or "auto")
        started = time.perf_counter()
        embedder.load()
        loaded = time.perf_counter() - started
        embedder.encode(texts[:8])  # first-run allocations and kernel choice, on every stream
        runs.append({"embedder": embedder, "backend": backend, "precision": precision, "load": loaded, "best": 0.0})
    for _ in range(ROUNDS):
        for run in runs:
            started = time.perf_counter()
            run["vectors"] = run["embedder"].encode(texts)
            run["best"] = max(run["best"], len(texts) / (time.perf_counter() - started))
    reference = next(r for r in runs if r["backend"] == "torch")
    ref_queries = reference["embedder"].encode(queries)
    rows = []
    for run in runs:
        embedder = run["embedder"]
        row = {"name": run["backend"] + (f"-{run['precision']}" if run["precision"] else ""),
               "backend": run["backend"], "openvino_precision": run["precision"] or "auto",
               "precision": embedder.precision, "passages_per_second": round(run["best"], 2),
               "load_seconds": round(run["load"], 2),
               "drift": drift(run["vectors"], reference["vectors"], embedder.encode(queries), ref_queries)}
        row["passes_gate"] = passes_gate(row["drift"])
        rows.append(row)
    return rows


def chosen(model_path: Path, fingerprint: str, export_dir: Path, threads: int, batch_size: int,
           openvino_precision: str = "auto", remeasure: bool = False) -> Choice:
    """The measured choice for this machine and model: read from its file, or measured now and kept."""
    key = machine_key(fingerprint, threads, openvino_precision)
    path = choice_file(export_dir, key)
    if path.is_file() and not remeasure:
        try:
            data = json.loads(path.read_text())
            if data.get("key") == key:
                return Choice(**{**data, "path": str(path), "measured_now": False})
        except (ValueError, TypeError):
            pass  # a damaged file is measured again and replaced
    log.warning("newsearch: timing the embedding backends on this machine (once; `news-index doctor` shows the "
                "result)")
    started = time.perf_counter()
    rows = measure(model_path, export_dir, threads, batch_size, openvino_precision)
    pick, why = decide(rows)
    choice = Choice(pick["backend"], pick["openvino_precision"], why, rows, key,
                    datetime.now(UTC).isoformat(timespec="seconds"), round(time.perf_counter() - started, 1))
    write_whole(path, json.dumps({k: v for k, v in asdict(choice).items() if k not in ("path", "measured_now")},
                                 indent=2) + "\n")
    return Choice(**{**asdict(choice), "path": str(path), "measured_now": True})


def following_index(settings):  # noqa: ANN001, ANN201 - Settings in and out (settings imports this package)
    """Settings for `update`: with NEWSEARCH_BACKEND=auto, the backend and precision the published version was
    built with, so an update never mixes two kinds of vectors whatever this machine would choose today."""
    from indexer.embed import built_precision
    from indexer.errors import NewsearchError
    from indexer.storage import open_store

    if settings.backend != "auto":
        return settings
    try:
        store = open_store(settings, create=False)
        built = store.manifest(store.current()).get("model", {})
    except NewsearchError:
        return settings  # nothing published (or unreadable): update says so itself
    backend = built.get("backend", "torch")
    precision = built_precision(built) if backend == "openvino" else settings.openvino_precision
    return settings.replace(backend=backend, openvino_precision=precision)


def report(choice: Choice, requested: str, export_dir: Path) -> str:
    """What `news-index doctor` prints: the CPU, what was measured, what runs and why, and where the caches are."""
    cpu = choice.key.get("cpu", cpu_facts())
    lines = [f"CPU: {cpu['model']} ({len(os.sched_getaffinity(0))} cores usable; "
             f"{', '.join(cpu['simd']) or 'no AVX2'}; bf16 instructions: {'yes' if openvino_bf16_capable() else 'no'})",
             "libraries: " + ", ".join(f"{k} {v}" for k, v in choice.key.get("libraries", {}).items() if v),
             f"measured {'now' if choice.measured_now else choice.date} in {choice.seconds} s, on "
             f"{len(json.loads(SAMPLE.read_text())['passages'])} sample passages "
             f"(best of {ROUNDS} passes; load = export/compile/read time):",
             f"  {'backend':<18} {'precision':<9} {'passages/s':>10} {'load s':>7} {'mean cos':>9}  gate"]
    for r in choice.measured:
        lines.append(f"  {r['name']:<18} {r['precision']:<9} {r['passages_per_second']:>10.1f} "
                     f"{r['load_seconds']:>7.1f} {r['drift']['mean_cosine']:>9.6f}  "
                     f"{'pass' if r['passes_gate'] else 'FAIL'}")
    lines.append(f"chosen for NEWSEARCH_BACKEND=auto: {choice.reason}")
    if requested != "auto":
        lines.append(f"in use: NEWSEARCH_BACKEND={requested} (set, so it overrides the measured choice)")
    else:
        lines.append("in use: the measured choice (NEWSEARCH_BACKEND=auto, the default)")
    lines += [f"choice file: {choice.path} (`news-index doctor --remeasure` measures again)",
              f"exported models and OpenVINO's compiled-model cache: {export_dir} (NEWSEARCH_EXPORT_DIR)"]
    return "\n".join(lines)
