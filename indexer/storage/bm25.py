"""Keyword scoring in memory: FTS5's own bm25() for one FTS5 table and fixed column weights, precomputed per
(term, row) from that table's index when a version is opened, so a query adds up a few arrays instead of
scoring every matching row in SQL. Read-only; scores equal FTS5's (same formula, operations and order).
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

K1, B = 1.2, 0.75  # the constants of FTS5's bm25()
CHUNK = 4_000_000  # token instances read from SQLite at a time (bounds the text buffer)


def varints(blob: bytes) -> list[int]:
    """The SQLite varints packed in `blob` (FTS5's averages and docsize records)."""
    out, i = [], 0
    while i < len(blob):
        value = 0
        for n in range(9):
            byte = blob[i]
            i += 1
            if n == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        out.append(value)
    return out


def instances(conn: sqlite3.Connection, table: str) -> int:
    """Token instances an FTS5 table indexes (what loading it in memory reads)."""
    block = conn.execute(f"SELECT block FROM {table}_data WHERE id = 1").fetchone()
    return sum(varints(block[0])[1:]) if block else 0


@dataclass
class KeywordIndex:
    """Per term: the rows holding it and each row's bm25 share; rows are FTS5 rowids in ascending order."""

    rowids: np.ndarray  # int64, FTS5 rowid of each dense row
    spans: dict[str, tuple[int, int]]  # term -> [start, end) into rows/shares
    rows: np.ndarray  # int32 dense row of each (term, row) pair
    shares: np.ndarray  # float64 idf * saturated frequency of each pair
    tokenize: str  # the table's tokenizer spec, to turn query words into its terms

    @classmethod
    def load(cls, conn: sqlite3.Connection, table: str, weights: Sequence[float]) -> KeywordIndex:
        """Read `table`'s index through fts5vocab and precompute every bm25(table, *weights) share."""
        columns = [r[0] for r in conn.execute("SELECT name FROM pragma_table_info(?)", (table,))]
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        found = re.search(r"tokenize\s*=\s*'([^']*)'", sql)
        tokenize = found.group(1) if found else "unicode61"
        # FTS5's own totals: rows, tokens per column (the averages record), tokens per row (docsize).
        averages = varints(conn.execute(f"SELECT block FROM {table}_data WHERE id = 1").fetchone()[0])
        n_rows, avgdl = averages[0], sum(averages[1:]) / averages[0]
        sizes = conn.execute(f"SELECT id, sz FROM {table}_docsize ORDER BY id").fetchall()
        rowids = np.array([r[0] for r in sizes], dtype=np.int64)
        length = np.array([sum(varints(r[1])) for r in sizes], dtype=np.float64)
        weight = np.array([weights[c] if c < len(weights) else 1.0 for c in range(len(columns))])
        vocab = f"temp.{table}_vocab_{threading.get_ident()}"
        conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {vocab}_row USING fts5vocab(main, {table}, row)")
        conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {vocab}_inst USING fts5vocab(main, {table}, instance)")
        try:
            terms = conn.execute(f"SELECT term, doc, cnt FROM {vocab}_row").fetchall()
            parts = [_shares(conn, f"{vocab}_inst", chunk, columns, weight, rowids, length, n_rows, avgdl)
                     for chunk in _chunks(terms)]
        finally:
            conn.execute(f"DROP TABLE IF EXISTS {vocab}_row")
            conn.execute(f"DROP TABLE IF EXISTS {vocab}_inst")
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int32)
        shares = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
        ends = np.cumsum([t[1] for t in terms])
        spans = {t[0]: (int(e - t[1]), int(e)) for t, e in zip(terms, ends)}
        return cls(rowids, spans, rows, shares, tokenize)

    def terms(self, words: Sequence[str]) -> list[str] | None:
        """The index term of each quoted query word, or None if one is not exactly one token (a phrase)."""
        out = []
        for tokens in _tokens(self.tokenize, words):
            if len(tokens) != 1:
                return None
            out.append(tokens[0])
        return out

    def top(self, terms: Sequence[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
        """FTS5 rowids and scores (-bm25) of the best `limit` rows matching any term, plus any rows tied
        with the last of them; unordered."""
        spans = [self.spans[t] for t in terms if t in self.spans]
        if not spans:
            return np.zeros(0, np.int64), np.zeros(0)
        rows = np.concatenate([self.rows[a:b] for a, b in spans])
        # bincount adds in input order, i.e. phrase by phrase from 0.0 as bm25() does: the same sums.
        scores = np.bincount(rows, weights=np.concatenate([self.shares[a:b] for a, b in spans]),
                             minlength=len(self.rowids))
        matched = np.flatnonzero(scores)  # every share is > 0 (idf is at least 1e-6)
        if len(matched) > limit:
            cut = np.partition(scores[matched], len(matched) - limit)[len(matched) - limit]
            matched = matched[scores[matched] >= cut]
        return self.rowids[matched], scores[matched]

    def presence(self, words: Sequence[str], rowids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each query word: how many rows hold it, and whether each of `rowids` does (all its tokens)."""
        rows = np.searchsorted(self.rowids, np.asarray(rowids, dtype=np.int64))
        df = np.zeros(len(words), dtype=np.int64)
        present = np.zeros((len(words), len(rows)), dtype=bool)
        for i, tokens in enumerate(_tokens(self.tokenize, words)):
            spans = [self.spans.get(t, (0, 0)) for t in tokens]
            if not spans:
                continue
            df[i] = min(b - a for a, b in spans)
            present[i] = np.logical_and.reduce([_holds(self.rows[a:b], rows) for a, b in spans])
        return df, present

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return self.rowids.nbytes + self.rows.nbytes + self.shares.nbytes


def _holds(postings: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mask of `rows` found in one term's postings (ascending): a binary search each, not a scan."""
    if len(postings) == 0:
        return np.zeros(len(rows), dtype=bool)
    at = np.minimum(np.searchsorted(postings, rows), len(postings) - 1)
    return postings[at] == rows


def _chunks(terms: list[tuple[str, int, int]]) -> list[tuple[str, str, list[tuple[str, int, int]]]]:
    """Consecutive term ranges of at most about CHUNK instances: (first term, last term, their vocab rows)."""
    out, start, held = [], 0, 0
    for i, (_, _, count) in enumerate(terms):
        held += count
        if held >= CHUNK or i == len(terms) - 1:
            out.append((terms[start][0], terms[i][0], terms[start : i + 1]))
            start, held = i + 1, 0
    return out


def _shares(conn: sqlite3.Connection, vocab: str, chunk: tuple, columns: list[str], weight: np.ndarray,
            rowids: np.ndarray, length: np.ndarray, n_rows: int, avgdl: float) -> tuple[np.ndarray, np.ndarray]:
    """The (dense row, share) pairs of one term range, in term then row order."""
    first, last, terms = chunk
    case = " ".join(f"WHEN {_quote(c)} THEN {i}" for i, c in enumerate(columns))
    # One text of numbers per chunk: reading millions of rows one by one in Python costs several times more.
    (text,) = conn.execute(f"SELECT group_concat(doc * {len(columns)} + CASE col {case} END, ',') FROM {vocab}"
                           " WHERE term >= ? AND term <= ?", (first, last)).fetchone()
    packed = np.fromstring(text or "", dtype=np.int64, sep=",")
    counts = np.array([t[2] for t in terms], dtype=np.int64)
    if len(packed) != counts.sum():
        raise RuntimeError(f"fts5vocab returned {len(packed)} instances for {counts.sum()} counted")
    doc, col = np.divmod(packed, len(columns))
    term = np.repeat(np.arange(len(terms)), counts)
    new = np.ones(len(doc), dtype=bool)
    new[1:] = (term[1:] != term[:-1]) | (doc[1:] != doc[:-1])
    # The weighted frequency of each (term, row), summed instance by instance in column order as bm25() does.
    freq = np.bincount(np.cumsum(new) - 1, weights=weight[col])
    pair_term, pair_row = term[new], np.searchsorted(rowids, doc[new])
    idfs = np.array([idf(n_rows, t[1]) for t in terms])
    norm = K1 * ((1 - B) + B * length[pair_row] / avgdl)
    shares = idfs[pair_term] * ((freq * (K1 + 1.0)) / (freq + norm))
    return pair_row.astype(np.int32), shares


def idf(n_rows: int, hits: int) -> float:
    """FTS5's idf of a term that `hits` of `n_rows` rows hold (at least 1e-6)."""
    value = math.log((n_rows - hits + 0.5) / (hits + 0.5))
    return value if value > 0.0 else 1e-6


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_local = threading.local()


def _tokens(tokenize: str, words: Sequence[str]) -> list[list[str]]:
    """The terms FTS5 makes of each word with this tokenizer, from a small in-memory table (one per thread)."""
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    conn = conns.get(tokenize)
    if conn is None:
        conn = conns[tokenize] = sqlite3.connect(":memory:")
        conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize={_quote(tokenize)})")
        conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
    conn.executemany("INSERT INTO t(rowid, x) VALUES (?, ?)", enumerate(words))
    tokens: list[list[str]] = [[] for _ in words]
    for row, term in conn.execute("SELECT doc, term FROM v ORDER BY doc, offset"):
        tokens[row].append(term)
    conn.execute("DELETE FROM t")
    return tokens
