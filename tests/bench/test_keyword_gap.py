"""bench/keyword_gap's BM25 in numpy reproduces both keyword engines on the small real corpus: exact lengths with
FTS5's idf give FTS5's bm25() over main's former articles_fts, tantivy's 1-byte lengths with Lucene's idf give
tantivy's scores; so each variant between them changes one factor."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.keyword_gap import Corpus, fieldnorm_table, fts5_top, quantized, term_scores
from indexer.records import Article
from indexer.steps import read_corpus
from indexer.storage.base import KeywordWeights
from indexer.storage.sqlite_text import lead_of
from indexer.storage.tantivy_keyword import KeywordIndex, KeywordWriter, article_key, terms_of
from search_api.ranking.query_words import query_words
from tests.helpers import CORPUS

DEPTH = 1000  # deeper than any query's matches here: whole rankings are compared


@pytest.fixture(scope="module")
def articles() -> list[Article]:
    # Less one sign newer than SQLite's Unicode tables, which take it for a letter (tests/storage/test_words.py).
    return [replace(a, title=a.title.replace("\u20bf", " "), body=a.body.replace("\u20bf", " "))
            for a in read_corpus([CORPUS], progress=False).articles]


@pytest.fixture(scope="module")
def corpus(articles: list[Article]) -> Corpus:
    return Corpus.of([(a.id, a.title, a.body) for a in articles], index_titles=True)


@pytest.fixture(scope="module")
def queries(articles: list[Article]) -> list[list[str]]:
    """One, two and four words of some titles."""
    return [query_words(a.title)[:n] for a, n in zip(articles[::7][:12], [1, 2, 4] * 4)]


def test_quantized_lengths_are_a_one_byte_table_exact_to_40_then_within_an_eighth():
    table = fieldnorm_table()
    assert len(table) == 256 and np.all(np.diff(table) > 0) and table[:41].tolist() == list(range(41))
    lengths = np.arange(1, 5000)
    held = quantized(lengths)
    assert np.all(held <= lengths) and np.all(np.isin(held, table)) and np.all(lengths - held < lengths / 8)


def test_quantized_lengths_and_lucene_idf_give_tantivys_scores(tmp_path: Path, articles: list[Article],
                                                               corpus: Corpus, queries: list[list[str]]):
    writer = KeywordWriter(tmp_path / "keyword.tmp", index_titles=True)
    writer.add(articles)
    writer.finish(tmp_path / "keyword")
    index = KeywordIndex(tmp_path / "keyword")
    id_of = {article_key(a.id): a.id for a in articles}
    try:
        for words in queries:
            terms = [t for w in words for t in terms_of(w)]
            hits = dict(index.search(words, DEPTH, KeywordWeights()))
            ours = dict(corpus.bm25(terms, "quantized", "lucene", "one", 0, DEPTH))
            assert hits and {id_of[k] for k in hits} == set(ours), words
            assert np.allclose([hits[k] for k in hits], [ours[id_of[k]] for k in hits], rtol=1e-5), words
            exact = dict(corpus.bm25(terms, "exact", "lucene", "one", 0, DEPTH))
            assert set(exact) == set(ours) and exact != ours  # same matches, other scores: lengths alone differ
            if len(set(terms)) > 1:  # each term's own score, among the hits, adds up to the hit's score
                each = term_scores(index, list(dict.fromkeys(terms)), list(hits))
                assert np.allclose([sum(s.get(k, 0.0) for s in each) for k in hits], list(hits.values()), rtol=1e-5)
    finally:
        index.close()


def test_exact_lengths_and_fts5_idf_give_fts5s_scores(articles: list[Article], corpus: Corpus,
                                                      queries: list[list[str]]):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE articles (num INTEGER PRIMARY KEY, id TEXT)")
    # main's articles_fts before tantivy (git show dfefa1a^:indexer/storage/sqlite_text.py)
    conn.execute("CREATE VIRTUAL TABLE articles_fts USING fts5(title, lead, body, content='', "
                 "tokenize='porter unicode61 remove_diacritics 2')")
    for num, a in enumerate(articles, 1):
        conn.execute("INSERT INTO articles VALUES (?, ?)", (num, a.id))
        conn.execute("INSERT INTO articles_fts (rowid, title, lead, body) VALUES (?,?,?,?)",
                     (num, a.title, lead_of(a.body), a.body))
    for words in queries:
        terms = [t for w in words for t in terms_of(w)]
        theirs = fts5_top(conn, words, DEPTH, (1.0, 1.0, 1.0))
        ours = corpus.bm25(terms, "exact", "fts5", "one", 0, DEPTH)
        assert theirs and [i for i, _ in theirs] == [i for i, _ in ours], words
        assert np.allclose([s for _, s in theirs], [s for _, s in ours], rtol=1e-9), words
