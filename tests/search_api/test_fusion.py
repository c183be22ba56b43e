"""Pure ranking functions."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest

from search_api.ranking.fusion import best_per_group, decay, ranked, rrf, soft_max_pool


def test_rrf_sums_reciprocal_ranks_with_weights():
    fused = rrf([["a", "b"], ["b", "c"]], [1.0, 2.0], k=60)
    assert fused["b"] == pytest.approx(1 / 62 + 2 / 61)
    assert fused["a"] == pytest.approx(1 / 61) and fused["c"] == pytest.approx(2 / 62)
    assert ranked(fused) == ["b", "c", "a"]


def _pool(passages: dict[str, list[float]], temperature: float) -> dict[str, float]:
    """soft_max_pool over passages given per article, as a dict of pooled scores."""
    groups = np.array([g for g, values in passages.items() for _ in values])
    pooled = soft_max_pool(groups, np.array([v for values in passages.values() for v in values]), temperature)
    return dict(zip(pooled.groups.tolist(), pooled.scores.tolist()))


def test_soft_max_pool_rewards_several_matching_passages_a_little():
    pooled = _pool({"one": [0.6], "two": [0.6, 0.6], "far": [0.6, 0.1], "flat": [0.5, 0.6]}, 0.05)
    assert pooled["one"] == 0.6 and pooled["two"] == pytest.approx(0.6 + 0.05 * math.log(2))
    assert 0.6 < pooled["far"] < 0.6 + 1e-4  # a weak second passage adds next to nothing
    assert ranked(pooled) == ["two", "flat", "far", "one"]
    assert _pool({"a": [0.2, 0.9, 0.5]}, 0.0) == {"a": 0.9}


def test_soft_max_pool_names_each_groups_best_passage_and_count():
    groups = np.array([7, 3, 7, 3, 9, 7])
    pooled = soft_max_pool(groups, np.array([0.5, 0.8, 0.9, 0.8, 0.1, 0.2]), 0.0)
    assert pooled.groups.tolist() == [3, 7, 9]
    assert pooled.best.tolist() == [1, 2, 4]  # a tie goes to the earlier passage
    assert pooled.counts.tolist() == [2, 3, 1] and pooled.scores.tolist() == [0.8, 0.9, 0.1]
    empty = soft_max_pool(np.zeros(0, dtype=np.int64), np.zeros(0), 0.05)
    assert len(empty.groups) == len(empty.scores) == 0


def test_ranked_breaks_ties_by_key():
    assert ranked({"z": 1.0, "a": 1.0, "m": 2.0}) == ["m", "a", "z"]


def test_decay_halves_per_half_life_of_distance_from_now():
    now = datetime(2020, 1, 11)
    out = decay({"old": 1.0, "new": 1.0, "later": 1.0, "undated": 2.0},
                {"old": datetime(2020, 1, 1), "new": now, "later": datetime(2020, 1, 31), "undated": None}, 10.0, now)
    assert out == {"old": pytest.approx(0.5), "new": 1.0, "later": pytest.approx(0.25), "undated": pytest.approx(1.0)}


def test_best_per_group_keeps_first_and_lists_others():
    heads, members = best_per_group(["a", "b", "c", "d"], {"a": "g", "c": "g", "d": "h"})
    assert heads == ["a", "b", "d"]
    assert members == {"a": ["c"], "b": [], "d": []}
