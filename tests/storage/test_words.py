"""The words keyword search counts (indexer.storage.words) are FTS5's `porter unicode61` words, occurrence for
occurrence, on the small real corpus: the same terms and document lengths on the tantivy, Milvus and FTS5 sides."""

from __future__ import annotations

import sqlite3
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from indexer.steps import read_corpus
from indexer.storage.words import analyzed, stems
from tests.helpers import CORPUS


def fts5_words(texts: list[str]) -> Counter[str]:
    """Each term FTS5 makes of the texts, with its number of occurrences."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61')")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'row')")
    conn.executemany("INSERT INTO t VALUES (?)", [(text,) for text in texts])
    return Counter(dict(conn.execute("SELECT term, cnt FROM v")))


def test_the_corpus_gives_the_words_fts5_gives():
    # Less one sign newer than SQLite's Unicode tables, which take it for a letter.
    texts = [f"{a.title}\n{a.body}".replace("\u20bf", " ") for a in read_corpus([CORPUS], progress=False).articles]
    ours = Counter(word for text in texts for word in analyzed(text).split())
    assert len(ours) > 1000 and ours == fts5_words(texts)


def test_short_long_and_joined_words_are_split_and_kept_as_fts5_does():
    text = "U.S. us is has foo_bar Café generously technology possibly s " + "x" * 70 + "ings"
    assert analyzed(text).split() == ["u", "s", "us", "is", "ha", "foo", "bar", "cafe", "gener", "technolog", "possibl",
                                      "s", "x" * 70 + "ings"]
    assert Counter(analyzed(text).split()) == fts5_words([text])
    # Three-letter words stem as SQLite's porter stems them (NLTK's Porter, used before, kept "eed" and cut "ies").
    assert analyzed("EED ies") == "e ie" and Counter(["e", "ie"]) == fts5_words(["EED ies"])
    # A Milvus version written before names its snowball stemmer, and is read with it.
    assert stems(["us", "technology"], "porter") == ["u", "technologi"]


def test_threads_stem_alike():
    words = [w for a in read_corpus([CORPUS], progress=False).articles[:20] for w in a.body.split()]
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(stems, [words[i::4] for i in range(4)] * 3))
    assert runs[:4] == runs[4:8] == runs[8:] and any(w.lower() != s for w, s in zip(words, runs[0]))
