"""Keyword (BM25) retrieval with SQLite FTS5 over an index version's meta.sqlite.

User text never reaches FTS5 syntax: words are extracted and each is quoted. Articles are scored over
three columns (title, lead, body), so words of the opening sentences, which a headline sums up, count more.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from indexer.chunk import MAX_PASSAGES_PER_ARTICLE, passage_id
from indexer.meta import article_filter_sql
from search_api.highlight import query_terms, words_of


def query_words(text: str, drop_stop_words: bool = True) -> list[str]:
    """The distinct words of a query that keyword search looks for (at most 64)."""
    return (query_terms(text) if drop_stop_words else words_of(text))[:64]


def fts_query(text: str, drop_stop_words: bool = True) -> str | None:
    """An FTS5 MATCH expression OR-ing the query's words, each quoted; None if it has no words.

    With `drop_stop_words` (settings.keyword_stop_words) stop words are left out unless nothing else is
    left: they add little to BM25 but make FTS5 score nearly every row.
    """
    words = query_words(text, drop_stop_words)
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words)


def search_articles(conn: sqlite3.Connection, text: str, limit: int, title_weight: float = 1.0,
                    lead_weight: float = 1.0, since: datetime | None = None, before: datetime | None = None,
                    sources: Sequence[str] = (), drop_stop_words: bool = True) -> list[tuple[str, float]]:
    """Top articles as (article id, score), score = -bm25 over title, lead and body (higher is better)."""
    match = fts_query(text, drop_stop_words)
    if match is None:
        return []
    where, args = article_filter_sql(since, before, sources)
    if not args:
        return _top_unfiltered(conn, "articles_fts", "bm25(articles_fts, ?, ?, 1.0)", [title_weight, lead_weight],
                               "JOIN articles a ON a.num = r.rowid", "a.id", match, limit)
    rows = conn.execute(
        f"SELECT a.id, -bm25(articles_fts, ?, ?, 1.0) AS s FROM articles_fts"
        f" JOIN articles a ON a.num = articles_fts.rowid WHERE articles_fts MATCH ? AND {where} ORDER BY s DESC, a.id LIMIT ?",
        [title_weight, lead_weight, match, *args, limit],
    )
    return [(r[0], float(r[1])) for r in rows]


def score_articles(conn: sqlite3.Connection, text: str, nums: Sequence[int], title_weight: float = 1.0,
                   lead_weight: float = 1.0, drop_stop_words: bool = True) -> dict[int, float]:
    """Scores (-bm25, as search_articles gives them) of those of `nums` (FTS5 rowids) that hold a query word."""
    match = fts_query(text, drop_stop_words)
    out: dict[int, float] = {}
    for start in range(0, len(nums) if match else 0, 5000):  # under SQLite's limit of bound values
        chunk = list(nums[start : start + 5000])
        rows = conn.execute(f"SELECT rowid, -bm25(articles_fts, ?, ?, 1.0) FROM articles_fts WHERE articles_fts MATCH ?"
                            f" AND rowid IN ({','.join('?' * len(chunk))})", [title_weight, lead_weight, match, *chunk])
        out.update((int(r[0]), float(r[1])) for r in rows)
    return out


def _top_unfiltered(conn: sqlite3.Connection, table: str, bm25: str, weights: list[float], join: str, key: str,
                    match: str, limit: int) -> list[tuple]:
    """The top `limit` rows by (-bm25, key) of an unfiltered match, joining only the best rows, not every match.

    FTS5 keeps the best rows by score alone, so rows tied with the last one kept may be cut arbitrarily;
    asking for more than `limit` until the last row fetched scores below the last row returned makes
    the tie-break by `key` exact.
    """
    fetch = 2 * limit
    while True:
        rows = conn.execute(
            f"SELECT {key}, -r.s FROM (SELECT rowid, {bm25} AS s FROM {table} WHERE {table} MATCH ?"
            f" ORDER BY s LIMIT ?) r {join} ORDER BY r.s, {key}",
            [*weights, match, fetch + 1],
        ).fetchall()
        if len(rows) <= fetch or rows[-1][1] < rows[limit - 1][1]:
            return [(r[0], float(r[1])) for r in rows[:limit]]
        fetch *= 4


def search_passages(conn: sqlite3.Connection, text: str, limit: int, title_weight: float = 1.0,
                    since: datetime | None = None, before: datetime | None = None,
                    sources: Sequence[str] = ()) -> list[tuple[int, float]]:
    """Top passages as (passage id, score), score = -bm25."""
    match = fts_query(text)
    if match is None:
        return []
    where, args = article_filter_sql(since, before, sources)
    if not args:
        return [(int(pid), score) for pid, score in _top_unfiltered(
            conn, "passages_fts", "bm25(passages_fts, ?, 1.0)", [title_weight], "", "r.rowid", match, limit)]
    rows = conn.execute(
        "SELECT p.id, -bm25(passages_fts, ?, 1.0) AS s FROM passages_fts"
        " JOIN passages p ON p.id = passages_fts.rowid JOIN articles a ON a.num = p.article_num"
        f" WHERE passages_fts MATCH ? AND {where} ORDER BY s DESC, p.id LIMIT ?",
        [title_weight, match, *args, limit],
    )
    return [(int(r[0]), float(r[1])) for r in rows]


def best_passage_per_article(conn: sqlite3.Connection, text: str, article_ids: Sequence[str]) -> dict[str, int]:
    """For each article, its passage with the best BM25 for the query (articles without a match are absent)."""
    match = fts_query(text)
    if match is None or not article_ids:
        return {}
    out: dict[str, int] = {}
    for aid in article_ids:
        # An article's passage ids share its hash and differ in the low bits (indexer.chunk.passage_id), so a
        # rowid range lets FTS5 seek to its passages instead of scoring every passage that matches.
        first = passage_id(aid, 0)
        row = conn.execute(
            "SELECT p.id FROM passages_fts JOIN passages p ON p.id = passages_fts.rowid"
            " JOIN articles a ON a.num = p.article_num WHERE passages_fts MATCH ? AND passages_fts.rowid BETWEEN ? AND ?"
            " AND a.id = ? ORDER BY bm25(passages_fts), p.id LIMIT 1",
            [match, first, first + MAX_PASSAGES_PER_ARTICLE - 1, aid],
        ).fetchone()
        if row is not None:
            out[aid] = int(row[0])
    return out


def word_presence(conn: sqlite3.Connection, words: Sequence[str], nums: Sequence[int]) -> tuple[int, list[int], np.ndarray]:
    """Articles indexed, then for each query word how many articles hold it and whether each article `nums`
    (FTS5 rowids) does: what bm25.KeywordIndex.presence answers from memory, asked of SQLite."""
    (n_rows,) = conn.execute("SELECT count(*) FROM articles_fts_docsize").fetchone()
    df: list[int] = []
    present = np.zeros((len(words), len(nums)), dtype=bool)
    at = {num: i for i, num in enumerate(nums)}
    marks = ",".join("?" * len(nums))
    for i, word in enumerate(words):
        match = f'"{word}"'
        df.append(conn.execute("SELECT count(*) FROM articles_fts WHERE articles_fts MATCH ?", (match,)).fetchone()[0])
        if nums:
            for (num,) in conn.execute(f"SELECT rowid FROM articles_fts WHERE articles_fts MATCH ? AND rowid IN ({marks})",
                                       (match, *nums)):
                present[i, at[num]] = True
    return n_rows, df, present
