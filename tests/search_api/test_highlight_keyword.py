"""Highlights and keyword-query escaping."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.storage.fts import match_expression
from search_api.ranking.highlight import highlight, query_terms
from search_api.ranking.query_words import query_words


def fts_query(text: str, drop_stop_words: bool = True) -> str | None:
    """The FTS5 expression the local store matches for a query's words."""
    return match_expression(query_words(text, drop_stop_words))


def test_highlight_picks_the_sentence_with_the_query_words():
    text = "The weather was mild. Syrian troops retook Palmyra on Sunday. Markets were calm."
    h = highlight(text, "Palmyra retaken by Syrian army")
    (start, end), = h.spans
    assert text[start:end] == "Syrian troops retook Palmyra on Sunday."
    assert set(h.terms) == {"palmyra", "syrian"}


def test_highlight_falls_back_to_the_first_sentence():
    h = highlight("First one. Second one.", "zebra")
    assert h.spans == [(0, 10)] and h.terms == []


def test_query_terms_drop_stopwords_unless_nothing_is_left():
    assert query_terms("The price of OIL, the price") == ["price", "oil"]
    assert query_terms("the of") == ["the", "of"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_makes_a_valid_fts_query(text):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61 remove_diacritics 2')")
    conn.execute("INSERT INTO t VALUES ('IBM <IBM> said NEAR AND OR NOT \"quoted\" text')")
    match = fts_query(text)
    if match is not None:
        conn.execute("SELECT rowid FROM t WHERE t MATCH ?", (match,)).fetchall()


def test_fts_syntax_in_queries_is_only_words():
    assert fts_query('IBM AND "NEAR(x" OR col:val* -y ^z') == '"ibm" OR "near" OR "x" OR "col" OR "val" OR "y" OR "z"'
    assert fts_query("<IBM> says") == '"ibm"'  # tickers as the wire prints them; stop words dropped
    assert fts_query("the of") == '"the" OR "of"'  # unless nothing else is left
    assert fts_query("!!! ...") is None
    # settings.keyword_stop_words off: every distinct word, as a plain FTS5 query of all words OR'ed
    assert fts_query("The price of the oil", drop_stop_words=False) == '"the" OR "price" OR "of" OR "oil"'


def test_stems_are_snowball_english_from_the_c_stemmer():
    # PyStemmer (C) is what snowballstemmer runs when installed; it must stem exactly as the pure-Python
    # algorithm the highlights were written against.
    import re

    import Stemmer
    from snowballstemmer.english_stemmer import EnglishStemmer

    from indexer.sources import CorpusReader
    from search_api.ranking.highlight import _stemmer, stem
    from tests.conftest import CORPUS

    assert isinstance(_stemmer(), Stemmer.Stemmer)
    words = {w.casefold() for raw in CorpusReader([CORPUS]) for w in re.findall(r"\w+", raw.body)}
    assert len(words) > 1000
    reference = EnglishStemmer()
    assert {w: stem(w) for w in words} == {w: reference.stemWord(w) for w in words}
