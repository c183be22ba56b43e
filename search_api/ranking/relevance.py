"""A calibrated relevance in [0, 1] per hit, never a re-ranking: a logistic function of the hit's cosine to the
query (normalised by the query's cosines to a fixed sample of the index, so another model's scale does not shift
it) and of the idf share of the query's words the article holds. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Fitted on the tune half of both dev sets by bench/calibrate_relevance.py (bench/RESULTS.md, "Relevance
# calibration"; bench/results/relevance-calibration-amd-epyc-avx2.json): weights of FEATURES, then the intercept.
FEATURES = ("cosine_z", "coverage")
WEIGHTS = (0.2718, 4.5054)
INTERCEPT = -5.7941


@dataclass(frozen=True)
class Signals:
    """What relevance is computed from, one entry per hit, plus the query's background cosines."""

    cosine: np.ndarray  # cosine of the query to the hit's best passage
    coverage: np.ndarray  # idf-weighted share of the query's words found in the hit's article, in [0, 1]
    background_mean: float  # mean cosine of the query to a fixed random sample of the index's passages
    background_sd: float  # their standard deviation


def background(query: np.ndarray, sample: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the query's cosines to a sample of passage vectors ((0, 1) if empty)."""
    if len(sample) == 0:
        return 0.0, 1.0
    cosines = sample @ np.asarray(query, dtype=np.float32)
    return float(cosines.mean()), float(cosines.std())


def coverage(idf: Sequence[float], present: np.ndarray) -> np.ndarray:
    """Share of the query's idf mass each hit holds: `present` is (words x hits) booleans; 0 with no words."""
    weights = np.asarray(idf, dtype=np.float64)
    present = np.asarray(present, dtype=bool)
    if len(weights) == 0 or weights.sum() <= 0:
        return np.zeros(present.shape[1])
    return (weights @ present) / weights.sum()


def columns(signals: Signals) -> dict[str, np.ndarray]:
    """Every candidate input of the model by name, one value per hit (the fit chooses among them)."""
    sd = max(signals.background_sd, 1e-3)  # a degenerate sample (one passage) must not blow the scale up
    z = (np.asarray(signals.cosine, dtype=np.float64) - signals.background_mean) / sd
    cov = np.asarray(signals.coverage, dtype=np.float64)
    return {"cosine": np.asarray(signals.cosine, dtype=np.float64), "cosine_z": z, "coverage": cov,
            "cosine_z*coverage": z * cov, "any_word": (cov > 0).astype(np.float64),
            "cosine_gap": z - z.max() if len(z) else z}  # below the best ranked hit (signals of every ranked hit)


def features(signals: Signals, names: Sequence[str] = FEATURES) -> np.ndarray:
    """The model's inputs, one row per hit, columns `names` (FEATURES by default)."""
    found = columns(signals)
    return np.column_stack([found[name] for name in names]) if len(signals.cosine) else np.zeros((0, len(names)))


def logistic(x: np.ndarray, weights: Sequence[float], intercept: float) -> np.ndarray:
    """1 / (1 + exp(-(x @ weights + intercept))), computed without overflow."""
    logit = np.asarray(x, dtype=np.float64) @ np.asarray(weights, dtype=np.float64) + intercept
    return np.exp(-np.logaddexp(0.0, -logit))


def relevance(signals: Signals, weights: Sequence[float] = WEIGHTS, intercept: float = INTERCEPT) -> np.ndarray:
    """Calibrated probability that each hit is relevant to the query."""
    if len(signals.cosine) == 0:
        return np.zeros(0)
    return logistic(features(signals), weights, intercept)
