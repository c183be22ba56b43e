"""What every benchmark shares: where the repository, data and results are, the run's commit and machine, the
dev sets with their tune/check split, percentiles, and the result file's name (`<what>-<cpu kind>[-<variant>]`)."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from search_api.evaluation.harness import load_qrels, load_queries, split_half

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REUTERS = ROOT.parent / "shared" / "data" / "reuters21578"
EVAL = ROOT.parent / "shared" / "data" / "eval"
SPLIT = ROOT / "bench" / "dev_split.json"
SETS = {"headlines": "body", "topics": "title+body"}  # dev set -> what is indexed (data README)
SIMD = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")


def commit() -> str:
    """The checkout's commit, for the record."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def memory_kb(pid: int | str = "self") -> dict[str, int]:
    """A process's memory figures from /proc/<pid>/status in kB (VmRSS, VmHWM, RssAnon, RssFile, ...)."""
    with open(f"/proc/{pid}/status") as fh:
        fields = (line.split(":", 1) for line in fh if line.rstrip().endswith(" kB"))
        return {name: int(value.split()[0]) for name, value in fields}


def machine_facts() -> dict:
    """CPU model, which SIMD extensions it has, cores usable, RAM, and the numpy/FAISS builds."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = set(info.get("Flags", "").split())
    with open("/proc/meminfo") as fh:
        mem_kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
    return {"cpu": info.get("Model name", platform.processor()), "arch": platform.machine(),
            "cores": len(os.sched_getaffinity(0)), "simd": [f for f in SIMD if f in flags],
            "ram_gib": round(mem_kb / 2**20, 1), "numpy": np.__version__, "faiss": faiss.__version__,
            "faiss_build": faiss.get_compile_options()}


def cpu_kind(facts: dict | None = None) -> str:
    """The CPU's name and widest matrix instructions as a file-name part: `amd-epyc-avx2`, `amd-epyc-avx512bf16`."""
    facts = facts or machine_facts()
    simd = set(facts.get("simd", []))
    widest = ("amx" if "amx_tile" in simd else "avx512bf16" if "avx512_bf16" in simd
              else "avx512" if "avx512f" in simd else "avx2" if "avx2" in simd else facts.get("arch", "cpu"))
    name = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|@.*", " ", str(facts.get("cpu", "")).lower())
    name = "-".join(re.sub(r"[^a-z0-9]+", " ", name).split()[:4]) or "cpu"
    return f"{name}-{widest}"


def result_path(what: str, variant: str = "", facts: dict | None = None) -> Path:
    """bench/results/<what>-<cpu kind>[-<variant>].json: what was measured, where, and how it differs."""
    return RESULTS / f"{what}-{cpu_kind(facts)}{'-' + variant if variant else ''}.json"


def write_result(path: Path, result: dict, indent: int = 2) -> Path:
    """Write a result file (JSON, folders made as needed) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=indent, default=str) + "\n")
    return path


def size_label(n: int) -> str:
    """1000000 -> `1m`, 100000 -> `100k`, 2959 -> `2959`: a corpus size in a file name."""
    for unit, div in (("m", 1_000_000), ("k", 1_000)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def dev_queries() -> list[str]:
    """Every dev query text, headlines then topics (559)."""
    return [text for name in SETS for text in load_queries(EVAL / f"{name}-queries.jsonl").values()]


def dev_set(name: str, half: str | None = None) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """A dev set's queries (all, or one half of bench/dev_split.json) and its qrels."""
    queries, qrels = load_queries(EVAL / f"{name}-queries.jsonl"), load_qrels(EVAL / f"{name}-qrels.tsv")
    return split_half(queries, qrels, SPLIT, name, half) if half else (queries, qrels)


def index_dir(fields: str, tag: str = "") -> Path:
    """Where the full-corpus index for these fields (and an index tag, e.g. another backend's) lives."""
    return ROOT / "var" / "bench" / f"eval-reuters-{fields.replace('+', '-')}{'-' + tag if tag else ''}"


def callers(call: Callable[[Any], Any], items: Sequence[Any], n: int) -> dict:
    """`n` threads share the items, calling `call` on each: every call's latency, wall and process CPU per call."""
    took: list[float] = []
    lock = threading.Lock()

    def work(part: Sequence[Any]) -> None:
        mine = []
        for item in part:
            t0 = time.perf_counter()
            call(item)
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            took.extend(mine)

    threads = [threading.Thread(target=work, args=(items[i::n],)) for i in range(n)]
    wall, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"callers": n, "p50_ms": round(percentile(took, 50), 3), "p99_ms": round(percentile(took, 99), 3),
            "wall_ms_per_query": round(wall * 1000 / len(items), 3),
            "cpu_ms_per_query": round(cpu * 1000 / len(items), 3), "queries_per_s": round(len(items) / wall, 1)}
