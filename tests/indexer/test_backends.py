"""Embedding backends: each agrees with torch fp32, exports are kept and reused, and mixing is refused."""

from __future__ import annotations

import collections
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from indexer.embed import Embedder, with_context
from indexer.errors import ConfigError
from indexer.pipeline import build
from indexer.settings import Settings
from indexer.update import update
from tests.helpers import short_reuters, wikinews, write_jsonl

PASSAGES = [
    "Syrian army retakes Palmyra with Russian air support",
    "An apartment block in a Ural city collapsed after a gas explosion, killing at least 37 people. " * 6,
    "Oil",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return Embedder(backend="torch").encode(PASSAGES)


@pytest.mark.parametrize("backend", ["openvino", "onnx"])
def test_backend_vectors_match_torch_fp32(backend, reference, tmp_path):
    vectors = Embedder(backend=backend, export_dir=tmp_path).encode(PASSAGES)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert (vectors * reference).sum(axis=1).min() > 0.9999


def test_int8_backend_runs_and_stays_close(reference, tmp_path):
    vectors = Embedder(backend="onnx-int8", export_dir=tmp_path).encode(PASSAGES)
    # int8 moves vectors more than the float backends (bench/RESULTS.md has its quality gate).
    assert (vectors * reference).sum(axis=1).min() > 0.9


def test_export_is_kept_and_reused(tmp_path):
    Embedder(backend="onnx", export_dir=tmp_path).encode(["first"])
    (exported,) = tmp_path.glob("*/model.onnx")
    stamp = exported.stat().st_mtime_ns
    Embedder(backend="onnx", export_dir=tmp_path).encode(["second"])
    assert exported.stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob("*/model.onnx.*.tmp"))  # no temporary file left behind


def test_the_export_traces_attention_as_products_and_a_softmax(tmp_path):
    import onnx

    Embedder(backend="onnx", export_dir=tmp_path).encode(["first"])
    (exported,) = tmp_path.glob("*/model.onnx")
    ops = collections.Counter(node.op_type for node in onnx.load(str(exported)).graph.node)
    # The traced scaled_dot_product_attention repairs its mask in every layer (IsNaN, Where), which neither runtime
    # fuses; eager attention builds the mask once.
    assert ops["Softmax"] == 6 and ops["IsNaN"] == 0 and ops["Where"] < ops["Softmax"]


def test_batches_sorted_by_length_give_the_same_vectors_as_one_by_one(embedder):
    together = embedder.encode(PASSAGES)
    alone = np.stack([embedder.encode([p])[0] for p in PASSAGES])
    assert np.allclose(together, alone, atol=1e-5)


def test_a_text_gets_the_same_vector_in_any_batch_and_as_a_query(embedder):
    # Real passages of many lengths: in bf16 a text padded further used to come out up to 8e-4 apart.
    texts = [with_context(r["title"], r["body"]) for r in short_reuters(40)]
    together = embedder.encode(texts)
    blocks = np.vstack([embedder.encode(texts[i : i + 7]) for i in range(0, len(texts), 7)])
    alone = np.stack([embedder.encode_query(t) for t in texts[:8]])
    assert np.allclose(together, blocks, atol=1e-5) and np.allclose(together[:8], alone, atol=1e-5)


def test_batches_on_several_streams_come_back_in_their_places(embedder):
    # One text per batch: the batches run on OpenVINO's streams side by side and finish in any order.
    texts = [" ".join(["wheat"] * n) + f" harvest {n}" for n in (3, 90, 1, 40, 7, 150, 12, 60)]
    streamed = Embedder(batch_size=1)
    vectors = streamed.encode(texts)
    assert streamed.runtime.streams >= min(2, os.cpu_count() or 1)
    assert np.allclose(vectors, np.stack([embedder.encode([t])[0] for t in texts]), atol=1e-6)


def test_a_failed_batch_among_streamed_ones_raises_and_leaves_the_runtime_usable(embedder):
    runtime = embedder.runtime
    good = embedder._feeds([[101, 2054, 102], [101, 102]])
    bad = {name: array[:, :, None] for name, array in good.items()}  # a rank the model cannot take
    with ThreadPoolExecutor(1) as pool:  # a hang would show as a timeout, not a stuck test run
        failed = pool.submit(runtime.many, [good, good, bad, good, good])
        with pytest.raises(Exception) as caught:
            failed.result(timeout=60)
    assert not isinstance(caught.value, TimeoutError)
    again = runtime.many([good, good, good])
    assert len(again) == 3 and all(np.array_equal(v, again[0]) for v in again)


def test_concurrent_queries_are_safe(embedder):
    queries = [f"query number {i} about oil prices" for i in range(24)]
    serial = [embedder.encode_query(q) for q in queries]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(embedder.encode_query, queries))
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(serial, parallel))


def test_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="NEWSEARCH_BACKEND must be one of auto, openvino"):
        Settings.from_env({"NEWSEARCH_BACKEND": "tensorrt"})
    with pytest.raises(ConfigError, match="tensorrt"):
        Embedder(backend="tensorrt")
    with pytest.raises(ConfigError, match="NEWSEARCH_QUERY_BACKEND must be one of openvino"):
        Settings.from_env({"NEWSEARCH_QUERY_BACKEND": "tensorrt"})


def test_queries_run_on_the_query_backend_and_land_beside_their_passages(embedder, reference):
    # The default: passages on OpenVINO; queries on ONNX Runtime where OpenVINO runs fp32 (same vectors, less
    # CPU per query), on OpenVINO itself where it runs bf16 (the passages' own vectors, and faster still).
    expected = "openvino" if embedder.precision == "bf16" else "onnx"
    assert (embedder.backend, embedder.query_backend) == ("openvino", expected)
    assert embedder.query_runtime is not embedder.runtime  # OpenVINO compiles queries for latency apart
    as_queries = np.stack([embedder.encode_query(p) for p in PASSAGES])
    assert np.all(np.sum(as_queries * embedder.encode(PASSAGES), axis=1) > 0.99999)
    # fp32 queries beside bf16 passages (a choice NEWSEARCH_QUERY_BACKEND allows) stay within bf16's rounding.
    onnx = Embedder(backend="openvino", query_backend="onnx")
    as_fp32 = np.stack([onnx.encode_query(p) for p in PASSAGES])
    assert np.all(np.sum(as_fp32 * reference, axis=1) > 0.99999)
    assert np.all(np.sum(as_fp32 * embedder.encode(PASSAGES), axis=1) > 0.9999)
    # Passages on a backend whose vectors are not fp32 ONNX Runtime's embed queries the same way by default.
    assert [Embedder(backend=b).query_backend for b in ("onnx", "torch", "onnx-int8")] == ["onnx", "torch", "onnx-int8"]


def test_precision_is_what_the_cpu_runs_and_names_the_vectors():
    from indexer.backends import openvino_default_precision, vectors_kind
    from indexer.embed import built_kind, model_key

    assert openvino_default_precision() in ("fp32", "bf16")
    assert [Embedder(backend=b).precision for b in ("torch", "torch-bf16", "onnx", "onnx-int8")] == [
        "fp32", "bf16", "fp32", "int8"]
    assert Embedder(backend="openvino").precision == openvino_default_precision()
    # A name's own precision adds nothing (older caches keep their keys); a precision the CPU chose is named.
    assert [vectors_kind(b, p) for b, p in [("openvino", "fp32"), ("openvino", "bf16"), ("torch-bf16", "bf16"),
                                            ("torch", "fp32")]] == ["openvino", "openvino-bf16", "torch-bf16", "torch"]
    assert model_key("m", "torch") == "m" and model_key("m", "openvino-bf16") == "m@openvino-bf16"
    # Manifests written before the field: OpenVINO indexes then were built on CPUs without bf16, so fp32.
    assert built_kind({"backend": "openvino"}) == "openvino" and built_kind({}) == "torch"
    assert built_kind({"backend": "openvino", "precision": "bf16"}) == "openvino-bf16"


@pytest.mark.parametrize("cpu", ["fp32", "bf16"])
def test_defaults_follow_the_cpus_precision(cpu, monkeypatch):
    # Both kinds of CPU, whichever this one is: fp32 OpenVINO passages take ONNX Runtime queries (same vectors).
    monkeypatch.setattr("indexer.backends.openvino_default_precision", lambda: cpu)
    embedder = Embedder(backend="openvino")
    assert (embedder.precision, embedder.kind) == (cpu, "openvino" if cpu == "fp32" else "openvino-bf16")
    assert embedder.query_backend == ("onnx" if cpu == "fp32" else "openvino")


def test_openvino_precision_can_be_set(reference, monkeypatch):
    fp32 = Embedder(backend="openvino", openvino_precision="fp32")
    assert (fp32.precision, fp32.kind, fp32.query_backend) == ("fp32", "openvino", "onnx")
    assert (fp32.encode(PASSAGES) * reference).sum(axis=1).min() > 0.99999  # fp32 OpenVINO is fp32 torch's
    with pytest.raises(ConfigError, match="NEWSEARCH_OPENVINO_PRECISION must be one of auto, fp32, bf16"):
        Settings.from_env({"NEWSEARCH_OPENVINO_PRECISION": "int4"})
    monkeypatch.setattr("indexer.backends.openvino_bf16_capable", lambda: False)
    with pytest.raises(ConfigError, match="needs a CPU with bf16 instructions"):
        _ = Embedder(backend="openvino", openvino_precision="bf16").precision


def test_a_ray_worker_of_another_precision_refuses_to_embed():
    pytest.importorskip("ray")
    from indexer.ray_engine import EmbedPassages

    ours = Embedder(backend="openvino")
    with pytest.raises(ConfigError, match="a Ray worker embeds with"):
        EmbedPassages("", str(ours.export_dir), 16, "openvino", kind="openvino-fp16")
    assert EmbedPassages("", str(ours.export_dir), 16, "openvino", kind=ours.kind).embedder.kind == ours.kind


def test_a_server_loads_only_the_query_runtime():
    server = Embedder(backend="openvino", query_backend="onnx")
    server.load(queries=True)
    assert server.dim == 384 and "runtime" not in vars(server)


def test_manifest_records_the_backend_and_update_refuses_another(tmp_path, embedder):
    settings = Settings(index_dir=tmp_path / "idx")
    write_jsonl(tmp_path / "a" / "news.jsonl", wikinews(2))
    version = build([tmp_path / "a"], settings, embedder, progress=False).version
    manifest = json.loads((settings.index_dir / version / "manifest.json").read_text())
    assert manifest["model"]["backend"] == embedder.backend == "openvino"
    assert manifest["model"]["precision"] == embedder.precision
    write_jsonl(tmp_path / "b" / "news.jsonl", wikinews(1, start=50))
    with pytest.raises(ConfigError, match="NEWSEARCH_BACKEND=openvino"):
        update([tmp_path / "b"], settings.replace(backend="onnx"), Embedder(backend="onnx"), progress=False)
    # The same backend in another precision (as if built on another CPU) is refused too, saying how to match it.
    other = "fp32" if embedder.precision == "bf16" else "bf16"
    path = settings.index_dir / version / "manifest.json"
    path.write_text(json.dumps({**manifest, "model": {**manifest["model"], "precision": other}}))
    with pytest.raises(ConfigError, match=f"NEWSEARCH_OPENVINO_PRECISION={other}"):
        update([tmp_path / "b"], settings, embedder, progress=False)


def test_an_index_from_before_the_precision_field_updates_in_fp32(tmp_path, embedder):
    settings = Settings(index_dir=tmp_path / "idx", backend="openvino", openvino_precision="fp32")
    fp32 = Embedder.from_settings(settings)
    write_jsonl(tmp_path / "a" / "news.jsonl", wikinews(2))
    version = build([tmp_path / "a"], settings, fp32, progress=False).version
    path = settings.index_dir / version / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["model"]["precision"]  # as every version written before the field
    path.write_text(json.dumps(manifest))
    write_jsonl(tmp_path / "b" / "news.jsonl", wikinews(1, start=50))
    if embedder.precision != "fp32":  # this CPU's default differs: refused, naming the setting that matches
        with pytest.raises(ConfigError, match="NEWSEARCH_OPENVINO_PRECISION=fp32"):
            update([tmp_path / "b"], settings.replace(openvino_precision="auto"), embedder, progress=False)
    assert update([tmp_path / "b"], settings, fp32, progress=False).embedded > 0


def test_cache_keys_are_per_backend(tmp_path, embedder):
    # One cache shared by builds on two backends must not hand one backend's vectors to the other.
    write_jsonl(tmp_path / "a" / "news.jsonl", wikinews(2))
    shared = str(tmp_path / "cache")
    first = build([tmp_path / "a"], Settings(index_dir=tmp_path / "x", cache_dir=shared), embedder, progress=False)
    onnx = Embedder(backend="onnx", export_dir=tmp_path / "exp")
    second = build([tmp_path / "a"], Settings(index_dir=tmp_path / "y", cache_dir=shared, backend="onnx"), onnx,
                   progress=False)
    assert first.embedded == second.embedded > 0
