"""The Milvus backend's own behaviour on Milvus Lite (in-process, one per test): names, filters, the version life
cycle through collections and the alias, and what Milvus answers for dense, BM25 and filtered searches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import ConfigError, IndexMismatch, IndexNotFound
from indexer.records import Article, Passage
from indexer.settings import Settings
from indexer.storage.base import Filter, KeywordWeights
from indexer.storage.milvus import MilvusStore
from indexer.storage.milvus_schema import (
    check_prefix,
    collection_name,
    filter_expr,
    fit,
    from_micros,
    micros,
    split_body,
)
from indexer.storage.milvus_wire import lite_path
from indexer.storage.words import analyzed, stems

ARTICLES = [
    Article("a1", "Oil prices rise", "Oil prices rose sharply today. Traders were surprised.", datetime(2020, 1, 2),
            "reuters", "http://x/1", "h1", {"k": "v"}),
    Article("a2", "Wheat harvest", "The wheat harvest was poor. Grain exports fell.", None, "ap", None, "h2", {}),
    Article("a3", 'Gold "rally"', "Gold climbed as the dollar slid.", datetime(2021, 6, 1, 12), "ap", None, "h3", {}),
]
PASSAGES = {
    "a1": [Passage(1001, "a1", 0, "Oil prices rose sharply today.", 0, 30, 6),
           Passage(1002, "a1", 1, "Traders were surprised.", 31, 54, 4)],
    "a2": [Passage(2001, "a2", 0, "The wheat harvest was poor. Grain exports fell.", 0, 47, 9)],
    "a3": [Passage(3001, "a3", 0, "Gold climbed as the dollar slid.", 0, 32, 7)],
}
IDS = np.array([1001, 1002, 2001, 3001], dtype=np.int64)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MilvusStore]:
    """A Milvus store on its own Milvus Lite file."""
    s = MilvusStore(Settings(index_dir=tmp_path / "index"))
    yield s
    s.close()


@pytest.fixture
def vectors() -> np.ndarray:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(len(IDS), 8)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write(store: MilvusStore, vectors: np.ndarray, articles: list[Article] = ARTICLES) -> str:
    with store.begin({"name": "test-model", "dim": 8}, {"fields": "title+body"}) as writer:
        keep = [i for i, pid in enumerate(IDS) if any(pid == p.id for a in articles for p in PASSAGES[a.id])]
        writer.add(articles, PASSAGES, IDS[keep], vectors[keep], {"a1": "a1"})
        return writer.commit()


def test_names_and_filters_are_valid_milvus() -> None:
    assert collection_name("newsearch", "v20260101T000000Z-ab12", "p") == "newsearch_v20260101T000000Z_ab12_p"
    with pytest.raises(ConfigError, match="NEWSEARCH_MILVUS_COLLECTION"):
        check_prefix("news-search")
    since, before = datetime(2020, 1, 1), datetime(2020, 1, 2, 0, 0, 0, 1)
    assert filter_expr(since, before, ("ap", 'x"y')) == (
        f'published >= {micros(since)} and published < {micros(before)} and source in ["ap", "x\\"y"]')
    assert filter_expr(None, None, ()) == ""
    assert from_micros(micros(before)) == before
    with pytest.raises(ConfigError, match=r"\.db"):
        lite_path("/tmp/milvus.sqlite")


def test_bm25_text_is_stemmed_here_so_lite_and_a_cluster_match_the_same_words() -> None:
    assert analyzed("Oil prices ROSE; the Café rates rising") == "oil price rose the cafe rate rise"  # Porter
    assert stems(["Prices", "rising"]) == ["price", "rise"]


def test_long_text_is_cut_and_split_on_character_boundaries() -> None:
    body = "é" * 40_000  # 80,000 bytes
    parts = split_body(body)
    assert "".join(parts) == body and all(len(p.encode()) <= 65_535 for p in parts)
    assert len(fit(body).encode()) <= 65_535 and body.startswith(fit(body))


def test_version_life_cycle_through_collections_and_alias(store: MilvusStore, vectors: np.ndarray) -> None:
    with pytest.raises(IndexNotFound):
        store.current()
    first = write(store, vectors)
    assert store.versions() == [first] and store.unfinished(0) == []
    store.publish(first)
    second = write(store, vectors, ARTICLES[:2])
    assert store.current() == first  # complete but not published
    store.publish(second)
    assert store.current() == second and store.versions() == [first, second]
    with pytest.raises(IndexMismatch, match="published"):
        store.remove(second)
    store.remove(first)
    assert store.versions() == [second]
    assert store.open().text.count_articles() == 2


def test_an_aborted_or_killed_writer_leaves_no_complete_version(store: MilvusStore, vectors: np.ndarray) -> None:
    with pytest.raises(RuntimeError), store.begin({"name": "m", "dim": 8}, {"fields": "title+body"}) as writer:
        writer.add(ARTICLES, PASSAGES, IDS, vectors, {})
        raise RuntimeError("killed")
    assert store.versions() == [] and store.client.list_collections() == []
    killed = store.begin({"name": "m", "dim": 8}, {"fields": "title+body"})  # never committed nor aborted
    assert store.versions() == [] and store.unfinished(3600) == []  # its writer (this process) still runs
    assert store.unfinished(0) == [killed.name]
    with pytest.raises(IndexNotFound):
        store.open(killed.name)
    store.remove(killed.name)
    assert store.client.list_collections() == []


def test_dense_search_with_filters_pushed_into_milvus(store: MilvusStore, vectors: np.ndarray) -> None:
    store.publish(write(store, vectors))
    version = store.open()
    scores, ids = version.vectors.search(vectors[0], 10)
    assert ids[0] == 1001 and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert sorted(ids.tolist()) == sorted(IDS.tolist())
    _, ids = version.vectors.search(vectors[0], 10, filter=Filter(since=datetime(2020, 1, 2)))
    assert sorted(ids.tolist()) == [1001, 1002, 3001]  # a2 is undated: it fails any date bound
    _, ids = version.vectors.search(vectors[0], 10, filter=Filter(before=datetime(2020, 1, 2)))
    assert ids.tolist() == []
    _, ids = version.vectors.search(vectors[0], 10, filter=Filter(sources=("ap",)))
    assert sorted(ids.tolist()) == [2001, 3001]
    _, ids = version.vectors.search(vectors[0], 10, allowed=np.array([2001, 1002]))
    assert sorted(ids.tolist()) == [1002, 2001]
    np.testing.assert_allclose(version.vectors.get(np.array([3001, 1001])), vectors[[3, 0]], atol=1e-6)


def test_bm25_search_over_articles_and_passages(store: MilvusStore, vectors: np.ndarray) -> None:
    store.publish(write(store, vectors))
    text = store.open().text
    found = text.keyword_articles(["oil", "grain"], 10, KeywordWeights())
    assert {aid for aid, _ in found} == {"a1", "a2"} and all(score > 0 for _, score in found)
    assert [aid for aid, _ in text.keyword_articles(["oil", "grain"], 10, KeywordWeights(),
                                                    Filter(sources=("ap",)))] == ["a2"]
    assert text.keyword_articles(["gold"], 10, KeywordWeights(), Filter(since=datetime(2021, 6, 2))) == []
    assert text.keyword_articles([], 10, KeywordWeights()) == []
    assert [pid for pid, _ in text.keyword_passages(["traders"], 10, 1.0)] == [1002]
    assert text.best_keyword_passages(["traders", "grain"], ["a1", "a2", "a3"]) == {"a1": 1002, "a2": 2001}
    n, df, present = text.word_presence(["oil", "gold", "zebra"], [1, 2, 3])
    assert (n, df) == (3, [1, 1, 0])
    assert present.tolist() == [[True, False, False], [False, False, True], [False, False, False]]


def test_milvus_own_hybrid_search_runs_on_a_version(store: MilvusStore, vectors: np.ndarray) -> None:
    """Not used by the Searcher (it fuses article rankings itself), but the collections support it."""
    from pymilvus import AnnSearchRequest, RRFRanker

    version = store.open(write(store, vectors))
    requests = [AnnSearchRequest([vectors[3].tolist()], "dense", {}, limit=4),
                AnnSearchRequest([analyzed("gold dollar")], "sparse", {}, limit=4)]
    hits = store.client.hybrid_search(version.vectors.collection, requests, RRFRanker(60), limit=2,
                                      filter=version.vectors.rows, output_fields=["id"])[0]
    assert hits[0]["entity"]["id"] == 3001  # first in both rankings
