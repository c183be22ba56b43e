"""bench/keyword_engines.py on the real corpus/ index: the scaled corpus, and each engine against FTS5."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tantivy")
pytest.importorskip("bm25s")

from bench.keyword_engines import read_corpus, scale_rows  # noqa: E402 - after the skips: engines are an extra
from bench.keyword_indexes import BUILD, OPEN  # noqa: E402


def test_scale_rows_repeats_whole_articles_up_to_the_bound():
    passages = np.array([1, 2, 3, 1])
    rows = scale_rows(passages, 20)
    assert list(rows[:4]) == [0, 1, 2, 3]  # copy 0 is the source in order
    assert 7 + 3 < passages[rows].sum() <= 20  # copies added, never past the bound
    assert np.array_equal(rows, scale_rows(passages, 20))  # seeded


@pytest.fixture(scope="module")
def engines(corpus_index: Path, tmp_path_factory) -> tuple:
    """Every engine built from the corpus index scaled to three copies (FTS5's rows renumbered as 0..n-1)."""
    corpus, passages = read_corpus(corpus_index, titles=True)
    corpus.rows = scale_rows(passages, 3 * int(passages.sum()))
    opened, folders = {}, {}
    for engine in ("fts5", "tantivy", "bm25s"):
        folders[engine] = tmp_path_factory.mktemp(engine)
        BUILD[engine](corpus, folders[engine])
        opened[engine] = OPEN[engine](folders[engine] / "meta.sqlite" if engine == "fts5" else folders[engine])
    return corpus, opened


QUERIES = ["central bank interest rates", "earthquake rescue teams", "election results parliament"]


def test_tantivy_and_bm25s_find_the_same_articles_as_fts5(engines):
    corpus, opened = engines
    for q in QUERIES:
        source_rows = {e: {int(corpus.rows[d]) for d, _ in opened[e].search(q, 10_000)} for e in ("fts5", "tantivy", "bm25s")}
        # Copies of one article score alike, so compare the articles found, not the copies: the same words match.
        assert source_rows["tantivy"] == source_rows["fts5"], q
        top = [int(corpus.rows[d]) for d, _ in opened["fts5"].search(q, 1)]
        assert [int(corpus.rows[d]) for d, _ in opened["bm25s"].search(q, 1)] == top


def test_date_filter_keeps_only_the_range(engines):
    corpus, opened = engines
    published = corpus.published_of()
    since, before = np.datetime64(published.min()), np.datetime64(published.max())
    for engine, searcher in opened.items():
        hits = searcher.search("the", 500, datetime.fromisoformat(str(since)), datetime.fromisoformat(str(before)))
        days = published[[d for d, _ in hits]]
        assert len(hits) and ((days >= since) & (days < before)).all(), engine
