"""The on-disk format: versions, manifest checks, damage detection, atomic publish."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from indexer.embed import Embedder
from indexer.errors import IndexMismatch, IndexNotFound
from indexer.storage.faiss_vectors import FaissStore
from indexer.storage.folders import CURRENT, current_version, list_versions, publish
from indexer.storage.local import LocalVersion
from indexer.storage.manifest import check_model


def test_filtered_search_returns_only_allowed_ids_with_deterministic_ties():
    vectors = np.eye(4, dtype=np.float32)[[0, 0, 1, 2]]
    store = FaissStore.build(np.array([40, 10, 30, 20]), vectors, 4)
    scores, ids = store.search(np.array([1, 0, 0, 0], dtype=np.float32), 10)
    assert ids.tolist()[:2] in ([10, 40], [40, 10]) and len(ids) == 4
    scores, ids = store.search(np.array([1, 0, 0, 0], dtype=np.float32), 10, allowed=np.array([30, 40]))
    assert sorted(ids.tolist()) == [30, 40] and ids[0] == 40


def test_corpus_index_layout_and_manifest(corpus_index):
    name = current_version(corpus_index)
    folder = corpus_index / name
    assert {p.name for p in folder.iterdir()} == {"manifest.json", "vectors.faiss", "meta.sqlite", "keyword"}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["model"] == {"name": "sentence-transformers/all-MiniLM-L6-v2", "dim": 384, "max_seq_length": 256,
                                 "fingerprint": Embedder().fingerprint, "backend": "openvino",
                                 "precision": Embedder().precision}
    assert manifest["counts"]["articles"] == 51
    assert manifest["chunking"]["max_tokens"] == 200
    keyword = {f"keyword/{p.name}" for p in (folder / "keyword").iterdir() if not p.name.startswith(".tantivy-")}
    assert set(manifest["files"]) == {"vectors.faiss", "meta.sqlite"} | keyword and "keyword/meta.json" in keyword
    assert manifest["keyword"]["docs"] == 51 and manifest["keyword"]["engine"] == "tantivy"


def copy_index(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_damaged_file_is_refused_with_rebuild_hint(corpus_index, tmp_path):
    index = copy_index(corpus_index, tmp_path / "idx")
    vec = index / current_version(index) / "vectors.faiss"
    data = bytearray(vec.read_bytes())
    data[len(data) // 2] ^= 0xFF
    vec.write_bytes(bytes(data))
    with pytest.raises(IndexMismatch, match="checksum.*news-index build"):
        LocalVersion.open(index)


def test_other_format_or_model_is_refused(corpus_index, tmp_path):
    index = copy_index(corpus_index, tmp_path / "idx")
    manifest_path = index / current_version(index) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    with pytest.raises(IndexMismatch, match="was built with model"):
        check_model(manifest, "other/model", 768, index)
    with pytest.raises(IndexMismatch, match="other files of model.*NEWSEARCH_MODEL to the model it was built with"):
        check_model(manifest, manifest["model"]["name"], 384, index, fingerprint="0123456789abcdef")
    check_model(manifest, manifest["model"]["name"], 384, index, fingerprint=manifest["model"]["fingerprint"])
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="format.*rebuild"):
        LocalVersion.open(index)


def test_missing_or_unpublished_index(tmp_path):
    with pytest.raises(IndexNotFound, match="no index published"):
        LocalVersion.open(tmp_path)
    (tmp_path / "v1").mkdir()
    with pytest.raises(IndexNotFound, match="incomplete"):
        publish(tmp_path, "v1")
    assert not (tmp_path / CURRENT).exists() and list_versions(tmp_path) == []


def test_publish_replaces_current_atomically(corpus_index, tmp_path):
    index = copy_index(corpus_index, tmp_path / "idx")
    old = current_version(index)
    shutil.copytree(index / old, index / "v99990101T000000000000Z-beef")
    publish(index, "v99990101T000000000000Z-beef")
    assert current_version(index) == "v99990101T000000000000Z-beef"
    assert list_versions(index) == [old, "v99990101T000000000000Z-beef"]
    assert [p.name for p in index.iterdir() if p.name.endswith(".tmp")] == []


def test_embedding_cache_round_trip_and_prune(tmp_path):
    from indexer.cache import EmbeddingCache, cache_key

    cache = EmbeddingCache(tmp_path / "c.sqlite", 3)
    keys = [cache_key("m", "a"), cache_key("m", "b")]
    assert cache_key("m", "a") != cache_key("other", "a")
    cache.put(keys, np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    got = cache.get_many([*keys, cache_key("m", "c")])
    assert set(got) == set(keys) and got[keys[1]].tolist() == [0, 1, 0]
    assert cache.prune({keys[0]}) == 1 and len(cache) == 1
    cache.close()


def test_a_model_folder_with_other_files_has_another_fingerprint(tmp_path):
    packaged = Embedder()
    copy = shutil.copytree(packaged.model_path, tmp_path / "all-MiniLM-L6-v2")
    assert Embedder(copy).name == "all-MiniLM-L6-v2"  # a folder is named after itself, not the packaged model
    assert Embedder(copy).fingerprint == packaged.fingerprint
    (copy / ".cache" / "huggingface").mkdir(parents=True)  # a download's etags: not the model
    (copy / ".cache" / "huggingface" / "model.safetensors.metadata").write_text("etag 2026-11-25")
    assert Embedder(copy).fingerprint == packaged.fingerprint
    (copy / "config_sentence_transformers.json").write_text("{}")
    assert Embedder(copy).fingerprint != packaged.fingerprint
    assert Embedder(str(packaged.model_path) + "/").name == packaged.name  # the packaged folder, spelt out


def test_one_model_under_two_names_is_accepted_by_its_files(corpus_index):
    manifest = json.loads((corpus_index / current_version(corpus_index) / "manifest.json").read_text())
    check_model(manifest, "model", 384, corpus_index, fingerprint=manifest["model"]["fingerprint"])
    with pytest.raises(IndexMismatch, match="was built with model"):
        check_model(manifest, "model", 384, corpus_index)


def test_embedding_cache_refuses_vectors_of_other_model_files(tmp_path):
    from indexer.cache import EmbeddingCache
    from indexer.errors import ConfigError

    EmbeddingCache(tmp_path / "c.sqlite", 3, "m", "aaaa").close()
    EmbeddingCache(tmp_path / "c.sqlite", 3, "m", "aaaa").close()
    EmbeddingCache(tmp_path / "c.sqlite", 3, "other", "bbbb").close()  # other names share the file
    with pytest.raises(ConfigError, match="another model called m.*delete that file"):
        EmbeddingCache(tmp_path / "c.sqlite", 3, "m", "cccc")
