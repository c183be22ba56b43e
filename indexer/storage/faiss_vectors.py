"""The local store's vectors: a FAISS index keyed by passage id (indexer.storage.base.VectorIndex).

The index type is chosen from the passage count in one function, `index_spec` (measured in
bench/index_by_scale.py; see bench/RESULTS.md, "Index by scale").
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import faiss
import numpy as np

from indexer.errors import ConfigError, StorageError
from indexer.storage.base import Filter

# Exact search scans every vector, so its latency grows with the corpus; from this many passages the
# approximate index answers faster at the recall bench/RESULTS.md ("Index by scale") records.
FLAT_LIMIT = 50_000
# IVF-SQ8 is the approximate index: exact deletions, small codes and a quicker build than HNSW's; HNSW over 8-bit
# codes only on request (NEWSEARCH_HNSW_LIMIT: passages from which to use it; 0, the default: never).
HNSW_LIMIT = 0
HNSW_SPEC = "IDMap2,HNSW32,SQ8"
EF_SEARCH = 256  # HNSW candidates per query; recall at this and at 128: bench/RESULTS.md ("Index by scale")
SCAN_CODES = 1 << 15  # 8-bit codes an IVF search scans by default (default_nprobe); latency: bench/RESULTS.md
EXACT_FILTER_LIMIT = 20_000  # filtered approximate searches over at most this many ids are scored exactly
TRAIN_PER_LIST = 64  # k-means training points per inverted list (FAISS warns below 39)
TRAIN_MAX = 1 << 18  # k-means costs points x lists: at most this many points
LIVE = faiss.IDSelectorRange(0, 1 << 62)  # every passage id (they are >= 0); not the -1 of a removed HNSW node


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """FAISS's OpenMP on one thread for the calling thread only (OpenMP keeps the setting per thread), restored
    after. One query's exact scan is bound by memory bandwidth: a second thread adds its start-up and, in a
    search, takes the core the keyword search runs on (bench/RESULTS.md "Query latency and serving over HTTP")."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def index_spec(n_passages: int, flat_limit: int = FLAT_LIMIT, hnsw_limit: int = HNSW_LIMIT) -> str:
    """FAISS factory string for a corpus of `n_passages`: exact below `flat_limit`, IVF with 8-bit codes
    below `hnsw_limit`, else an HNSW graph over 8-bit codes."""
    if n_passages < flat_limit:
        return "IDMap2,Flat"
    if hnsw_limit and n_passages >= hnsw_limit:
        return HNSW_SPEC
    return f"IVF{ivf_lists(n_passages)},SQ8"


def ivf_lists(n_passages: int) -> int:
    """Inverted lists for an IVF index: the power of two nearest 4*sqrt(n) (lists a few hundred long)."""
    return 1 << int(round(math.log2(4 * math.sqrt(max(n_passages, 1)))))


def default_nprobe(nlist: int, n_passages: int) -> int:
    """Lists probed per query: those holding about SCAN_CODES codes (a power of two), at most a quarter.

    Small corpora need the quarter and the share needed falls as lists multiply: recall and latency by
    corpus size and probes are in bench/RESULTS.md ("Index by scale").
    """
    share = SCAN_CODES * nlist / max(n_passages, 1)
    return max(1, min(nlist // 4, 1 << max(0, round(math.log2(share)))))


class FaissStore:
    """Normalised vectors under inner product (= cosine) keyed by passage id."""

    def __init__(self, index: faiss.Index, nprobe: int = 0, mapped: bool = False, spec: str = "",
                 ef_search: int = 0):
        self.index = index
        self.dim = index.d
        self.mapped = mapped  # memory-mapped from its file: read-only
        self.spec = spec
        self._ids: np.ndarray | None = None  # sorted stored ids, made on first need, dropped on change
        # The ids of a Filter's passages: set by the version that knows the articles (local.LocalVersion).
        self.resolve: Callable[[Filter], np.ndarray] | None = None
        self.ivf = faiss.try_extract_index_ivf(index)
        if self.ivf is not None:
            self.ivf.nprobe = min(nprobe or default_nprobe(self.ivf.nlist, index.ntotal), self.ivf.nlist)
        self.hnsw = hnsw_of(index)
        self.removed = 0  # HNSW nodes of removed passages (label -1): FAISS cannot take them out of the graph
        if self.hnsw is not None:
            self.hnsw.efSearch = ef_search or EF_SEARCH
            self.removed = int((self._labels() < 0).sum())

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int, flat_limit: int = FLAT_LIMIT,
              nprobe: int = 0, hnsw_limit: int = HNSW_LIMIT, ef_search: int = 0) -> FaissStore:
        """A new index holding `vectors` under `ids`, of the type index_spec chooses."""
        spec = index_spec(len(ids), flat_limit, hnsw_limit)
        index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not index.is_trained:
            ivf = faiss.try_extract_index_ivf(index)
            if ivf is None:  # 8-bit codes of HNSW: per-dimension ranges, cheap on every vector
                index.train(vectors)
            else:
                # A fixed-seed sample: k-means on more points costs time and gains nothing measurable.
                size = min(len(vectors), TRAIN_PER_LIST * ivf.nlist, TRAIN_MAX)
                index.train(vectors[np.random.default_rng(0).choice(len(vectors), size, replace=False)])
                # Lets `get` reconstruct and `remove` delete by passage id, as IDMap2 does for flat indexes.
                ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        store = cls(index, nprobe, spec=spec, ef_search=ef_search)
        store.add(ids, vectors)
        return store

    @classmethod
    def load(cls, path: Path, nprobe: int = 0, mmap: bool = False, ef_search: int = 0) -> FaissStore:
        """Read an index written by `save`; with `mmap` its arrays stay in the file's pages (read-only)."""
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
        return cls(index, nprobe, mapped=mmap, ef_search=ef_search)

    def _writable(self) -> None:
        if self.mapped:
            raise ConfigError("this index is memory-mapped (NEWSEARCH_MMAP=1) and cannot be changed; "
                              "open it without mmap to add or remove vectors")
        self._ids = None

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under int64 ids."""
        self._writable()
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids; returns how many were present."""
        self._writable()
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if self.hnsw is not None:
            return self._unlabel(ids)
        # IVF's hashtable direct map removes only by an explicit id array.
        selector = faiss.IDSelectorArray(ids) if self.ivf is not None else faiss.IDSelectorBatch(ids)
        return int(self.index.remove_ids(selector))

    def _unlabel(self, ids: np.ndarray) -> int:
        """Remove from an HNSW index: the node stays in the graph (a waypoint) under label -1, which searches
        skip; the labels are saved with the index, so the removal persists."""
        labels = self._labels()
        gone = np.isin(labels, ids[ids >= 0])
        labels[gone] = -1  # a view of the index's own id map
        self.index.construct_rev_map()
        self.removed += int(gone.sum())
        return int(gone.sum())

    def _labels(self) -> np.ndarray:
        """The passage id of each stored vector, in storage order (-1: removed), as a view of the index's map."""
        id_map = self.index.id_map
        return faiss.rev_swig_ptr(id_map.data(), id_map.size()) if id_map.size() else np.zeros(0, dtype=np.int64)

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of some ids (decoded from 8-bit codes on IVF-SQ8)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.index.reconstruct_batch(ids)

    def ids(self) -> np.ndarray:
        """Every id held, ascending."""
        return np.sort(self._all_ids())

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
               filter: Filter | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for one query vector; `allowed` restricts to those ids, `filter` (when no ids
        are given) to its articles' passages. -1 ids are dropped."""
        if allowed is None and filter:
            if self.resolve is None:
                raise ConfigError("this vector index knows no articles: pass the allowed passage ids")
            allowed = self.resolve(filter)
        k = min(k, len(self))
        if k <= 0 or (allowed is not None and len(allowed) == 0):
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        params = None
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            if (self.ivf is not None or self.hnsw is not None) and len(allowed) <= EXACT_FILTER_LIMIT:
                # The probed lists (the graph's neighbourhood) may hold none of a selective filter's ids:
                # score those ids exactly.
                return self._exact(query[0], k, allowed)
            params = self._filter_params(allowed)
            k = min(k, len(allowed))
        elif self.removed:
            params = faiss.SearchParametersHNSW(sel=LIVE, efSearch=self.hnsw.efSearch)
        exact = self.ivf is None and self.hnsw is None
        with one_thread() if exact else contextlib.nullcontext():
            scores, ids = self.index.search(query, k, params=params)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def _filter_params(self, allowed: np.ndarray) -> faiss.SearchParameters:
        selector = faiss.IDSelectorBatch(allowed)
        # The probed lists (visited nodes) hold a share of allowed ids: probe 1/share as many to find as many.
        share = len(allowed) / max(len(self), 1)
        if self.hnsw is not None:
            return faiss.SearchParametersHNSW(sel=selector, efSearch=min(len(self), math.ceil(self.hnsw.efSearch / share)))
        if self.ivf is None:
            return faiss.SearchParameters(sel=selector)
        nprobe = min(self.ivf.nlist, math.ceil(self.ivf.nprobe / max(share, 1e-9)))
        return faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)

    def _exact(self, query: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        allowed = np.unique(allowed)
        allowed = allowed[self._present(allowed)]
        scores = self.get(allowed) @ query
        top = np.lexsort((allowed, -scores))[:k]
        return scores[top], allowed[top]

    def _present(self, ids: np.ndarray) -> np.ndarray:
        """Mask of the ids this index holds (a filter may name passages removed since)."""
        if self._ids is None:
            self._ids = np.sort(self._all_ids())
        if len(self._ids) == 0:
            return np.zeros(len(ids), dtype=bool)
        at = np.minimum(np.searchsorted(self._ids, ids), len(self._ids) - 1)
        return self._ids[at] == ids

    def _all_ids(self) -> np.ndarray:
        if self.ivf is None:
            labels = self._labels()
            return labels[labels >= 0]  # a copy, without removed HNSW nodes
        lists = self.ivf.invlists
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(self.ivf.nlist) if lists.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

    def save(self, path: Path) -> None:
        """Write the index to one file; StorageError (one line) if the disk refuses it."""
        try:
            faiss.write_index(self.index, str(path))
        except RuntimeError as exc:  # FAISS puts the C library's reason, e.g. (No space left on device), last
            reason = str(exc).rsplit("(", 1)[-1].rstrip(")") if str(exc).endswith(")") else str(exc).splitlines()[-1]
            raise StorageError(f"{path}: cannot write the vector index ({reason}); free disk space or choose "
                               "another --index-dir, then run the job again") from None

    def __len__(self) -> int:
        return int(self.index.ntotal) - self.removed


def hnsw_of(index: faiss.Index):  # noqa: ANN201 (a SWIG faiss.HNSW)
    """The HNSW graph under an IDMap2 wrapper, or None for other index types."""
    inner = getattr(index, "index", None)
    inner = faiss.downcast_index(inner) if inner is not None else None
    return inner.hnsw if isinstance(inner, faiss.IndexHNSW) else None
