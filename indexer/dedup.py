"""Near-duplicate groups of articles (wire copies of one story). Pure functions over bodies and vectors."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime

import numpy as np

_NON_WORD = re.compile(r"\W+")


def body_key(body: str) -> str:
    """Bodies equal up to case, punctuation and spacing share a key."""
    return hashlib.sha1(_NON_WORD.sub(" ", body.casefold()).strip().encode("utf-8")).hexdigest()


def shingles(body: str, n: int = 3) -> set[str]:
    """Word n-grams of a body, numbers included (so templated reports with other figures differ)."""
    words = _NON_WORD.sub(" ", body.casefold()).split()
    return {" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b|, 0 for two empty sets."""
    return len(a & b) / len(a | b) if a or b else 0.0


def duplicate_groups(ids: Sequence[str], bodies: Sequence[str], vectors: np.ndarray | None = None,
                     threshold: float = 0.97, min_jaccard: float = 0.8,
                     published: Sequence[datetime | None] | None = None, window_days: float = 3.0) -> dict[str, str]:
    """Map each article in a group of two or more to the group's id (its smallest member id).

    Articles join a group when their bodies are equal after normalisation, or when the cosine of
    their article vectors (rows of `vectors`, normalised) is at least `threshold` and their word
    3-shingles overlap by `min_jaccard`: vectors alone would merge templated earnings reports.
    With `published` dates, two copies must also be at most `window_days` apart (or one undated):
    the same boilerplate sent weeks later ("Bundesbank leaves credit policies unchanged") is news again.
    """
    parent = list(range(len(ids)))

    def close_in_time(i: int, j: int) -> bool:
        if published is None or published[i] is None or published[j] is None:
            return True
        return abs((published[i] - published[j]).total_seconds()) <= window_days * 86400

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    same_body: dict[str, list[int]] = {}
    for i, body in enumerate(bodies):
        same_body.setdefault(body_key(body), []).append(i)
    for members in same_body.values():
        for a, i in enumerate(members):
            for j in members[:a]:
                if close_in_time(i, j):
                    union(i, j)
    if vectors is not None and len(ids) > 1:
        for i, j in _similar_pairs(vectors, threshold):
            if (find(i) != find(j) and close_in_time(i, j)
                    and jaccard(shingles(bodies[i]), shingles(bodies[j])) >= min_jaccard):
                union(i, j)
    members: dict[int, list[int]] = {}
    for i in range(len(ids)):
        members.setdefault(find(i), []).append(i)
    out: dict[str, str] = {}
    for group in members.values():
        if len(group) > 1:
            head = min(ids[i] for i in group)
            out.update({ids[i]: head for i in group})
    return out


def _similar_pairs(vectors: np.ndarray, threshold: float, block: int = 2048) -> list[tuple[int, int]]:
    """Index pairs (i < j) with cosine >= threshold, computed block by block to bound memory."""
    pairs: list[tuple[int, int]] = []
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    for start in range(0, len(vectors), block):
        sims = vectors[start : start + block] @ vectors.T
        rows, cols = np.nonzero(sims >= threshold)
        rows = rows + start
        keep = cols > rows
        pairs.extend(zip(rows[keep].tolist(), cols[keep].tolist()))
    return pairs


def article_vectors(passage_vectors: np.ndarray, owners: np.ndarray, n_articles: int) -> np.ndarray:
    """Mean of each article's passage vectors, normalised; `owners[i]` is the article row of passage i."""
    sums = np.zeros((n_articles, passage_vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, owners, passage_vectors)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return sums / np.maximum(norms, 1e-12)
