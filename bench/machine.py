"""Facts about the benchmark machine for result files: CPU model and vector extensions, cores, memory."""

from __future__ import annotations

import os
import platform
import subprocess

import faiss
import numpy as np

SIMD = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")


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
