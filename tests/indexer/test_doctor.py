"""NEWSEARCH_BACKEND=auto: the measured choice, its file and `news-index doctor`; the fast tokenizer and the
model facts read from files instead of computed at start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from indexer.backends import EXPORT_FORMAT
from indexer.doctor import (
    CANDIDATES,
    choice_file,
    chosen,
    decide,
    machine_key,
    passes_gate,
)
from indexer.embed import Embedder, configured_dim
from indexer.settings import Settings
from indexer.wordpieces import WordPieces
from tests.helpers import CORPUS, ROOT


def _row(name: str, rate: float, cosine: float = 1.0) -> dict:
    backend, _, precision = name.partition("-") if name.startswith("openvino") else (name, "", "")
    return {"name": name, "backend": backend, "openvino_precision": precision or "auto",
            "passages_per_second": rate, "passes_gate": passes_gate({"mean_cosine": cosine})}


def test_the_fastest_backend_within_the_gate_is_chosen():
    pick, why = decide([_row("openvino-fp32", 30.0), _row("onnx", 41.0), _row("torch", 20.0)])
    assert pick["name"] == "onnx" and "41.0 passages/s" in why
    # Failing the gate removes even the fastest; the reason says so.
    pick, why = decide([_row("openvino-fp32", 30.0), _row("onnx", 41.0, cosine=0.95), _row("torch", 20.0)])
    assert pick["name"] == "openvino-fp32" and "failed the gate: onnx" in why


def test_near_ties_go_to_the_preference_order_so_the_rule_is_stable():
    # Within 5% of each other, timings are noise: the earlier candidate wins whichever was measured faster.
    rows = [_row("openvino-fp32", 39.5), _row("onnx", 40.0), _row("torch", 20.0)]
    assert decide(rows)[0]["name"] == "openvino-fp32"
    assert [c[0] for c in CANDIDATES].index("openvino") < [c[0] for c in CANDIDATES].index("onnx")


def test_the_choice_is_kept_per_cpu_libraries_model_and_settings(tmp_path):
    key = machine_key("abc", 0, "auto")
    assert key["cpu"]["model"] and key["libraries"]["torch"] and key["model"] == "abc"
    paths = {choice_file(tmp_path, k) for k in (key, machine_key("abd", 0, "auto"), machine_key("abc", 2, "auto"),
                                                machine_key("abc", 0, "fp32"))}
    assert len(paths) == 4 and choice_file(tmp_path, machine_key("abc", 0, "auto")) in paths


def test_a_set_backend_overrides_and_measures_nothing(tmp_path):
    embedder = Embedder(backend="onnx", export_dir=tmp_path)
    assert (embedder.backend, embedder.query_backend, embedder.kind) == ("onnx", "onnx", "onnx")
    assert not (tmp_path / "backend-choice").exists()
    assert Settings().backend == "auto" and Settings.from_env({"NEWSEARCH_BACKEND": "auto"}).backend == "auto"


def test_word_pieces_equal_the_transformers_tokenizer(embedder):
    from transformers import AutoTokenizer

    ours = WordPieces(embedder.model_path)
    theirs = AutoTokenizer.from_pretrained(str(embedder.model_path), local_files_only=True)
    texts = [json.loads(line)["body"] for line in (CORPUS / "wikinews.jsonl").read_text().splitlines()]
    texts += ["", "Café naïve ÉTÉ 東京 🎉", "word " * 700]
    for kwargs in ({"truncation": True, "max_length": 256}, {"add_special_tokens": False}):
        assert ours(texts, **kwargs)["input_ids"] == theirs(texts, **kwargs)["input_ids"]
    assert ours("one query")["input_ids"] == theirs("one query")["input_ids"]
    assert (ours.pad_token_id, ours.model_max_length) == (theirs.pad_token_id, theirs.model_max_length)
    assert ours.model_input_names == list(theirs.model_input_names)


def test_the_dimension_is_read_from_the_model_files(embedder):
    assert configured_dim(embedder.model_path) == 384 == embedder.encode(["a passage"]).shape[1]

    from indexer.embed import _pooled_dim

    # sentence-transformers 6 saves the Pooling config by mode name (as `news-index adapt` writes it)
    assert _pooled_dim({"embedding_dimension": 384, "pooling_mode": "mean", "include_prompt": True}) == 384
    assert _pooled_dim({"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True,
                        "pooling_mode_max_tokens": True}) == 768
    assert _pooled_dim({"embedding_dimension": 384, "pooling_mode": ["mean", "max"]}) is None  # a forward pass says


def test_the_fingerprint_is_remembered_until_a_file_changes(tmp_path, embedder):
    folder = tmp_path / "model"
    shutil.copytree(embedder.model_path, folder)
    first = Embedder(folder, backend="onnx", export_dir=tmp_path / "exports")
    assert first.fingerprint == embedder.fingerprint  # same files, same hash (the name of the folder is not in it)
    assert len(list((tmp_path / "exports" / "fingerprints").iterdir())) == 1
    assert Embedder(folder, backend="onnx", export_dir=tmp_path / "exports").fingerprint == embedder.fingerprint
    with open(folder / "README.md", "a") as fh:
        fh.write("\nchanged\n")
    assert Embedder(folder, backend="onnx", export_dir=tmp_path / "exports").fingerprint != embedder.fingerprint


@pytest.mark.slow
def test_auto_measures_once_keeps_the_choice_and_doctor_reports_it(tmp_path, embedder):
    # Reuse this machine's ONNX export (making one takes a while); everything else lands in tmp_path.
    exports = tmp_path / "exports"
    exports.mkdir()
    folder = f"{embedder.fingerprint}-v{EXPORT_FORMAT}"
    os.symlink(embedder.export_dir / folder, exports / folder)
    picked = chosen(embedder.model_path, embedder.fingerprint, exports, 0, 16)
    assert picked.measured_now and {r["name"] for r in picked.measured} >= {"torch", "onnx", "openvino-fp32"}
    assert all(r["passes_gate"] and r["passages_per_second"] > 0 for r in picked.measured)
    assert (picked.backend, picked.openvino_precision) == next(
        (r["backend"], r["openvino_precision"]) for r in picked.measured if r["name"] in picked.reason.split(":")[0])
    again = chosen(embedder.model_path, embedder.fingerprint, exports, 0, 16)
    assert not again.measured_now and (again.backend, again.reason) == (picked.backend, picked.reason)
    auto = Embedder(backend="auto", export_dir=exports)
    assert auto.backend == picked.backend and auto.encode(["a passage"]).shape == (1, 384)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSEARCH_EXPORT_DIR": str(exports)}
    env.pop("NEWSEARCH_BACKEND", None)
    out = subprocess.run([sys.executable, "-m", "indexer.cli", "doctor"], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "CPU: " in out and f"chosen for NEWSEARCH_BACKEND=auto: {picked.reason}" in out
    assert picked.path in out and "in use: the measured choice" in out
    out = subprocess.run([sys.executable, "-m", "indexer.cli", "doctor"], env={**env, "NEWSEARCH_BACKEND": "torch"},
                         capture_output=True, text=True, check=True).stdout
    assert "NEWSEARCH_BACKEND=torch (set, so it overrides the measured choice)" in out


def test_update_on_auto_follows_the_published_versions_backend(tmp_path):
    from indexer.doctor import following_index
    from indexer.pipeline import build
    from tests.helpers import wikinews, write_jsonl

    settings = Settings(index_dir=tmp_path / "idx")
    assert following_index(settings) == settings  # nothing published yet: nothing to follow
    write_jsonl(tmp_path / "a" / "news.jsonl", wikinews(2))
    build([tmp_path / "a"], settings, Embedder(backend="onnx"), progress=False)
    assert following_index(settings).backend == "onnx"  # whatever this machine would choose today
    assert following_index(settings.replace(backend="torch")).backend == "torch"  # a set backend stays set
