"""A content-addressed store of computed embeddings: text + model -> vector, in one SQLite file.

It makes a killed build resumable (each embedded block is committed as it finishes) and lets a
rebuild or update skip any passage whose exact input text was embedded before.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.errors import ConfigError
from indexer.settings import Settings

if TYPE_CHECKING:
    from indexer.embed import Embedder

SCHEMA = "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID"
MODELS = "CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL)"


def cache_key(model: str, text: str) -> bytes:
    """Identity of one embedding: the model and the exact text it read."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).digest()[:20]


class EmbeddingCache:
    """Vectors by key; safe against a crash between blocks (each `put` is one transaction)."""

    def __init__(self, path: Path, dim: int, model: str | None = None, fingerprint: str | None = None):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.dim = dim
        self.conn = sqlite3.connect(path, timeout=60)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(SCHEMA)
        self.conn.execute(MODELS)
        if model and fingerprint:
            self._claim(model, fingerprint)

    def _claim(self, model: str, fingerprint: str) -> None:
        """Record which files `model` names here; refuse a cache filled by other files of that name.

        Keys hash the model's name, so without this a model folder swapped under the same name
        would be served the old model's vectors.
        """
        with self.conn:
            self.conn.execute("INSERT OR IGNORE INTO models VALUES (?, ?)", (model, fingerprint))
            (stored,) = self.conn.execute("SELECT fingerprint FROM models WHERE name = ?", (model,)).fetchone()
        if stored != fingerprint:
            self.conn.close()
            raise ConfigError(f"the embedding cache {self.path} holds vectors of another model called {model} "
                              f"(fingerprint {stored}, this one is {fingerprint}); delete that file or point "
                              "NEWSEARCH_CACHE_DIR elsewhere, then run the job again")

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among `keys`."""
        out: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            rows = self.conn.execute(f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for key, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape == (self.dim,):
                    out[key] = vector
        return out

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store one block of vectors in one transaction."""
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                                  [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors)])

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM vectors").fetchone()[0])

    def prune(self, keep: set[bytes]) -> int:
        """Delete every vector whose key is not in `keep`; returns how many went."""
        stale = [k for (k,) in self.conn.execute("SELECT key FROM vectors") if k not in keep]
        with self.conn:
            for start in range(0, len(stale), 500):
                chunk = stale[start : start + 500]
                self.conn.execute(f"DELETE FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk)
        return len(stale)

    def close(self) -> None:
        """Close the database."""
        self.conn.close()


def cache_path(settings: Settings) -> Path | None:
    """Where the embedding cache lives (default <index_dir>/cache), or None if disabled."""
    if settings.cache_dir == "none":
        return None
    folder = Path(settings.cache_dir) if settings.cache_dir else settings.index_dir / "cache"
    return folder / "embeddings.sqlite"


def open_cache(settings: Settings, embedder: Embedder) -> EmbeddingCache | None:
    """The embedding cache the settings name, or None if disabled."""
    path = cache_path(settings)
    return EmbeddingCache(path, embedder.dim, embedder.key, embedder.passage_fingerprint) if path is not None else None
