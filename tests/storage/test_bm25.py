"""The in-memory keyword index gives exactly FTS5's bm25() ranking and scores, and the Searcher uses it."""

from __future__ import annotations

import json

import pytest

from indexer.pipeline import build
from indexer.settings import Settings
from indexer.storage import fts
from indexer.storage.base import KeywordWeights
from indexer.storage.bm25 import KeywordIndex, instances, varints
from indexer.storage.local import LocalVersion
from indexer.update import update
from search_api.ranking.query_words import query_words
from search_api.searcher import Searcher, SearchRequest
from tests.helpers import WIKINEWS, shared_data

QUERIES = ["oil prices", "Syrian army Palmyra", "the of", "rates rate RATES interest", "zzzqqq nothing",
           "President said on Tuesday", "naïve café résumé", "2016 election results"]


def test_varints_read_sqlite_encoding():
    assert varints(bytes([0x05, 0x81, 0x00, 0x7F])) == [5, 128, 127]
    assert varints(bytes([0xFF] * 8 + [0x01])) == [(1 << 64) - 255]


def memory_top(index: KeywordIndex, ids: dict[int, str], query: str, limit: int) -> list[tuple[str, float]]:
    terms = index.terms(query_words(query))
    assert terms is not None
    rows, scores = index.top(terms, limit)
    return sorted(((ids[r], s) for r, s in zip(rows.tolist(), scores.tolist())), key=lambda p: (-p[1], p[0]))[:limit]


@pytest.mark.parametrize("weights", [(1.0, 1.0), (2.0, 0.3)])
def test_memory_scores_equal_fts5_bm25(corpus_index, weights):
    version = LocalVersion.open(corpus_index)
    try:
        conn = version.text.conn
        index = KeywordIndex.load(conn, "articles_fts", [*weights, 1.0])
        assert instances(conn, "articles_fts") > 0 and index.nbytes > 0
        ids = dict(conn.execute("SELECT num, id FROM articles"))
        matched = 0
        for query in QUERIES:
            for limit in (3, 200):
                expected = fts.search_articles(conn, query_words(query), limit, KeywordWeights(*weights))
                assert memory_top(index, ids, query, limit) == expected, query
                matched += len(expected)
        assert matched > 50  # the queries do match the corpus
    finally:
        version.close()


def test_a_word_fts5_splits_falls_back_to_sql(corpus_index):
    version = LocalVersion.open(corpus_index)
    try:
        index = KeywordIndex.load(version.text.conn, "articles_fts", [1.0, 1.0, 1.0])
        assert index.terms(["oil_price"]) is None  # FTS5 reads it as a two-word phrase
        assert index.terms(["Prices"]) == ["price"]
    finally:
        version.close()


def test_searcher_answers_alike_with_and_without_the_memory_index(corpus_index, corpus_settings, embedder):
    memory = Searcher.open(corpus_index, corpus_settings, embedder)
    sql = Searcher.open(corpus_index, corpus_settings.replace(keyword_memory_tokens=0), embedder)
    try:
        assert memory.version.text._keyword and not sql.version.text._keyword
        for query in QUERIES:
            for mode in ("keyword", "hybrid"):
                a, b = (s.search(SearchRequest(q=query, k=20, mode=mode)) for s in (memory, sql))
                assert [(h.article_id, h.score, h.passage_id, h.relevance) for h in a.hits] == \
                       [(h.article_id, h.score, h.passage_id, h.relevance) for h in b.hits]
                assert a.total == b.total
    finally:
        memory.close()
        sql.close()


@pytest.mark.slow
def test_memory_scores_equal_fts5_after_an_incremental_update(tmp_path, embedder):
    """Deleted and changed articles leave FTS5 with delete markers; the memory index must read past them."""
    lines = shared_data(WIKINEWS).read_text(encoding="utf-8").splitlines()
    old = [json.loads(line) for line in lines[:12]]
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    settings = Settings(index_dir=tmp_path / "idx")
    build([tmp_path / "v1"], settings, embedder, progress=False)
    new = [dict(r) for r in old[2:]]
    new[0]["body"] += "\n\nCorrection: the election results were misreported."
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "news.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new))
    update([tmp_path / "v2"], settings, embedder, delete_missing=True, progress=False)
    version = LocalVersion.open(settings.index_dir)
    try:
        conn = version.text.conn
        index = KeywordIndex.load(conn, "articles_fts", [1.0, 1.0, 1.0])
        ids = dict(conn.execute("SELECT num, id FROM articles"))
        assert len(index.rowids) == len(ids) == 10
        words = {w for r in old for w in query_words(r["title"])}
        for query in [*QUERIES, *sorted(words)[:40]]:
            expected = fts.search_articles(conn, query_words(query), 200, KeywordWeights())
            assert memory_top(index, ids, query, 200) == expected, query
    finally:
        version.close()
