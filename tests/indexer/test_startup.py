"""A process imports only the libraries it runs: a build and a query from the shell load no torch, NLTK, SciPy,
web server or cluster client, whose imports were most of a small build's fixed cost besides embedding
(bench/RESULTS.md, "Fixed cost of a process")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT, SEED

# Top-level packages that a build on OpenVINO and a query do not run (torch only exports a model the first time).
UNUSED = ("torch", "sentence_transformers", "transformers", "nltk", "scipy", "sklearn", "pandas", "ray", "pymilvus",
          "fastapi", "uvicorn", "onnx")
# Runs a CLI's main with the given arguments, then prints which of UNUSED it had imported.
SCRIPT = """
import json, sys
from {module} import main
code = main(sys.argv[1:])
print(json.dumps({{"code": code, "imported": sorted({{m.split(".")[0] for m in sys.modules}} & set({unused!r}))}}))
"""


def imported(module: str, *args: str) -> dict:
    """Exit code of `module`'s CLI run with `args` in a fresh process, and which of UNUSED it imported."""
    env = {**os.environ, "NEWSEARCH_BACKEND": "openvino", "NEWSEARCH_CACHE_DIR": "none", "PYTHONPATH": str(ROOT)}
    env.pop("NEWSEARCH_INDEX_DIR", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(module=module, unused=UNUSED), *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_build_and_a_query_import_no_library_they_do_not_run(tmp_path: Path, embedder) -> None:
    # The session's embedder has exported and compiled the model (a first export runs torch) before these run.
    index = tmp_path / "index"
    assert imported("indexer.cli", "build", str(SEED), "--index-dir", str(index), "--quiet") == {
        "code": 0, "imported": []}
    assert imported("search_api.cli", "query", "gas explosion", "--index-dir", str(index), "-k", "3") == {
        "code": 0, "imported": []}
