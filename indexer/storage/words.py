"""The words keyword search counts, shared by the local (tantivy) and Milvus stores: FTS5's `porter unicode61`
words (lower-cased, accents removed, Porter stems as SQLite makes them, no stop-word filter), so every engine
counts the same words and document lengths for BM25 (bench/RESULTS.md, "Milvus parity", "Tantivy parity").
Text is stemmed here, so each engine's own analyzer only splits on whitespace.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import unicodedata
from collections.abc import Sequence

import snowballstemmer

# The name indexes record (Milvus manifest milvus.stemmer, keyword/newsearch.json). Milvus versions written before
# name a snowballstemmer algorithm ("english", "porter") and are read with it.
STEMMER = "fts5-porter"
_WORD = re.compile(r"[^\W_]+")  # unicode61's words: letters and digits; "_" separates, as punctuation does
# Stems are SQLite's own: each word goes through an FTS5 table with the porter tokenizer (Martin Porter's C
# version, which leaves words of fewer than 3 or more than 64 bytes as they are), read back through fts5vocab.
# NLTK's Porter, used before, gave the same stems but for two words of the Reuters and Wikinews vocabulary ("eed",
# "ies"), and its import was most of a small process's start (bench/RESULTS.md, "Fixed cost of a process").
_PORTER_TABLE = ("CREATE VIRTUAL TABLE words USING fts5(word, tokenize='porter unicode61')",
                 "CREATE VIRTUAL TABLE terms USING fts5vocab(words, 'instance')")
_CACHED = 1 << 18  # news vocabularies repeat: each word is stemmed once (the memo is emptied when it is full)
_stemmed: dict[str, str] = {}
_local = threading.local()


def _plain(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def _porter(plain: list[str]) -> list[str]:
    """FTS5's porter stem of each lower-cased, accent-free word (the word itself where FTS5 does not take it
    for exactly one word)."""
    conn = getattr(_local, "porter", None)
    if conn is None:  # one per thread: a connection is not shared between threads
        conn = _local.porter = sqlite3.connect(":memory:")
        for statement in _PORTER_TABLE:
            conn.execute(statement)
    terms: dict[int, list[str]] = {}
    try:  # the rows are only read back, never committed: the rollback empties the table for the next call
        conn.executemany("INSERT INTO words(rowid, word) VALUES (?, ?)", enumerate(plain))
        for row, term in conn.execute("SELECT doc, term FROM terms ORDER BY doc, offset"):
            terms.setdefault(row, []).append(term)
    finally:
        conn.rollback()
    return [found[0] if len(found := terms.get(i, ())) == 1 else word for i, word in enumerate(plain)]


def _fts5_stems(words: Sequence[str]) -> list[str]:
    known = {w: _stemmed.get(w) for w in words}  # read once: another thread may empty the memo meanwhile
    missing = [w for w, stem in known.items() if stem is None]
    if missing:
        fresh = dict(zip(missing, _porter([_plain(w.lower()) for w in missing]), strict=True))
        known.update(fresh)
        if len(_stemmed) + len(fresh) > _CACHED:
            _stemmed.clear()
        _stemmed.update(fresh)
    return [known[w] for w in words]


def _snowball(algorithm: str) -> snowballstemmer.stemmer:
    # One per thread and algorithm: a snowball stemmer keeps the word being stemmed in itself.
    cache = _local.__dict__.setdefault("stemmers", {})
    if algorithm not in cache:
        cache[algorithm] = snowballstemmer.stemmer(algorithm)
    return cache[algorithm]


def stems(words: Sequence[str], stemmer: str = STEMMER) -> list[str]:
    """The words' terms by the named stemmer: lower-cased, accents removed (as FTS5's `remove_diacritics`), stemmed."""
    if stemmer == STEMMER:
        return _fts5_stems(words)
    return _snowball(stemmer).stemWords([_plain(w.casefold()) for w in words])


def analyzed(text: str) -> str:
    """The text an engine's BM25 reads: its words' terms, space-separated."""
    return " ".join(stems(_WORD.findall(text)))
