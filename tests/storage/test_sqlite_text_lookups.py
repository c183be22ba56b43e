"""The local text store's in-memory lookups and one-statement passage choice give what SQLite alone gives: each
article's best keyword passage as one FTS5 query per article ranks it, article ids as the articles table holds
them (corpus/'s real articles, written through the local store)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from indexer.settings import Settings
from indexer.storage import open_store
from indexer.storage.base import KeywordWeights
from indexer.storage.fts import match_expression
from indexer.storage.local import LocalVersion
from tests.helpers import Data, write

WORDS = (["police"], ["president", "election"], ["oil", "prices", "said"], ["storm", "rain", "flood", "wind"])


@pytest.fixture(scope="module")
def version(tmp_path_factory, data: Data) -> Iterator[LocalVersion]:
    """corpus/ written and published in a local store, opened."""
    store = open_store(Settings(index_dir=tmp_path_factory.mktemp("index")))
    store.publish(write(store, data))
    opened = store.open()
    yield opened
    opened.close()


def best_one_by_one(version: LocalVersion, words: list[str], article_ids: list[str]) -> dict[str, int]:
    """The reference: one FTS5 query per article over its passages, best bm25 first, ties to the smaller id."""
    out = {}
    for aid in article_ids:
        row = version.text.conn.execute(
            "SELECT p.id FROM passages_fts JOIN passages p ON p.id = passages_fts.rowid"
            " JOIN articles a ON a.num = p.article_num WHERE passages_fts MATCH ? AND a.id = ?"
            " ORDER BY bm25(passages_fts), p.id LIMIT 1", [match_expression(words), aid]).fetchone()
        if row is not None:
            out[aid] = row[0]
    return out


@pytest.mark.parametrize("words", WORDS, ids=" ".join)
def test_best_keyword_passages_are_those_of_one_query_per_article(version: LocalVersion, data: Data, words):
    several = [a.id for a in data.articles if len(data.passages_of[a.id]) > 1]
    asked = several + [a.id for a in data.articles[:10]] + ["no-such-article"]
    expected = best_one_by_one(version, words, asked)
    assert len(expected) >= 2  # the words are found in several articles
    best = version.text.best_keyword_passages(words, asked)
    assert best == expected and list(best) == [a for a in dict.fromkeys(asked) if a in expected]
    # Articles asked alone get the same passages as asked together.
    assert all(version.text.best_keyword_passages(words, [aid]) == {aid: pid} for aid, pid in expected.items())


def test_best_keyword_passages_of_nothing(version: LocalVersion):
    assert version.text.best_keyword_passages([], ["x"]) == {}
    assert version.text.best_keyword_passages(["police"], []) == {}
    assert version.text.best_keyword_passages(["police"], ["no-such-article"]) == {}


def test_keyword_articles_name_the_ids_the_articles_table_holds(version: LocalVersion, data: Data):
    ids_of = dict(version.text.conn.execute("SELECT num, id FROM articles"))
    catalog = version.text.catalog()
    assert catalog.article_ids == [""] + [ids_of[n] for n in range(1, len(ids_of) + 1)]
    assert version.text.catalog().article_ids is catalog.article_ids  # one list per version, shared
    for words in WORDS:
        hits = version.text.keyword_articles(words, 1000, KeywordWeights())
        assert hits and {aid for aid, _ in hits} <= {a.id for a in data.articles}
        assert hits == sorted(hits, key=lambda hit: (-hit[1], hit[0]))


def test_keyword_articles_before_any_catalog(tmp_path, data: Data):
    store = open_store(Settings(index_dir=tmp_path))
    store.publish(write(store, data))
    fresh, other = store.open(), store.open()
    try:
        hits = fresh.text.keyword_articles(["police"], 1000, KeywordWeights())  # ids read without a catalog
        catalog = other.text.catalog()  # ids from the catalog
        assert hits and hits == other.text.keyword_articles(["police"], 1000, KeywordWeights())
        assert fresh.text.catalog().article_ids == catalog.article_ids
    finally:
        fresh.close()
        other.close()
