"""The local store's text: articles, passages and the passages' FTS5 table in one SQLite file per version
(meta.sqlite), written by MetaWriter and read by SqliteText (indexer.storage.base.TextIndex); article keyword
search is the version's tantivy index (indexer/storage/tantivy_keyword.py), which SqliteText is given.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from indexer.chunk import lead_span
from indexer.errors import IndexDamaged
from indexer.records import Article, Passage
from indexer.storage import fts
from indexer.storage.base import Catalog, Filter, KeywordWeights, StoredPassage

if TYPE_CHECKING:
    from indexer.storage.tantivy_keyword import KeywordIndex

SCHEMA = """
CREATE TABLE articles (
    num INTEGER PRIMARY KEY,          -- article number of the Catalog
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
CREATE VIRTUAL TABLE passages_fts USING fts5(title, text, content='', tokenize='porter unicode61 remove_diacritics 2');
"""



class MetaWriter:
    """Writes a new meta.sqlite article by article; `finish` optimises and commits it."""

    def __init__(self, path: Path, index_titles: bool):
        self.conn = sqlite3.connect(path)
        self.index_titles = index_titles
        self.articles = self.passages = 0
        self.conn.executescript(SCHEMA)

    def add(self, articles: Sequence[Article], passages_of: Mapping[str, Sequence[Passage]],
            dup_groups: Mapping[str, str], stories: Mapping[str, str] | None = None) -> None:
        """Add articles (numbered from 1 in the order given), their passages and keyword rows; an article without
        a story in `stories` is a story of its own."""
        conn = self.conn
        for article in articles:
            self.articles += 1
            num = self.articles
            title = article.title if self.index_titles else ""
            conn.execute(
                "INSERT INTO articles (num, id, title, body, published, source, url, content_hash, meta, dup_group,"
                " story) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (num, article.id, article.title, article.body,
                 article.published.isoformat() if article.published else None, article.source, article.url,
                 article.content_hash, json.dumps(article.meta, ensure_ascii=False, default=str),
                 dup_groups.get(article.id), (stories or {}).get(article.id, article.id)),
            )
            rows = [(p.id, num, p.ordinal, p.start, p.end, p.tokens, p.text) for p in passages_of.get(article.id, ())]
            conn.executemany("INSERT INTO passages VALUES (?,?,?,?,?,?,?)", rows)
            conn.executemany("INSERT INTO passages_fts (rowid, title, text) VALUES (?,?,?)",
                             [(r[0], title, r[6]) for r in rows])
            self.passages += len(rows)

    def finish(self) -> None:
        """Optimise the keyword table, commit and close."""
        self.conn.execute("INSERT INTO passages_fts(passages_fts) VALUES ('optimize')")
        self.conn.commit()
        self.conn.close()

    def close(self) -> None:
        """Close without committing (an aborted write)."""
        self.conn.close()


def lead_of(body: str, max_sentences: int = 2) -> str:
    """The lead of a news story (its first sentences), for the keyword index's lead column."""
    span = lead_span(body, max_sentences)
    return body[span[0] : span[1]] if span else ""


def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


Method = TypeVar("Method", bound=Callable[..., Any])


def readable(method: Method) -> Method:
    """SQLite errors of a version opened and verified before (its file damaged or removed since) become
    IndexDamaged, which the server answers with 503 and a fallback version."""

    @functools.wraps(method)
    def wrapper(self: SqliteText, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise IndexDamaged(f"{self.path} cannot be read ({exc}); rebuild the index with `news-index build` "
                               "or restore its files", str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def ids_by_num(rows: Iterable[tuple[int, str]]) -> list[str]:
    """Article num -> id (num 0, no article: ""), from (num, id) rows in num order."""
    ids = [""]
    for num, aid in rows:
        ids.extend([""] * (num - len(ids)))
        ids.append(aid)
    return ids


class SqliteText:
    """Read-only access to meta.sqlite, one connection per thread (FastAPI runs sync routes in a pool), and
    article keyword search through the version's keyword index."""

    def __init__(self, path: Path, keyword: KeywordIndex | None = None):
        self.path = path
        self.keyword = keyword
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._ids: list[str] | None = None  # article num -> id, the list every Catalog of this version shares
        self._key_of: np.ndarray | None = None  # article num -> keyword index key (tantivy_keyword.article_key)
        self._by_key: np.ndarray | None = None  # article nums in ascending key order
        self._sorted_keys: np.ndarray | None = None  # the keys in ascending order (_key_of[_by_key])
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
        """Close every thread's connection and drop the keyword index (tantivy closes its files when freed)."""
        if self.keyword is not None:
            self.keyword.close()
        self.keyword = None
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    @readable
    def check(self) -> None:
        """Raise IndexDamaged if the database no longer answers."""
        self.conn.execute("SELECT 1 FROM articles LIMIT 1").fetchall()

    @readable
    def count_articles(self) -> int:
        """Rows in `articles`."""
        return int(self.conn.execute("SELECT count(*) FROM articles").fetchone()[0])

    @readable
    def count_passages(self) -> int:
        """Rows in `passages`."""
        return int(self.conn.execute("SELECT count(*) FROM passages").fetchone()[0])

    @readable
    def sources(self) -> list[tuple[str, int]]:
        """Distinct sources with their article counts."""
        return [(s, n) for s, n in self.conn.execute(
            "SELECT source, count(*) FROM articles WHERE source IS NOT NULL GROUP BY source ORDER BY source")]

    @readable
    def date_range(self) -> tuple[datetime | None, datetime | None]:
        """Oldest and newest publication dates."""
        lo, hi = self.conn.execute("SELECT min(published), max(published) FROM articles").fetchone()
        return _date(lo), _date(hi)

    @readable
    def catalog(self) -> Catalog:
        """Articles by num (the FTS5 rowid, from 1) and passages by id with their article's num."""
        rows = self.conn.execute("SELECT num, id, published, dup_group, source FROM articles ORDER BY num").fetchall()
        pairs = np.array(self.conn.execute("SELECT id, article_num FROM passages ORDER BY id").fetchall(),
                         dtype=np.int64)
        empty = np.zeros(0, dtype=np.int64)
        # The version never changes: every catalog and keyword_articles share one id list (~60 bytes an article).
        if self._ids is None:
            self._ids = ids_by_num((num, aid) for num, aid, *_ in rows)
        return Catalog(self._ids, [None] + [_date(r[2]) for r in rows],
                       [None] + [r[4] for r in rows], [None] + [r[3] for r in rows],
                       pairs[:, 0] if len(pairs) else empty, pairs[:, 1] if len(pairs) else empty)

    @readable
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

    @readable
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

    @readable
    def stories(self) -> dict[str, str]:
        """Article id -> story id; empty for a version written before stories were stored."""
        try:
            return dict(self.conn.execute("SELECT id, story FROM articles WHERE story IS NOT NULL"))
        except sqlite3.OperationalError:  # no story column
            return {}

    @readable
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

    @readable
    def first_passages(self, article_ids: Sequence[str]) -> dict[str, int]:
        """Each article's passage of the lowest ordinal."""
        out = {}
        for aid in article_ids:
            row = self.conn.execute("SELECT p.id FROM passages p WHERE p.article_num = (SELECT num FROM articles"
                                    " WHERE id = ?) ORDER BY p.ordinal LIMIT 1", (aid,)).fetchone()
            if row is not None:
                out[aid] = row[0]
        return out

    @readable
    def stored_articles(self) -> dict[str, tuple[str, str]]:
        """Article id -> (content hash, metadata JSON), for incremental updates."""
        return {aid: (h, m) for aid, h, m in self.conn.execute("SELECT id, content_hash, meta FROM articles")}

    @readable
    def articles(self, ids: Sequence[str]) -> list[Article]:
        """Whole stored articles, in the order asked."""
        out = []
        for aid in ids:
            r = self.conn.execute(
                "SELECT id, title, body, published, source, url, content_hash, meta FROM articles WHERE id = ?",
                (aid,)).fetchone()
            out.append(Article(r[0], r[1], r[2], _date(r[3]), r[4], r[5], r[6], json.loads(r[7])))
        return out

    def all_articles(self) -> Iterator[Article]:
        """Every stored article in number order (what a keyword index is built from)."""
        for r in self.conn.execute("SELECT id, title, body, published, source, url, content_hash, meta FROM articles"
                                   " ORDER BY num"):
            yield Article(r[0], r[1], r[2], _date(r[3]), r[4], r[5], r[6], json.loads(r[7]))

    @readable
    def passages_by_article(self) -> dict[str, list[Passage]]:
        """Every article's passages by ordinal, articles in stored order."""
        out: dict[str, list[Passage]] = {}
        for pid, aid, ordinal, text, start, end, tokens in self.conn.execute(
                "SELECT p.id, a.id, p.ordinal, p.text, p.start, p.end, p.tokens FROM passages p"
                " JOIN articles a ON a.num = p.article_num ORDER BY a.num, p.ordinal"):
            out.setdefault(aid, []).append(Passage(pid, aid, ordinal, text, start, end, tokens))
        return out

    @readable
    def titles(self) -> dict[str, str]:
        """Article id -> title."""
        return dict(self.conn.execute("SELECT id, title FROM articles"))

    def passage_texts(self) -> Iterator[tuple[str, str]]:
        """(article title, passage text) of every passage."""
        yield from self.conn.execute("SELECT a.title, p.text FROM passages p JOIN articles a ON a.num = p.article_num")

    def _article_ids(self) -> list[str]:
        """Article num -> id (num 0: ""), the list catalog() gives, read once."""
        if self._ids is None:
            self._ids = ids_by_num(self.conn.execute("SELECT num, id FROM articles ORDER BY num").fetchall())
        return self._ids

    def _keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(key of each article num, nums in key order), made once: 8 bytes per article each."""
        from indexer.storage.tantivy_keyword import article_key

        ids = self._article_ids()  # before the lock, which a thread's first connection takes
        with self._lock:
            if self._key_of is None:
                key_of = np.array([0] + [article_key(a) for a in ids[1:]], dtype=np.int64)
                by_key = np.argsort(key_of, kind="stable")
                # Searching the sorted keys themselves: numpy checks a `sorter` in full on every call.
                self._sorted_keys, self._by_key, self._key_of = key_of[by_key], by_key, key_of
        return self._key_of, self._by_key  # type: ignore[return-value]

    def _keyword(self) -> KeywordIndex:
        if self.keyword is None:
            raise IndexDamaged(f"{self.path.parent} has no keyword index; rebuild it with `news-index build`",
                               "no keyword index")
        return self.keyword

    @readable
    def keyword_articles(self, words: Sequence[str], limit: int, weights: KeywordWeights,
                         filter: Filter | None = None) -> list[tuple[str, float]]:
        """Top articles by BM25 from the keyword index, ties by id."""
        hits = self._keyword().search(words, limit, weights, filter)
        if not hits:
            return []
        key_of, by_key = self._keys()
        keys = np.array([k for k, _ in hits], dtype=np.int64)
        nums = by_key[np.minimum(np.searchsorted(self._sorted_keys, keys), len(by_key) - 1)]
        if not np.array_equal(key_of[nums], keys):
            raise IndexDamaged(f"{self.path.parent / 'keyword'} names articles {self.path} does not hold; rebuild the "
                               "index with `news-index build` or restore its files", "unknown keyword keys")
        ids = self._article_ids()
        found = sorted(((ids[n], s) for n, (_, s) in zip(nums.tolist(), hits)), key=lambda p: (-p[1], p[0]))
        return found[:limit]

    @readable
    def keyword_passages(self, words: Sequence[str], limit: int, title_weight: float,
                         filter: Filter | None = None) -> list[tuple[int, float]]:
        """Top passages by BM25 (FTS5)."""
        return fts.search_passages(self.conn, words, limit, title_weight, filter)

    @readable
    def best_keyword_passages(self, words: Sequence[str], article_ids: Sequence[str]) -> dict[str, int]:
        """Each article's passage with the best BM25 (FTS5)."""
        return fts.best_passage_per_article(self.conn, words, article_ids)

    @readable
    def word_presence(self, words: Sequence[str], numbers: Sequence[int]) -> tuple[int, list[int], np.ndarray]:
        """Articles indexed, articles holding each word, and which of the article `numbers` hold each word."""
        key_of, _ = self._keys()
        keys = key_of[np.asarray(numbers, dtype=np.int64)].tolist() if len(numbers) else []
        return self._keyword().presence(words, keys)
