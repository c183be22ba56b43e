"""SortedIds: the block-by-block lookup answers exactly as np.searchsorted does. Pure."""

from __future__ import annotations

import numpy as np
import pytest

from search_api.sorted_ids import BLOCK, SortedIds


@pytest.mark.parametrize("n", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 1000])
def test_positions_are_searchsorteds_left_side(n):
    rng = np.random.default_rng(n)
    ids = np.unique(rng.integers(-(2**40), 2**40, size=n))
    at = SortedIds(ids)
    extremes = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max - 1])
    for keys in (ids, ids - 1, ids + 1, rng.integers(-(2**41), 2**41, size=300), extremes, np.zeros(0, np.int64)):
        found = at.positions(keys)
        assert found.dtype == np.intp and found.tolist() == np.searchsorted(ids, keys).tolist()
    assert len(at) == len(ids) and at.ids.tolist() == ids.tolist() and at.ids.flags["C_CONTIGUOUS"]


def test_a_strided_column_is_held_contiguous():
    pairs = np.array([[i * 3, i] for i in range(200)], dtype=np.int64)
    at = SortedIds(pairs[:, 0])
    assert at.ids.flags["C_CONTIGUOUS"] and at.positions(np.array([0, 4, 597, 598])).tolist() == [0, 2, 199, 200]
