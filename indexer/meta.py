"""The SQLite side of an index version: articles, passages and FTS5 keyword tables in meta.sqlite."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from indexer.chunk import lead_span
from indexer.records import Article, Passage

SCHEMA = """
CREATE TABLE articles (
    num INTEGER PRIMARY KEY,          -- rowid of articles_fts
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    published TEXT,                   -- ISO 8601, naive UTC
    source TEXT,
    url TEXT,
    content_hash TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    dup_group TEXT,                   -- id of the first article with the same or near-same body
    story TEXT                        -- story id: articles reporting the same event (indexer/stories.py)
);
CREATE INDEX articles_published ON articles(published);
CREATE INDEX articles_source ON articles(source);
CREATE INDEX articles_story ON articles(story, published);
CREATE TABLE passages (
    id INTEGER PRIMARY KEY,           -- FAISS id
    article_num INTEGER NOT NULL REFERENCES articles(num),
    ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX passages_article ON passages(article_num, ordinal);
CREATE VIRTUAL TABLE articles_fts USING fts5(title, lead, body, content='', tokenize='porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE passages_fts USING fts5(title, text, content='', tokenize='porter unicode61 remove_diacritics 2');
"""


@dataclass(frozen=True)
class StoredPassage:
    """A passage joined with its article's fields, as search results need them."""

    id: int
    article_id: str
    ordinal: int
    start: int
    end: int
    text: str
    title: str
    published: datetime | None
    source: str | None
    url: str | None
    dup_group: str | None


def write_meta(path: Path, articles: Iterable[Article], passages_of: dict[str, Sequence[Passage]],
               index_titles: bool, dup_groups: dict[str, str] | None = None,
               stories: dict[str, str] | None = None) -> tuple[int, int]:
    """Write a new meta.sqlite; returns (articles, passages) written."""
    conn = sqlite3.connect(path)
    n_articles = n_passages = 0
    try:
        conn.executescript(SCHEMA)
        for article in articles:
            n_articles += 1
            title = article.title if index_titles else ""
            conn.execute(
                "INSERT INTO articles (num, id, title, body, published, source, url, content_hash, meta, dup_group,"
                " story) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (n_articles, article.id, article.title, article.body,
                 article.published.isoformat() if article.published else None, article.source, article.url,
                 article.content_hash, json.dumps(article.meta, ensure_ascii=False, default=str),
                 (dup_groups or {}).get(article.id), (stories or {}).get(article.id, article.id)),
            )
            conn.execute("INSERT INTO articles_fts (rowid, title, lead, body) VALUES (?,?,?,?)",
                         (n_articles, title, lead_of(article.body), article.body))
            rows = [(p.id, n_articles, p.ordinal, p.start, p.end, p.tokens, p.text) for p in passages_of.get(article.id, ())]
            conn.executemany("INSERT INTO passages VALUES (?,?,?,?,?,?,?)", rows)
            conn.executemany("INSERT INTO passages_fts (rowid, title, text) VALUES (?,?,?)",
                             [(r[0], title, r[6]) for r in rows])
            n_passages += len(rows)
        conn.execute("INSERT INTO articles_fts(articles_fts) VALUES ('optimize')")
        conn.execute("INSERT INTO passages_fts(passages_fts) VALUES ('optimize')")
        conn.commit()
    finally:
        conn.close()
    return n_articles, n_passages


def lead_of(body: str, max_sentences: int = 2) -> str:
    """The lead of a news story (its first sentences), for the keyword index's lead column."""
    span = lead_span(body, max_sentences)
    return body[span[0] : span[1]] if span else ""


def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class MetaReader:
    """Read-only access to meta.sqlite, one connection per thread (FastAPI runs sync routes in a pool)."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.conn.execute("SELECT count(*) FROM articles").fetchone()

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    def count(self, table: str) -> int:
        """Rows in `articles` or `passages`."""
        if table not in ("articles", "passages"):
            raise ValueError(table)
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def sources(self) -> list[tuple[str, int]]:
        """Distinct sources with their article counts."""
        return [(s, n) for s, n in self.conn.execute(
            "SELECT source, count(*) FROM articles WHERE source IS NOT NULL GROUP BY source ORDER BY source")]

    def date_range(self) -> tuple[datetime | None, datetime | None]:
        """Oldest and newest publication dates."""
        lo, hi = self.conn.execute("SELECT min(published), max(published) FROM articles").fetchone()
        return _date(lo), _date(hi)

    def passages(self, ids: Sequence[int]) -> dict[int, StoredPassage]:
        """Passages by id, joined with their articles."""
        out: dict[int, StoredPassage] = {}
        ids = [int(i) for i in ids]
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            rows = self.conn.execute(
                "SELECT p.id, a.id, p.ordinal, p.start, p.end, p.text, a.title, a.published, a.source, a.url, a.dup_group"
                f" FROM passages p JOIN articles a ON a.num = p.article_num WHERE p.id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for r in rows:
                out[r[0]] = StoredPassage(r[0], r[1], r[2], r[3], r[4], r[5], r[6], _date(r[7]), r[8], r[9], r[10])
        return out

    def article(self, article_id: str) -> dict[str, Any] | None:
        """One article with its passages' ids and offsets, or None."""
        row = self.conn.execute(
            "SELECT num, id, title, body, published, source, url, content_hash, meta, dup_group FROM articles WHERE id = ?",
            (article_id,),
        ).fetchone()
        if row is None:
            return None
        passages = [
            {"id": pid, "ordinal": o, "start": s, "end": e}
            for pid, o, s, e in self.conn.execute(
                "SELECT id, ordinal, start, end FROM passages WHERE article_num = ? ORDER BY ordinal", (row[0],))
        ]
        return {"id": row[1], "title": row[2], "body": row[3], "published": _date(row[4]), "source": row[5],
                "url": row[6], "content_hash": row[7], "meta": json.loads(row[8]), "dup_group": row[9],
                "passages": passages}

    def stories(self) -> dict[str, str]:
        """Article id -> story id; empty for a version written before stories were stored."""
        try:
            return dict(self.conn.execute("SELECT id, story FROM articles WHERE story IS NOT NULL"))
        except sqlite3.OperationalError:  # no story column
            return {}

    def story_articles(self, story_id: str) -> list[dict[str, Any]]:
        """The articles of one story in time order (undated last, then by id): a timeline."""
        try:
            rows = self.conn.execute(
                "SELECT id, title, published, source, url, dup_group FROM articles WHERE story = ?"
                " ORDER BY published IS NULL, published, id", (story_id,)).fetchall()
        except sqlite3.OperationalError:  # no story column: each article is its own story
            rows = self.conn.execute("SELECT id, title, published, source, url, dup_group FROM articles WHERE id = ?",
                                     (story_id,)).fetchall()
        return [{"id": r[0], "title": r[1], "published": _date(r[2]), "source": r[3], "url": r[4], "dup_group": r[5]}
                for r in rows]

    def article_hashes(self) -> dict[str, str]:
        """Article id -> content hash, for incremental updates."""
        return dict(self.conn.execute("SELECT id, content_hash FROM articles"))


def article_filter_sql(since: datetime | None, before: datetime | None, sources: Sequence[str]) -> tuple[str, list[Any]]:
    """A WHERE clause over `articles a`: published in [since, before), source in `sources`."""
    clauses, args = ["1"], []
    if since is not None:
        clauses.append("a.published >= ?")
        args.append(since.isoformat())
    if before is not None:
        clauses.append("a.published < ?")
        args.append(before.isoformat())
    if sources:
        clauses.append(f"a.source IN ({','.join('?' * len(sources))})")
        args.extend(sources)
    return " AND ".join(clauses), args
