"""Saved searches (alerts) and what they matched: one SQLite file beside the versions (<index>/alerts.sqlite), kept
across restarts and new versions. Updates stage the ids they changed here (an outbox); the server evaluates them.
Every write is one transaction, so a crash leaves either all of a change or none of it.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from indexer.errors import NewsearchError, StorageError

ALERTS_FILE = "alerts.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, query TEXT NOT NULL, mode TEXT, since TEXT, until TEXT, sources TEXT NOT NULL,
    min_relevance REAL, webhook TEXT, owner TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    version TEXT PRIMARY KEY, base TEXT, article_ids TEXT NOT NULL, staged REAL NOT NULL,
    published INTEGER NOT NULL DEFAULT 0, evaluated REAL);
CREATE TABLE IF NOT EXISTS matches (
    alert_id TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE, article_id TEXT NOT NULL, version TEXT NOT NULL,
    passage_id INTEGER NOT NULL, passage TEXT NOT NULL, title TEXT NOT NULL, published TEXT, source TEXT, url TEXT,
    score REAL NOT NULL, relevance REAL NOT NULL, matched REAL NOT NULL, PRIMARY KEY (alert_id, version, article_id));
CREATE INDEX IF NOT EXISTS matches_by_time ON matches(alert_id, matched);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY, alert_id TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE, version TEXT NOT NULL,
    url TEXT NOT NULL, payload TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL, last_error TEXT, delivered REAL);
"""


class AlertNotFound(NewsearchError):
    """No alert with that id (or not one the caller's key owns)."""


@dataclass(frozen=True)
class Alert:
    """A saved search: the query and filters of /search, a relevance floor, and where to send its matches."""

    id: str
    query: str
    owner: str  # a fingerprint of the key that created it ("" on an open server), never the key itself
    created: float
    mode: str | None = None  # None: the server's default mode
    since: str | None = None  # ISO date or datetime, as /search takes them
    until: str | None = None
    sources: tuple[str, ...] = ()
    min_relevance: float | None = None  # None: the server's NEWSEARCH_MIN_RELEVANCE
    webhook: str | None = None

    def view(self) -> dict[str, Any]:
        """The alert as JSON (without the owner)."""
        out = asdict(self)
        out.pop("owner")
        out["sources"] = list(self.sources)
        return out


@dataclass(frozen=True)
class Match:
    """One article an alert matched, with the passage that matched best and the version that brought it."""

    alert_id: str
    article_id: str
    version: str
    passage_id: int
    passage: str
    title: str
    published: str | None
    source: str | None
    url: str | None
    score: float
    relevance: float
    matched: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Batch:
    """The articles one published version added or changed, waiting to be evaluated against every alert."""

    version: str
    article_ids: list[str]
    staged: float


@dataclass(frozen=True)
class Delivery:
    """One webhook POST (an alert's matches of one batch) and how far its attempts got."""

    id: int
    alert_id: str
    version: str
    url: str
    payload: str
    state: str  # pending, delivered, failed
    attempts: int
    next_at: float
    last_error: str | None
    delivered: float | None


def alerts_path(index_dir: Path) -> Path:
    """Where an index folder keeps its alerts."""
    return index_dir / ALERTS_FILE


class AlertStore:
    """The alerts file of one index folder; never used by two threads at once, but it may pass from one to another:
    a request's dependency opens it on one thread of the pool and its route runs on another."""

    def __init__(self, index_dir: Path):
        self.path = alerts_path(index_dir)
        try:
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open the alerts file {self.path} ({exc}); make {index_dir} writable and "
                               "free disk space (a damaged alerts file can be restored or deleted: it holds only "
                               "alerts and their matches)") from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error: a change is written whole or not at all."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    # -- alerts -----------------------------------------------------------------------------------

    def create(self, query: str, owner: str, mode: str | None = None, since: str | None = None,
               until: str | None = None, sources: Sequence[str] = (), min_relevance: float | None = None,
               webhook: str | None = None) -> Alert:
        """Save a new alert and return it."""
        alert = Alert("a" + secrets.token_hex(8), query, owner, time.time(), mode, since, until, tuple(sources),
                      min_relevance, webhook)
        with self.transaction() as conn:
            conn.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (alert.id, query, mode, since, until, json.dumps(list(sources)), min_relevance, webhook,
                          owner, alert.created))
        return alert

    def alerts(self, owner: str | None = None) -> list[Alert]:
        """Every alert (of one owner unless `owner` is None), oldest first."""
        where, args = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())
        rows = self.conn.execute(f"SELECT id, query, owner, created, mode, since, until, sources, min_relevance, "
                                 f"webhook FROM alerts {where} ORDER BY created, id", args)
        return [Alert(*r[:7], tuple(json.loads(r[7])), *r[8:]) for r in rows]

    def get(self, alert_id: str, owner: str | None = None) -> Alert:
        """One alert; AlertNotFound if there is none with this id that `owner` may see."""
        found = [a for a in self.alerts(owner) if a.id == alert_id]
        if not found:
            raise AlertNotFound(f"no alert {alert_id!r} for this key; GET /alerts lists yours")
        return found[0]

    def delete(self, alert_id: str, owner: str | None = None) -> None:
        """Remove an alert with its matches and pending deliveries; AlertNotFound if it is not there (also when
        another request deleted it first: only one of two concurrent deletes succeeds)."""
        self.get(alert_id, owner)
        with self.transaction() as conn:
            deleted = conn.execute("DELETE FROM alerts WHERE id = ?", (alert_id,)).rowcount
        if not deleted:
            raise AlertNotFound(f"no alert {alert_id!r} for this key; GET /alerts lists yours")

    # -- batches (the outbox of updates) ----------------------------------------------------------

    def stage(self, version: str, base: str, article_ids: Sequence[str]) -> None:
        """Record what `version` adds or changes over `base`, before it is published."""
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO batches (version, base, article_ids, staged) VALUES (?, ?, ?, ?)",
                         (version, base, json.dumps(sorted(article_ids)), time.time()))

    def mark_published(self, version: str) -> None:
        """The staged version is now the published one."""
        with self.transaction() as conn:
            conn.execute("UPDATE batches SET published = 1 WHERE version = ?", (version,))

    def unstage(self, version: str) -> None:
        """Forget a batch whose version was never published (its update failed)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM batches WHERE version = ?", (version,))

    def pending(self, served: str) -> list[Batch]:
        """Batches not evaluated yet whose version was published at or before `served`, oldest first.

        A batch is known published when its update said so, when it is the version served, or when a later
        update started from it (an update killed between publishing and saying so leaves the first two).
        """
        rows = self.conn.execute(
            "SELECT version, article_ids, staged FROM batches WHERE evaluated IS NULL AND version <= ? AND "
            "(published = 1 OR version = ? OR version IN (SELECT base FROM batches)) ORDER BY version",
            (served, served))
        return [Batch(v, json.loads(ids), staged) for v, ids, staged in rows]

    def record(self, version: str, matches: Sequence[Match], deliveries: Sequence[tuple[str, str, str]]) -> bool:
        """Save a batch's matches and queue its webhook deliveries (alert id, url, payload), marking it evaluated;
        False (and nothing written) when another process evaluated it meanwhile."""
        now = time.time()
        with self.transaction() as conn:
            done = conn.execute("UPDATE batches SET evaluated = ? WHERE version = ? AND evaluated IS NULL",
                                (now, version)).rowcount
            if not done:
                return False
            # An alert deleted while its batch was evaluated takes its matches with it.
            live = {r[0] for r in conn.execute("SELECT id FROM alerts")}
            conn.executemany("INSERT OR IGNORE INTO matches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [tuple(asdict(m).values()) for m in matches if m.alert_id in live])
            conn.executemany("INSERT INTO deliveries (alert_id, version, url, payload, next_at) VALUES (?, ?, ?, ?, ?)",
                             [(a, version, url, payload, now) for a, url, payload in deliveries if a in live])
        return True

    def matches(self, alert_id: str, limit: int = 100) -> list[Match]:
        """An alert's newest matches first."""
        rows = self.conn.execute("SELECT * FROM matches WHERE alert_id = ? ORDER BY matched DESC, version DESC, "
                                 "relevance DESC, article_id LIMIT ?", (alert_id, limit))
        return [Match(*r) for r in rows]

    def match_count(self, alert_id: str) -> int:
        """How many matches an alert has."""
        return self.conn.execute("SELECT count(*) FROM matches WHERE alert_id = ?", (alert_id,)).fetchone()[0]

    # -- webhook deliveries -----------------------------------------------------------------------

    def due(self, now: float | None = None) -> list[Delivery]:
        """Pending deliveries whose next attempt is due."""
        rows = self.conn.execute("SELECT * FROM deliveries WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id",
                                 (time.time() if now is None else now,))
        return [Delivery(*r) for r in rows]

    def deliveries(self, alert_id: str, limit: int = 10) -> list[Delivery]:
        """An alert's newest deliveries first."""
        rows = self.conn.execute("SELECT * FROM deliveries WHERE alert_id = ? ORDER BY id DESC LIMIT ?",
                                 (alert_id, limit))
        return [Delivery(*r) for r in rows]

    def still_pending(self, delivery_id: int) -> bool:
        """Whether a delivery is still to be sent: its alert may have been deleted since `due` listed it."""
        return self.conn.execute("SELECT 1 FROM deliveries WHERE id = ? AND state = 'pending'",
                                 (delivery_id,)).fetchone() is not None

    def next_due(self) -> float | None:
        """When the earliest pending delivery is due (None: none pending)."""
        return self.conn.execute("SELECT min(next_at) FROM deliveries WHERE state = 'pending'").fetchone()[0]

    def attempted(self, delivery_id: int, error: str | None, next_at: float | None) -> None:
        """Record one attempt: delivered (no error), to retry at `next_at`, or failed for good (next_at None)."""
        state = "delivered" if error is None else ("pending" if next_at is not None else "failed")
        with self.transaction() as conn:
            conn.execute("UPDATE deliveries SET attempts = attempts + 1, state = ?, last_error = ?, next_at = ?, "
                         "delivered = ? WHERE id = ?",
                         (state, error, next_at if next_at is not None else time.time(),
                          time.time() if error is None else None, delivery_id))


@contextmanager
def staged_update(index_dir: Path, version: str, base: str, article_ids: Sequence[str]) -> Iterator[None]:
    """Around an update's publish: stage its new and changed ids (when the index has an alerts file), mark them
    published when the block ends, drop them when it raises."""
    if not alerts_path(index_dir).is_file() or not article_ids:
        yield
        return
    store = AlertStore(index_dir)
    try:
        store.stage(version, base, article_ids)
        try:
            yield
        except BaseException:
            store.unstage(version)
            raise
        store.mark_published(version)
    finally:
        store.close()
