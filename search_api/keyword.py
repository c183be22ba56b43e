"""Keyword (BM25) retrieval with SQLite FTS5 over an index version's meta.sqlite.

User text never reaches FTS5 syntax: words are extracted and each is quoted. Articles are scored over
three columns (title, lead, body), so words of the opening sentences, which a headline sums up, count more.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from indexer.meta import article_filter_sql
from search_api.highlight import query_terms


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression OR-ing the query's content words, each quoted; None if it has no words.

    Stop words are left out (unless nothing else is left): they add little to BM25 but make
    FTS5 score nearly every row.
    """
    words = query_terms(text)
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words[:64])


def search_articles(conn: sqlite3.Connection, text: str, limit: int, title_weight: float = 1.0,
                    lead_weight: float = 1.0, since: datetime | None = None, before: datetime | None = None,
                    sources: Sequence[str] = ()) -> list[tuple[str, float]]:
    """Top articles as (article id, score), score = -bm25 over title, lead and body (higher is better)."""
    match = fts_query(text)
    if match is None:
        return []
    where, args = article_filter_sql(since, before, sources)
    rows = conn.execute(
        f"SELECT a.id, -bm25(articles_fts, ?, ?, 1.0) AS s FROM articles_fts"
        f" JOIN articles a ON a.num = articles_fts.rowid WHERE articles_fts MATCH ? AND {where} ORDER BY s DESC, a.id LIMIT ?",
        [title_weight, lead_weight, match, *args, limit],
    )
    return [(r[0], float(r[1])) for r in rows]


def search_passages(conn: sqlite3.Connection, text: str, limit: int, title_weight: float = 1.0,
                    since: datetime | None = None, before: datetime | None = None,
                    sources: Sequence[str] = ()) -> list[tuple[int, float]]:
    """Top passages as (passage id, score), score = -bm25."""
    match = fts_query(text)
    if match is None:
        return []
    where, args = article_filter_sql(since, before, sources)
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
    out: dict[str, tuple[float, int]] = {}
    for start in range(0, len(article_ids), 500):
        chunk = list(article_ids[start : start + 500])
        rows = conn.execute(
            "SELECT a.id, p.id, -bm25(passages_fts) AS s FROM passages_fts"
            " JOIN passages p ON p.id = passages_fts.rowid JOIN articles a ON a.num = p.article_num"
            f" WHERE passages_fts MATCH ? AND a.id IN ({','.join('?' * len(chunk))})",
            [match, *chunk],
        )
        for aid, pid, score in rows:
            if aid not in out or (score, -pid) > (out[aid][0], -out[aid][1]):
                out[aid] = (score, pid)
    return {aid: pid for aid, (_, pid) in out.items()}
