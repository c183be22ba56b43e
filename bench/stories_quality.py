"""Story quality on the judged Reuters pairs (bench/stories_pairs.jsonl): fit the story parameters on one half
of the pairs, report pairwise precision and recall with bootstrap intervals on the other half, beside the
copies-only grouping and dense similarity alone. Writes bench/results/stories-quality-<cpu kind>.json."""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bench.common import machine_facts, result_path, write_result
from bench.stories_data import BASE_INDEX, IndexedArticles, load_indexed
from indexer.stories import StoryParams, candidate_links, cluster, keywords

PAIRS = Path(__file__).with_name("stories_pairs.jsonl")
GRID = {"threshold": (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9), "min_overlap": (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4),
        "window_days": (1.0, 2.0, 3.0), "max_span_days": (2.0, 3.0, 5.0, 7.0, 1e9)}


def halves(pairs: list[dict]) -> tuple[list[dict], list[dict]]:
    """A fixed split of the judged pairs by a hash of their ids: (fit, check)."""
    fit, check = [], []
    for p in pairs:
        (fit if int(hashlib.sha1(f"{p['a']}|{p['b']}".encode()).hexdigest(), 16) % 2 == 0 else check).append(p)
    return fit, check


def scores(pairs: list[dict], same: np.ndarray, resamples: int = 0, seed: int = 0) -> dict:
    """Pairwise precision, recall and F1 of `same` (predicted same story) against the labels, with 95%
    bootstrap intervals over pairs when `resamples`."""
    gold = np.array([p["label"] for p in pairs], dtype=bool)

    def prf(g: np.ndarray, s: np.ndarray) -> tuple[float, float, float]:
        tp = float(np.sum(g & s))
        precision = tp / max(np.sum(s), 1)
        recall = tp / max(np.sum(g), 1)
        return precision, recall, 2 * precision * recall / max(precision + recall, 1e-12)

    p, r, f = prf(gold, same)
    out = {"pairs": len(pairs), "positives": int(gold.sum()), "predicted": int(same.sum()),
           "precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}
    if resamples:
        rng = np.random.default_rng(seed)
        draws = np.array([prf(gold[k], same[k]) for k in rng.integers(0, len(pairs), (resamples, len(pairs)))])
        for name, column in zip(("precision", "recall", "f1"), draws.T):
            out[f"{name}_95"] = [round(float(np.percentile(column, 2.5)), 4), round(float(np.percentile(column, 97.5)), 4)]
    return out


def paired_f1(pairs: list[dict], same_a: np.ndarray, same_b: np.ndarray, resamples: int, seed: int = 0) -> dict:
    """F1 of a minus F1 of b on the same pairs: the difference, its 95% bootstrap interval (pairs resampled
    together) and a two-sided bootstrap p-value."""
    gold = np.array([p["label"] for p in pairs], dtype=bool)

    def f1(k: np.ndarray, same: np.ndarray) -> float:
        tp = np.sum(gold[k] & same[k])
        return float(2 * tp / max(np.sum(gold[k]) + np.sum(same[k]), 1))

    every = np.arange(len(pairs))
    draws = np.array([f1(k, same_a) - f1(k, same_b)
                      for k in np.random.default_rng(seed).integers(0, len(pairs), (resamples, len(pairs)))])
    p = min(1.0, 2 * min(float(np.mean(draws <= 0)), float(np.mean(draws >= 0))))
    return {"diff": round(f1(every, same_a) - f1(every, same_b), 4),
            "diff_95": [round(float(np.percentile(draws, 2.5)), 4), round(float(np.percentile(draws, 97.5)), 4)],
            "p": round(p, 4)}


def predicted(pairs: list[dict], stories: dict[str, str]) -> np.ndarray:
    """Whether each pair's two articles share a story."""
    return np.array([stories[p["a"]] == stories[p["b"]] for p in pairs], dtype=bool)


def fit(data: IndexedArticles, vectors: np.ndarray, words, pairs: list[dict], grid: dict,
        ) -> tuple[StoryParams, float, dict[str, str]]:
    """The grid point with the best F1 on `pairs` (ties: the first in grid order), its F1 and its stories.

    Links are computed once at the loosest threshold and window; `cluster` applies each stricter setting.
    """
    groups = {i: g for i, g in zip(data.ids, data.dup_groups) if g}
    links = candidate_links(data.ids, data.published, vectors, words, max(grid["window_days"]), min(grid["threshold"]))
    best: tuple[float, StoryParams, dict[str, str]] | None = None
    for values in itertools.product(*grid.values()):
        params = StoryParams(**dict(zip(grid, values)))
        stories = cluster(data.ids, data.published, links, params, groups)
        f1 = scores(pairs, predicted(pairs, stories))["f1"]
        if best is None or f1 > best[0]:
            best = (f1, params, stories)
    return best[1], best[0], best[2]


def main() -> None:
    """Fit, check and write the result file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index-dir", type=Path, default=BASE_INDEX)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    machine = machine_facts()
    data = load_indexed(args.index_dir)
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    fit_pairs, check_pairs = halves(pairs)
    words = [keywords(t, b) for t, b in zip(data.titles, data.bodies)]
    no_words = [frozenset()] * len(words)
    copies = {i: g or i for i, g in zip(data.ids, data.dup_groups)}
    report = {"machine": machine, "index": str(args.index_dir), "pairs": len(pairs), "fit_pairs": len(fit_pairs),
              "check_pairs": len(check_pairs), "variants": {}}
    dense_grid = {**GRID, "min_overlap": (0.0,)}
    found: dict[str, dict[str, str]] = {}
    for name, vectors, grid, w in (("mean+keywords", data.vectors, GRID, words),
                                   ("lead+keywords", data.lead_vectors, GRID, words),
                                   ("mean dense only", data.vectors, dense_grid, no_words)):
        t0 = time.perf_counter()
        params, fit_f1, stories = fit(data, vectors, w, fit_pairs, grid)
        found[name] = stories
        report["variants"][name] = {"params": asdict(params), "fit_f1": fit_f1,
                                    "check": scores(check_pairs, predicted(check_pairs, stories), args.resamples),
                                    "stories": len(set(stories.values())), "fit_seconds": round(time.perf_counter() - t0, 1)}
    same = {name: predicted(check_pairs, found[name]) for name in found}
    report["keywords_minus_dense_f1"] = paired_f1(check_pairs, same["mean+keywords"], same["mean dense only"],
                                                  args.resamples)
    report["lead_minus_mean_f1"] = paired_f1(check_pairs, same["lead+keywords"], same["mean+keywords"], args.resamples)
    report["default"] = asdict(StoryParams())
    report["default_check"] = scores(check_pairs, predicted(check_pairs, cluster(
        data.ids, data.published, candidate_links(data.ids, data.published, data.vectors, None, 1.0, 0.8),
        StoryParams(), {i: g for i, g in zip(data.ids, data.dup_groups) if g})), args.resamples)
    report["variants"]["copies only"] = {"check": scores(check_pairs, predicted(check_pairs, copies), args.resamples),
                                         "stories": len(set(copies.values()))}
    out = args.out or result_path("stories-quality", facts=machine)
    write_result(out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
