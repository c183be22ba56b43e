"""Real and synthetic embedding sets for the index benchmarks: Reuters passage vectors read from a built
index (never written to), the dev queries embedded with the project's Embedder, and larger corpora
synthesised by perturbing real vectors inside the data's own subspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from bench.common import ROOT, dev_queries
from indexer.storage.folders import VECTORS, current_version

CACHE = ROOT / "var" / "bench-vectors"
# A synthetic copy sits as far from its source passage as a real passage's nearest (non-duplicate)
# neighbour does: median cosine 0.82 on Reuters (see bench/RESULTS.md, "Index by scale").
NOISE = 0.55
SEED = 20261125


@dataclass
class VectorSet:
    """Base vectors with ids, and two query sets: real dev queries and held-out real passages."""

    ids: np.ndarray
    base: np.ndarray
    queries: np.ndarray  # embedded dev queries
    held_out: np.ndarray  # real passage vectors left out of `base`

    @property
    def all_queries(self) -> np.ndarray:
        """Dev queries then held-out passages."""
        return np.vstack([self.queries, self.held_out])


REUTERS_INDEX = ROOT / "var" / "bench" / "reuters-title-body"  # what `python -m bench.build_reuters` writes


def reuters_index(source: Path | None = None) -> Path:
    """The published version folder of the built Reuters title+body index (only read)."""
    folder = source or REUTERS_INDEX
    return folder / current_version(folder)


def real_passages(source: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every passage of the Reuters index, cached as .npy under var/."""
    CACHE.mkdir(parents=True, exist_ok=True)
    ids_path, vec_path = CACHE / "ids.npy", CACHE / "vectors.npy"
    if not vec_path.exists():
        index = faiss.read_index(str(reuters_index(source) / VECTORS))
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        np.save(ids_path, ids)
        np.save(vec_path, index.reconstruct_batch(ids))
    return np.load(ids_path), np.load(vec_path)


def query_vectors() -> np.ndarray:
    """Every dev query (headlines then topics) embedded by the project's Embedder, cached under var/."""
    path = CACHE / "queries.npy"
    if not path.exists():
        from indexer.embed import Embedder
        from indexer.settings import Settings
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, Embedder.from_settings(Settings.from_env()).encode(dev_queries()))
    return np.load(path)


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32)."""
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def perturb(source: np.ndarray, pool: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Each row moved by `noise` times the difference of two random pool rows, then renormalised.

    The difference of two real vectors has twice the data's covariance, so the copies stay in the
    subspace real embeddings occupy instead of gaining isotropic noise no model would produce.
    """
    a = rng.integers(0, len(pool), len(source))
    b = rng.integers(0, len(pool), len(source))
    return normalise(source + noise * (pool[a] - pool[b]))


def vector_set(n: int | None, held_out: int = 1000, noise: float = NOISE, seed: int = SEED,
               source: Path | None = None) -> VectorSet:
    """`n` base vectors (None: only the real ones): the real passages minus `held_out`, then perturbed
    copies of them up to `n`."""
    _, real = real_passages(source)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(real))
    held, kept = real[order[:held_out]], real[order[held_out:]]
    if n is None or n <= len(kept):
        base = kept[:n] if n is not None else kept
    else:
        parts = [kept]
        made = len(kept)
        while made < n:
            take = min(len(kept), n - made)
            parts.append(perturb(kept[rng.permutation(len(kept))[:take]], kept, noise, rng))
            made += take
        base = np.vstack(parts)
    return VectorSet(np.arange(len(base), dtype=np.int64), np.ascontiguousarray(base), query_vectors(), held)
