"""Every benchmark module imports and every benchmark script answers --help; result files are named by what and
where they were measured, and every result file bench/RESULTS.md or docs/ names exists."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys

import pytest

import bench
from bench.common import RESULTS, ROOT, cpu_kind, result_path, size_label

MODULES = sorted(m.name for m in pkgutil.iter_modules(bench.__path__))
KIND = re.compile(r"-[a-z0-9]+(?:-[a-z0-9]+)*-(?:avx2|avx512|avx512bf16|amx)(?:-|\.)")


@pytest.mark.parametrize("name", MODULES)
def test_each_bench_module_imports_and_each_script_answers_help(name: str, capsys, monkeypatch) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert module.__doc__, f"bench/{name}.py has no module docstring"
    if not hasattr(module, "main"):
        return  # a helper module: importing it is the check
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as done:
        module.main()
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("usage:")


def test_cpu_kind_names_the_cpu_and_its_widest_matrix_instructions() -> None:
    assert cpu_kind({"cpu": "AMD EPYC", "simd": ["avx2", "fma"]}) == "amd-epyc-avx2"
    assert cpu_kind({"cpu": "AMD EPYC", "simd": ["avx2", "fma", "avx512f", "avx512_bf16"]}) == "amd-epyc-avx512bf16"
    assert cpu_kind({"cpu": "AMD EPYC 9R14", "simd": ["avx2", "avx512f"]}) == "amd-epyc-9r14-avx512"
    intel = {"cpu": "Intel(R) Xeon(R) Platinum 8488C CPU @ 2.40GHz", "simd": ["avx2", "avx512f", "amx_tile"]}
    assert cpu_kind(intel) == "intel-xeon-platinum-8488c-amx"


def test_result_path_is_what_then_cpu_kind_then_variant() -> None:
    facts = {"cpu": "AMD EPYC", "simd": ["avx2"]}
    assert result_path("http-load-synth100k", facts=facts) == RESULTS / "http-load-synth100k-amd-epyc-avx2.json"
    assert result_path("eval-topics-check", "sweep-rrf_k-100", facts).name == (
        "eval-topics-check-amd-epyc-avx2-sweep-rrf_k-100.json")
    assert [size_label(n) for n in (1_000_000, 100_000, 2959)] == ["1m", "100k", "2959"]


def test_every_result_file_names_the_cpu_kind_it_was_measured_on() -> None:
    unnamed = [p.name for p in RESULTS.iterdir() if p.suffix in (".json", ".png") and not KIND.search(p.name)]
    assert not unnamed, f"name these <what>-<cpu kind>[-<variant>] (bench/common.py result_path): {unnamed}"


def test_every_result_file_the_documents_name_exists() -> None:
    texts = [ROOT / "bench" / "RESULTS.md", *sorted((ROOT / "docs").rglob("*.md"))]
    # whole names only: a pattern such as `eval-*-amd-epyc-avx2.json` or `<what>-<cpu kind>.json` is no file name
    names = re.compile(r"(?<![\w.*}>{<-])[a-z][\w.-]*\.(?:json|png)")
    named = {(t.name, m) for t in texts for m in names.findall(t.read_text())}
    missing = sorted((doc, name) for doc, name in named if KIND.search(name) and not (RESULTS / name).exists())
    assert not missing, f"result files named but not in bench/results: {missing}"
