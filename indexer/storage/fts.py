"""Passage keyword (BM25) retrieval with SQLite FTS5 over a local version's meta.sqlite: passage-level
results (group=none) and each article's best passage; article search is tantivy's (tantivy_keyword.py).

User text never reaches FTS5 syntax: the caller's words are each quoted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from indexer.storage.base import Filter


def match_expression(words: Sequence[str]) -> str | None:
    """An FTS5 MATCH expression OR-ing the words, each quoted; None if there are none."""
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words)


def article_filter_sql(filter: Filter | None) -> tuple[str, list[Any]]:
    """A WHERE clause over `articles a`: published in [since, before), source in `sources`."""
    clauses, args = ["1"], []
    if filter is not None and filter.since is not None:
        clauses.append("a.published >= ?")
        args.append(filter.since.isoformat())
    if filter is not None and filter.before is not None:
        clauses.append("a.published < ?")
        args.append(filter.before.isoformat())
    if filter is not None and filter.sources:
        clauses.append(f"a.source IN ({','.join('?' * len(filter.sources))})")
        args.extend(filter.sources)
    return " AND ".join(clauses), args


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


def search_passages(conn: sqlite3.Connection, words: Sequence[str], limit: int, title_weight: float = 1.0,
                    filter: Filter | None = None) -> list[tuple[int, float]]:
    """Top passages as (passage id, score), score = -bm25."""
    match = match_expression(words)
    if match is None:
        return []
    where, args = article_filter_sql(filter)
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


def best_passage_per_article(conn: sqlite3.Connection, words: Sequence[str], article_ids: Sequence[str]) -> dict[str, int]:
    """For each article, its passage with the best BM25 for the words, ties to the smaller id (articles without a
    match are absent)."""
    match = match_expression(words)
    if match is None or not article_ids:
        return {}
    marks = ",".join("?" * len(article_ids))
    owner = dict(conn.execute(f"SELECT p.id, a.id FROM articles a JOIN passages p ON p.article_num = a.num"
                              f" WHERE a.id IN ({marks})", list(article_ids)))
    if not owner:
        return {}
    # One statement for all the articles: bm25() counts each word's passages over the whole table once per
    # statement (its idf), which one statement per article repeated (bench/RESULTS.md, "Hybrid at 1M passages").
    # The rowid range spans the articles' passages; `+rowid` keeps the id list a filter on that one scan rather
    # than one FTS5 query per id, each counting again.
    pids = sorted(owner)
    marks = ",".join("?" * len(pids))
    rows = conn.execute(
        f"SELECT rowid, bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ? AND rowid BETWEEN ? AND ?"
        f" AND +rowid IN ({marks})", [match, pids[0], pids[-1], *pids])
    best: dict[str, tuple[float, int]] = {}
    for pid, score in rows:
        aid = owner[pid]
        if aid not in best or (score, pid) < best[aid]:
            best[aid] = (score, pid)
    return {aid: best[aid][1] for aid in dict.fromkeys(article_ids) if aid in best}
