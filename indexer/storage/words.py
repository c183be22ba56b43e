"""The words keyword search counts, shared by the local (tantivy) and Milvus stores: FTS5's `porter unicode61`
words (lower-cased, accents removed, Porter stems as SQLite makes them, no stop-word filter), so every engine
counts the same words and document lengths for BM25 (bench/RESULTS.md, "Milvus parity", "Tantivy parity").
Text is stemmed here, so each engine's own analyzer only splits on whitespace.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections.abc import Sequence

import snowballstemmer
from nltk.stem.porter import PorterStemmer

# The name indexes record (Milvus manifest milvus.stemmer, keyword/newsearch.json). Milvus versions written before
# name a snowballstemmer algorithm ("english", "porter") and are read with it.
STEMMER = "fts5-porter"
_WORD = re.compile(r"[^\W_]+")  # unicode61's words: letters and digits; "_" separates, as punctuation does
# SQLite's porter is Martin Porter's own C version (with its "logi" -> "log", "bli" -> "ble"), and it leaves words of
# fewer than 3 or more than 64 bytes as they are ("us" stays "us", "s" is kept).
_PORTER = PorterStemmer(PorterStemmer.MARTIN_EXTENSIONS)
_STEMMED_BYTES = (3, 64)
_local = threading.local()


def _plain(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


@functools.lru_cache(maxsize=1 << 18)  # news vocabularies repeat: stemming each word once is most of the speed
def _fts5_stem(word: str) -> str:
    plain = _plain(word.lower())
    low, high = _STEMMED_BYTES
    return _PORTER.stem(plain, to_lowercase=False) if low <= len(plain.encode()) <= high else plain


def _snowball(algorithm: str) -> snowballstemmer.stemmer:
    # One per thread and algorithm: a snowball stemmer keeps the word being stemmed in itself.
    cache = _local.__dict__.setdefault("stemmers", {})
    if algorithm not in cache:
        cache[algorithm] = snowballstemmer.stemmer(algorithm)
    return cache[algorithm]


def stems(words: Sequence[str], stemmer: str = STEMMER) -> list[str]:
    """The words' terms by the named stemmer: lower-cased, accents removed (as FTS5's `remove_diacritics`), stemmed."""
    if stemmer == STEMMER:
        return [_fts5_stem(w) for w in words]
    return _snowball(stemmer).stemWords([_plain(w.casefold()) for w in words])


def analyzed(text: str) -> str:
    """The text an engine's BM25 reads: its words' terms, space-separated."""
    return " ".join(stems(_WORD.findall(text)))
