"""The re-ranking extension point: a `Reranker` re-scores the best fused candidates from their text.

None ships: no cross-encoder with weights is packaged on PyPI in a form that loads offline (docs/ranking.md,
"Re-ranking"). Pass one to `Searcher(..., reranker=...)` and ask for `rerank=True`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Protocol, TypeVar

K = TypeVar("K", bound=Hashable)


class Reranker(Protocol):
    """Scores (query, passage) pairs jointly, e.g. a cross-encoder; higher is more relevant."""

    name: str

    def score(self, query: str, texts: Sequence[str]) -> Sequence[float]:
        """One score per text, in order."""
        ...


def rerank(order: Sequence[K], texts: Mapping[K, str], query: str, reranker: Reranker,
           top: int) -> tuple[list[K], dict[K, float]]:
    """The first `top` keys of `order` re-ordered by the reranker (ties by key), then the rest as they were.

    Returns the new order and the reranker's score of each re-scored key.
    """
    head = list(order[:top])
    scores = [float(s) for s in reranker.score(query, [texts[key] for key in head])]
    if len(scores) != len(head):
        raise ValueError(f"reranker {reranker.name} returned {len(scores)} scores for {len(head)} texts")
    new = dict(zip(head, scores))
    return sorted(head, key=lambda key: (-new[key], key)) + list(order[top:]), new
