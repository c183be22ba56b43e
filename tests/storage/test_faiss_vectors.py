"""The index chooser and FaissStore on every type it chooses: real vectors of corpus/ (real model, real FAISS),
filters, deletions, save/load and memory-mapping."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from indexer.errors import ConfigError
from indexer.pipeline import build
from indexer.settings import Settings
from indexer.storage import faiss_vectors as vec
from indexer.storage.faiss_vectors import (
    EF_SEARCH,
    FLAT_LIMIT,
    HNSW_LIMIT,
    HNSW_SPEC,
    FaissStore,
    default_nprobe,
    index_spec,
    ivf_lists,
)
from indexer.storage.folders import current_version
from indexer.storage.local import LocalVersion
from search_api.searcher import Searcher, SearchRequest
from tests.helpers import CORPUS

# limits that make FaissStore.build choose each type for the few hundred passages of corpus/
TYPES = {"flat": {"flat_limit": FLAT_LIMIT}, "ivf-sq8": {"flat_limit": 0}, "hnsw-sq8": {"flat_limit": 0, "hnsw_limit": 1}}


def test_index_spec_at_its_boundaries():
    assert index_spec(0) == index_spec(FLAT_LIMIT - 1) == "IDMap2,Flat"
    assert index_spec(FLAT_LIMIT) == f"IVF{ivf_lists(FLAT_LIMIT)},SQ8"
    assert index_spec(100_000) == "IVF1024,SQ8" and index_spec(1_000_000) == "IVF4096,SQ8" and HNSW_LIMIT == 0
    assert index_spec(10, flat_limit=0) == "IVF16,SQ8" and index_spec(10**6, flat_limit=10**7) == "IDMap2,Flat"
    assert index_spec(10**6, hnsw_limit=10**6) == index_spec(10, flat_limit=0, hnsw_limit=1) == HNSW_SPEC
    assert index_spec(10**6 - 1, hnsw_limit=10**6) == "IVF4096,SQ8"
    # the measured points: a quarter of the lists at 28k and 100k passages, 128 of 4,096 at 1M
    assert default_nprobe(512, 27_805) == 128 and default_nprobe(1024, 100_000) == 256
    assert default_nprobe(4096, 1_000_000) == 128 and default_nprobe(2, 10) == 1 and default_nprobe(4096, 0) == 1024


@pytest.fixture(scope="module")
def real(corpus_index):
    """(ids, vectors) of every passage of the corpus index: real MiniLM embeddings."""
    version = LocalVersion.open(corpus_index)
    ids = np.sort(np.array([r[0] for r in version.text.conn.execute("SELECT id FROM passages")], dtype=np.int64))
    vectors = version.vectors.get(ids)
    version.close()
    return ids, vectors


def exact_top(ids, vectors, query, k, allowed=None):
    keep = np.isin(ids, allowed) if allowed is not None else np.ones(len(ids), dtype=bool)
    scores = vectors[keep] @ query
    return ids[keep][np.lexsort((ids[keep], -scores))][:k]


@pytest.mark.parametrize("kind", TYPES)
def test_each_type_finds_a_passage_by_its_own_vector_and_probes_all_lists_exactly(real, kind):
    ids, vectors = real
    store = FaissStore.build(ids, vectors, vectors.shape[1], **TYPES[kind])
    assert store.spec == index_spec(len(ids), **TYPES[kind]) and len(store) == len(ids)
    if store.ivf is not None:
        store.ivf.nprobe = store.ivf.nlist  # every list: only the 8-bit codes differ from exact search
    if store.hnsw is not None:
        store.hnsw.efSearch = len(ids)  # every node a candidate: likewise
    for row in range(0, len(ids), 17):
        _, found = store.search(vectors[row], 5)
        assert found[0] == ids[row]
        assert len(set(found) & set(exact_top(ids, vectors, vectors[row], 5))) >= 4


def test_an_exact_search_runs_on_one_faiss_thread_and_leaves_the_callers_setting(real, monkeypatch):
    ids, vectors = real
    store = FaissStore.build(ids, vectors, vectors.shape[1])
    seen = []
    search = store.index.search
    monkeypatch.setattr(store.index, "search", lambda *a, **k: seen.append(faiss.omp_get_max_threads()) or search(*a, **k))
    faiss.omp_set_num_threads(2)
    scores, found = store.search(vectors[3], 10)
    assert seen == [1] and faiss.omp_get_max_threads() == 2
    assert list(found) == list(exact_top(ids, vectors, vectors[3], 10))
    assert np.allclose(scores, vectors[np.searchsorted(ids, found)] @ vectors[3], atol=1e-5)


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("exact_limit", [0, 10**6])  # the selector path and the exact-scoring path
def test_filters_return_only_allowed_ids_ranked_as_exact_search(real, kind, exact_limit, monkeypatch):
    monkeypatch.setattr(vec, "EXACT_FILTER_LIMIT", exact_limit)
    ids, vectors = real
    store = FaissStore.build(ids, vectors, vectors.shape[1], **TYPES[kind])
    rng = np.random.default_rng(3)
    for share in (0.05, 0.5):
        allowed = rng.choice(ids, max(3, int(share * len(ids))), replace=False)
        for row in rng.choice(len(ids), 5, replace=False):
            scores, found = store.search(vectors[row], 10, allowed)
            assert set(found) <= set(allowed) and len(found) == min(10, len(allowed))
            assert list(scores) == sorted(scores, reverse=True)
            assert len(set(found) & set(exact_top(ids, vectors, vectors[row], 10, allowed))) >= 8


@pytest.mark.parametrize("kind", TYPES)
def test_removed_passages_are_never_found_even_when_a_filter_names_them(real, kind):
    ids, vectors = real
    store = FaissStore.build(ids, vectors, vectors.shape[1], **TYPES[kind])
    gone = ids[::3]
    assert store.remove(gone) == len(gone) and store.remove(gone) == 0
    assert len(store) == len(ids) - len(gone)
    for row in range(0, len(ids), 3):  # each removed passage's own vector
        _, found = store.search(vectors[row], 10)
        assert not set(found) & set(gone)
        _, found = store.search(vectors[row], 10, allowed=ids[:40])
        assert not set(found) & set(gone) and set(found) <= set(ids[:40])


@pytest.mark.parametrize("kind", TYPES)
def test_memory_mapped_index_answers_as_the_loaded_one_and_is_read_only(real, kind, tmp_path):
    ids, vectors = real
    FaissStore.build(ids, vectors, vectors.shape[1], **TYPES[kind]).save(tmp_path / "v.faiss")
    loaded, mapped = FaissStore.load(tmp_path / "v.faiss"), FaissStore.load(tmp_path / "v.faiss", mmap=True)
    allowed = ids[::2]
    for row in range(0, len(ids), 11):
        for filt in (None, allowed):
            a, b = loaded.search(vectors[row], 10, filt), mapped.search(vectors[row], 10, filt)
            assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert np.array_equal(loaded.get(ids[:7]), mapped.get(ids[:7]))
    with pytest.raises(ConfigError, match="memory-mapped"):
        mapped.remove(ids[:1])


def test_removals_on_hnsw_persist_and_the_graph_still_finds_k(real, tmp_path):
    """HNSW nodes cannot leave FAISS's graph: a removed passage keeps its node under label -1, saved with it."""
    ids, vectors = real
    store = FaissStore.build(ids, vectors, vectors.shape[1], **TYPES["hnsw-sq8"])
    gone = ids[: len(ids) // 2]
    store.remove(gone)
    store.save(tmp_path / "v.faiss")
    loaded = FaissStore.load(tmp_path / "v.faiss")
    assert len(loaded) == len(ids) - len(gone) and loaded.removed == len(gone)
    for row in range(0, len(gone), 7):
        _, found = loaded.search(vectors[row], 10)
        assert len(found) == 10 and not set(found) & set(gone)
    assert loaded.remove(gone) == 0 and np.array_equal(loaded.get(ids[-3:]), store.get(ids[-3:]))
    loaded.add(gone[:1], vectors[:1])  # a removed passage can come back
    assert loaded.search(vectors[0], 1)[1][0] == gone[0] and len(loaded) == len(ids) - len(gone) + 1


def test_nprobe_setting_reaches_the_loaded_index(real, tmp_path):
    ids, vectors = real
    FaissStore.build(ids, vectors, vectors.shape[1], flat_limit=0).save(tmp_path / "v.faiss")
    nlist = ivf_lists(len(ids))
    assert FaissStore.load(tmp_path / "v.faiss").ivf.nprobe == default_nprobe(nlist, len(ids))
    assert FaissStore.load(tmp_path / "v.faiss", nprobe=3).ivf.nprobe == 3
    assert FaissStore.load(tmp_path / "v.faiss", nprobe=10**4).ivf.nprobe == nlist
    FaissStore.build(ids, vectors, vectors.shape[1], **TYPES["hnsw-sq8"]).save(tmp_path / "h.faiss")
    assert FaissStore.load(tmp_path / "h.faiss").hnsw.efSearch == EF_SEARCH
    assert FaissStore.load(tmp_path / "h.faiss", ef_search=300).hnsw.efSearch == 300


@pytest.mark.slow
@pytest.mark.parametrize("hnsw_limit", [HNSW_LIMIT, 10])  # the default (never), and HNSW on request
def test_build_records_the_chosen_type_and_a_searcher_serves_it_memory_mapped(corpus_index, embedder, tmp_path,
                                                                               hnsw_limit):
    """A whole build past the thresholds (forced low): the manifest names IVF-SQ8 (HNSW) and search works mmapped."""
    settings = Settings(index_dir=tmp_path / "idx", flat_limit=10, hnsw_limit=hnsw_limit, mmap=True,
                        cache_dir=str(corpus_index / "cache"))
    build([CORPUS], settings, embedder, progress=False)
    manifest = json.loads((settings.index_dir / current_version(settings.index_dir) / "manifest.json").read_text())
    spec = manifest["faiss"]["spec"]
    assert spec == index_spec(manifest["counts"]["passages"], 10, hnsw_limit) != "IDMap2,Flat"
    assert (spec == HNSW_SPEC) == (hnsw_limit == 10)
    searcher = Searcher.open(settings.index_dir, settings, embedder)
    try:
        assert searcher.version.vectors.mapped
        hits = searcher.search(SearchRequest(q="interest rates", k=5, mode="dense")).hits
        assert len(hits) == 5
    finally:
        searcher.close()
