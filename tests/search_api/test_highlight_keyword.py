"""Highlights and keyword-query escaping."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.storage.fts import match_expression
from search_api.ranking.highlight import highlight, query_terms
from search_api.ranking.query_words import query_words

QUOTED_WORDS = re.compile(r'"[^"\s]+"(?: OR "[^"\s]+")*')


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
    words = query_words(text)
    match = fts_query(text)
    # Only words reach the query: no quotes, spaces or operator syntax of the user's survive inside one.
    assert len(words) == len(set(words)) <= 64
    assert all(w and not any(c.isspace() or c == '"' for c in w) for w in words)
    if match is None:
        assert words == []
        return
    # The expression is those words, each quoted, joined by OR and nothing else (no NEAR, NOT, AND, column:, *, ^).
    assert QUOTED_WORDS.fullmatch(match) and match == " OR ".join(f'"{w}"' for w in words)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61 remove_diacritics 2')")
    conn.execute("INSERT INTO t VALUES ('IBM <IBM> said NEAR AND OR NOT \"quoted\" text')")
    conn.execute("INSERT INTO t VALUES (?)", (" ".join(words),))
    found = {rowid for (rowid,) in conn.execute("SELECT rowid FROM t WHERE t MATCH ?", (match,))}
    if any(c.isascii() and c.isalnum() for w in words for c in w):  # a word FTS5 surely makes a token of
        assert 2 in found  # a text holding the query's words is found by it


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

    import Stemmer
    from snowballstemmer.english_stemmer import EnglishStemmer

    from indexer.sources import CorpusReader
    from search_api.ranking.highlight import _stemmer, stem
    from tests.helpers import CORPUS

    assert isinstance(_stemmer(), Stemmer.Stemmer)
    words = {w.casefold() for raw in CorpusReader([CORPUS]) for w in re.findall(r"\w+", raw.body)}
    assert len(words) > 1000
    reference = EnglishStemmer()
    assert {w: stem(w) for w in words} == {w: reference.stemWord(w) for w in words}



def test_equally_weighted_sentences_tie_under_any_hash_seed():
    """Two sentences whose matched words weigh the same tie, and the first is shown, in every process: the sum
    must not depend on a set's hash-seeded order."""
    code = ("from search_api.ranking.highlight import highlight;"
            "print(highlight('Oil zinc silver. Tin gold copper.', 'tin gold copper oil zinc silver').spans)")
    seen = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": str(seed)},
                           capture_output=True, text=True, check=True).stdout.strip() for seed in range(12)}
    assert seen == {"[(0, 16)]"}
