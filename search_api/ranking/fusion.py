"""Pure ranking functions: passage pooling, reciprocal rank fusion, recency decay, grouping and collapse."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Pooled:
    """Per distinct group (ascending): the index of its best passage, its pooled score, its passage count."""

    groups: np.ndarray
    best: np.ndarray
    scores: np.ndarray
    counts: np.ndarray


def ranked(scores: Mapping[K, float]) -> list[K]:
    """Keys by descending score, ties broken by key, so rankings are deterministic."""
    return sorted(scores, key=lambda key: (-scores[key], key))


def soft_max_pool(groups: np.ndarray, scores: np.ndarray, temperature: float) -> Pooled:
    """One score per group from its passages' scores: t * log(sum(exp(s / t))), the best score when t is 0.

    A smooth maximum: an article whose several passages match scores a little above one with a single
    equally good passage (by at most t * log(passages)), so articles about the query beat passing mentions.
    `groups` and `scores` are parallel arrays; among equal scores the earlier passage counts as the best.
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((-scores, groups))  # stable: by group, then best score first
    ordered = np.asarray(groups)[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(order) else np.zeros(0, dtype=np.int64)
    counts = np.diff(np.r_[starts, len(order)])
    best = order[starts]
    top = scores[best]
    pooled = top
    if temperature > 0 and len(order):
        spread = np.exp((scores[order] - np.repeat(top, counts)) / temperature)
        pooled = top + temperature * np.log(np.add.reduceat(spread, starts))
    return Pooled(ordered[starts], best, pooled, counts)


def rrf(rankings: Sequence[Sequence[K]], weights: Sequence[float] | None = None, k: float = 60.0) -> dict[K, float]:
    """Weighted reciprocal rank fusion: score = sum_i w_i / (k + rank_i), ranks from 1."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[K, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, key in enumerate(ranking, 1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return fused


def decay(scores: Mapping[K, float], published: Mapping[K, datetime | None], half_life_days: float,
          now: datetime) -> dict[K, float]:
    """Multiply each score by 0.5 ** (age / half-life); an undated item counts as old as the half-life.

    Age is the distance from `now` either way, so a `now` in the past favours that period rather
    than everything after it.
    """
    out: dict[K, float] = {}
    for key, score in scores.items():
        when = published.get(key)
        age = half_life_days if when is None else abs((now - when).total_seconds()) / 86400.0
        out[key] = score * math.pow(0.5, age / half_life_days)
    return out


def best_per_group(ranking: Iterable[K], group_of: Mapping[K, str]) -> tuple[list[K], dict[K, list[K]]]:
    """Keep the first key of each group in rank order; the others are listed under it."""
    heads: list[K] = []
    head_of: dict[str, K] = {}
    members: dict[K, list[K]] = {}
    for key in ranking:
        group = group_of.get(key)
        if group is None:
            heads.append(key)
            members[key] = []
        elif group in head_of:
            members[head_of[group]].append(key)
        else:
            head_of[group] = key
            heads.append(key)
            members[key] = []
    return heads, members
