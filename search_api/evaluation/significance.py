"""Statistics over per-query scores: bootstrap intervals of a mean and paired tests of two systems on the
same queries (sign-flip randomization, paired bootstrap). Pure numpy, deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SEED = 20261207  # fixed, so every report of the same scores gives the same intervals and p-values
RESAMPLES = 10_000
LEVEL = 0.95
_BLOCK = 1_000  # resamples drawn at a time: bounds memory at _BLOCK x queries


def _scores(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError("need a non-empty list of per-query scores")
    return array


def bootstrap_interval(values: Sequence[float], resamples: int = RESAMPLES, level: float = LEVEL,
                       seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: queries resampled with replacement `resamples` times."""
    x = _scores(values)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, _BLOCK):
        n = min(_BLOCK, resamples - start)
        means[start:start + n] = x[rng.integers(0, len(x), size=(n, len(x)))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def randomization_p(a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED) -> float:
    """Two-sided p-value of a paired sign-flip test: how often randomly swapping each query's two scores
    gives a mean difference at least as large in magnitude as the one observed ((count + 1) / (resamples + 1))."""
    x, y = _scores(a), _scores(b)
    if len(x) != len(y):
        raise ValueError(f"paired scores must cover the same queries ({len(x)} against {len(y)})")
    diff = x - y
    observed = abs(diff.mean())
    # A small tolerance so that sums of the same floats in another order still count as equal.
    threshold = observed - 1e-12 * max(1.0, observed)
    rng = np.random.default_rng(seed)
    count = 0
    for start in range(0, resamples, _BLOCK):
        n = min(_BLOCK, resamples - start)
        signs = rng.integers(0, 2, size=(n, len(diff))) * 2 - 1
        count += int(np.count_nonzero(np.abs((signs * diff).mean(axis=1)) >= threshold))
    return (count + 1) / (resamples + 1)


@dataclass(frozen=True)
class Paired:
    """Two systems on the same queries: means, mean difference a - b with its interval, and the p-value."""

    queries: int
    changed: int  # queries whose two scores differ: with few, no test can find a difference
    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    p: float

    def as_dict(self, digits: int = 4) -> dict[str, float | int]:
        """The figures rounded for a report (p to three significant digits)."""
        out: dict[str, float | int] = {"queries": self.queries, "changed": self.changed}
        for name in ("mean_a", "mean_b", "diff", "low", "high"):
            out[name] = round(getattr(self, name), digits)
        out["p"] = float(f"{self.p:.3g}")
        return out


def paired(a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES, level: float = LEVEL,
           seed: int = SEED) -> Paired:
    """Compare two systems' scores on the same queries (a[i] and b[i] are one query's)."""
    x, y = _scores(a), _scores(b)
    p = randomization_p(x, y, resamples, seed)  # first: it refuses unpaired lists
    low, high = bootstrap_interval(x - y, resamples, level, seed)
    return Paired(len(x), int(np.count_nonzero(x != y)), float(x.mean()), float(y.mean()), float((x - y).mean()),
                  low, high, p)
