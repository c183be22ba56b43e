"""Bootstrap intervals and paired tests on known cases."""

from __future__ import annotations

import numpy as np
import pytest

from search_api.evaluation.significance import bootstrap_interval, paired, randomization_p


def _scores(n=200, seed=1):
    return np.random.default_rng(seed).uniform(0, 1, n)


def test_identical_systems_give_p_one_and_a_zero_difference():
    a = _scores()
    result = paired(a, a.copy())
    assert result.p == 1.0 and result.changed == 0
    assert result.diff == 0.0 and result.low == 0.0 and result.high == 0.0


def test_a_constant_shift_is_as_significant_as_the_permutations_can_say():
    a = _scores()
    result = paired(a + 0.05, a)
    assert result.p == pytest.approx(1 / 10_001)  # no sign flip reaches the observed mean
    assert result.diff == pytest.approx(0.05)
    assert result.low == pytest.approx(0.05) and result.high == pytest.approx(0.05)
    assert paired(a, a + 0.05).diff == pytest.approx(-0.05)


def test_noise_without_a_shift_is_not_significant():
    rng = np.random.default_rng(7)
    a = rng.uniform(0, 1, 300)
    b = a + rng.normal(0, 0.1, 300) * rng.choice([-1, 1], 300)
    result = paired(a, b)
    assert result.p > 0.05 and result.low < 0 < result.high


def test_a_small_real_gain_is_found_and_its_interval_holds_it():
    rng = np.random.default_rng(3)
    b = rng.uniform(0, 1, 400)
    a = b + rng.normal(0.03, 0.1, 400)
    result = paired(a, b)
    assert result.p < 0.01
    assert result.low < result.diff < result.high and result.low > 0


def test_the_interval_contains_the_mean_and_narrows_with_more_queries():
    few, many = _scores(30), _scores(3000)
    low, high = bootstrap_interval(few)
    assert low < few.mean() < high
    low2, high2 = bootstrap_interval(many)
    assert low2 < many.mean() < high2 and high2 - low2 < (high - low) / 5
    # Uniform(0, 1): standard error of the mean over 3000 queries is about 0.0053, so the 95% interval is about 0.021.
    assert high2 - low2 == pytest.approx(2 * 1.96 * (1 / 12) ** 0.5 / 3000 ** 0.5, rel=0.1)


def test_results_are_deterministic_and_follow_the_seed():
    a, b = _scores(50, 1), _scores(50, 2)
    assert paired(a, b) == paired(a, b)
    assert bootstrap_interval(a) == bootstrap_interval(a)
    assert bootstrap_interval(a, seed=1) != bootstrap_interval(a, seed=2)


def test_a_single_query_and_a_few_permutations_work():
    assert bootstrap_interval([0.5]) == (0.5, 0.5)
    assert randomization_p([1.0], [0.0], resamples=99) == 1.0  # flipping one sign always reaches |1|


def test_unpaired_or_empty_scores_are_refused():
    with pytest.raises(ValueError, match="same queries"):
        paired([1.0, 0.5], [1.0])
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval([])
