"""The vector store behind a small interface, and its FAISS implementation.

The index type is chosen from the passage count in one function, `index_spec`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

FLAT_LIMIT = 200_000  # exact search is fast enough below this many passages on a laptop CPU
EXACT_FILTER_LIMIT = 50_000  # filtered IVF searches over fewer ids than this are scored exactly


class VectorStore(Protocol):
    """What the rest of newsearch needs from a vector index (a distributed one may sit beside FAISS)."""

    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> int: ...
    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...
    def get(self, ids: np.ndarray) -> np.ndarray: ...
    def _exact(self, query: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = self.get(allowed) @ np.asarray(query, dtype=np.float32)
        top = np.lexsort((allowed, -scores))[:k]
        return scores[top], allowed[top]

    def save(self, path: Path) -> None: ...
    def __len__(self) -> int: ...


def index_spec(n_passages: int) -> str:
    """FAISS factory string for a corpus of `n_passages`: exact below FLAT_LIMIT, else IVF."""
    if n_passages < FLAT_LIMIT:
        return "IDMap2,Flat"
    # ~4*sqrt(n) lists keeps lists a few hundred long, as FAISS's guidelines suggest.
    nlist = 1 << int(round(math.log2(4 * math.sqrt(n_passages))))
    return f"IVF{nlist},Flat"


class FaissStore:
    """Normalised vectors under inner product (= cosine) keyed by passage id."""

    def __init__(self, index: faiss.Index, nprobe: int = 16):
        self.index = index
        self.dim = index.d
        if hasattr(index, "nprobe"):
            index.nprobe = nprobe

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int) -> FaissStore:
        """A new index holding `vectors` under `ids`, of the type index_spec chooses."""
        spec = index_spec(len(ids))
        index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            index.train(vectors)
        if isinstance(index, faiss.IndexIVF):
            # Lets `get` reconstruct vectors by passage id, as IDMap2 does for flat indexes.
            index.set_direct_map_type(faiss.DirectMap.Hashtable)
        store = cls(index)
        store.add(ids, vectors)
        return store

    @classmethod
    def load(cls, path: Path) -> FaissStore:
        """Read an index written by `save`."""
        return cls(faiss.read_index(str(path)))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under int64 ids."""
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids; returns how many were present."""
        return int(self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64))))

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of some ids."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.index.reconstruct_batch(ids)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for one query vector; `allowed` restricts to those ids. -1 ids are dropped."""
        k = min(k, len(self))
        if k <= 0 or (allowed is not None and len(allowed) == 0):
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        params = None
        if allowed is not None and hasattr(self.index, "nprobe") and len(allowed) <= EXACT_FILTER_LIMIT:
            # IVF probes only a few lists, which may hold none of a selective filter's ids:
            # score the allowed vectors exactly instead.
            return self._exact(query, k, np.asarray(allowed, dtype=np.int64))
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            params = faiss.SearchParametersIVF(sel=selector) if hasattr(self.index, "nprobe") else faiss.SearchParameters(sel=selector)
            k = min(k, len(allowed))
        scores, ids = self.index.search(np.asarray(query, dtype=np.float32).reshape(1, -1), k, params=params)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def _exact(self, query: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = self.get(allowed) @ np.asarray(query, dtype=np.float32)
        top = np.lexsort((allowed, -scores))[:k]
        return scores[top], allowed[top]

    def save(self, path: Path) -> None:
        """Write the index to one file."""
        faiss.write_index(self.index, str(path))

    def __len__(self) -> int:
        return int(self.index.ntotal)
