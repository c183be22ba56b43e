"""Benchmark: every tuned ranking constant re-checked under the keep rule (docs/evaluation.md). Each candidate
value is scored on the tune half of both dev sets (bench/dev_split.json); the best is compared with the current
default on the check half (paired bootstrap 95% interval, sign-flip randomization p), and so is the simpler value.

Scores the ranking as `news-search serve` returns it (collapse on, hybrid). Reads the full-Reuters indexes of
bench/eval_reuters (var/bench/eval-reuters-*, never rebuilt here); the body-only index without a lead passage is
built into --lead-free-dir. Writes bench/results/significance-<cpu kind>.json and each check-half run as
bench/results/eval-<set>-check-<cpu kind>-sweep-<constant>-<value>.json (the defaults: `...-sweep-defaults.json`).
Run: `.venv/bin/python -m bench.recheck` (NEWSEARCH_CACHE_DIR shares the embedding cache).
"""

from __future__ import annotations

import argparse
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.common import REUTERS, ROOT, SETS, commit, dev_set, index_dir, machine_facts, result_path, write_result
from indexer.embed import Embedder
from indexer.errors import ConfigError
from indexer.settings import Settings
from indexer.storage import open_store
from indexer.storage.base import Version
from search_api.evaluation.harness import ensure_index, evaluate
from search_api.evaluation.significance import paired
from search_api.searcher import Searcher

PRIMARY = {"headlines": "mrr@10", "topics": "ndcg@10"}  # the target metric of each set
# Constant -> (values tried on the tune halves, the simplest value or None). Only the ratio of the two RRF
# weights matters, so the dense weight stays 1. "collapse" is the request option, "lead_sentences" an index
# setting of body-only indexes (headlines only: title + body indexes have no lead passage).
GRID: dict[str, tuple[list[Any], Any]] = {
    "pool_temperature": ([0.0, 0.02, 0.03, 0.05], 0.0),
    "lead_weight": ([0.0, 1.0, 2.0], 0.0),
    "rrf_k": ([30, 60, 100], None),
    "candidates": ([100, 200], None),
    "keyword_weight": ([0.5, 1.0, 2.0], None),
    "keyword_stop_words": ([True, False], False),
    # Collapse shows wire copies of a story as one hit: a presentation choice, so "off" is not counted simpler.
    "collapse": (["on", "off"], None),
    "lead_sentences": ([2, 0], 0),
}
DEFAULTS = {"collapse": "on"}
LOADED = ("index_dir", "title_weight", "lead_weight")  # read when a Searcher opens


class QueryMemo:
    """The embedder, with each query's vector kept: every configuration asks for the same queries."""

    def __init__(self, inner: Embedder):
        self._inner, self._memo = inner, {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def encode_query(self, text: str) -> np.ndarray:
        """The inner embedder's vector, computed once per text."""
        if text not in self._memo:
            self._memo[text] = self._inner.encode_query(text)
        return self._memo[text]


def default_of(name: str) -> Any:
    """The current default of a constant."""
    return DEFAULTS[name] if name in DEFAULTS else getattr(Settings(), name)


class Runner:
    """Scores configurations of one dev set on one half, reusing the opened index and model."""

    def __init__(self, name: str, embedder: Embedder, lead_free_dir: Path):
        self.name, self.embedder, self.lead_free_dir = name, embedder, lead_free_dir
        self.base = Settings.from_env(index_dir=index_dir(SETS[name]), fields=SETS[name])
        self.versions: dict[Path, Version] = {}
        self.searchers: dict[tuple, Searcher] = {}
        self.done: dict[tuple, dict[str, Any]] = {}  # the default configuration is scored once per half

    def version(self, settings: Settings) -> Version:
        path = settings.index_dir
        if path not in self.versions:
            self.versions[path] = open_store(settings).open()
        return self.versions[path]

    def searcher(self, settings: Settings) -> Searcher:
        """A Searcher with these settings; one opened per index and keyword weights, copied for the rest (the
        other settings are read at search time)."""
        key = tuple(getattr(settings, name) for name in LOADED)
        if key not in self.searchers:
            self.searchers[key] = Searcher(self.version(settings), self.embedder, settings)
        searcher = copy.copy(self.searchers[key])
        searcher.settings = settings
        return searcher

    def settings_for(self, name: str, value: Any) -> Settings:
        if name == "collapse":
            return self.base
        if name == "lead_sentences" and value != self.base.lead_sentences:
            lead_free = self.base.replace(index_dir=self.lead_free_dir, lead_sentences=value)
            ensure_index(sorted(REUTERS.glob("corpus-*.jsonl.gz")), lead_free, self.embedder, progress=True)
            return lead_free
        return self.base.replace(**{name: value})

    def score(self, half: str, name: str, value: Any, modes: list[str]) -> dict[str, Any]:
        """evaluate() of one half with one constant changed (the default: every mode, once)."""
        key = (half, None, None) if value == default_of(name) else (half, name, value)
        if key[1] is None:
            modes = ["dense", "keyword", "hybrid"]
        if key in self.done:
            return self.done[key]
        settings = self.settings_for(name, value)
        queries, qrels = dev_set(self.name, half)
        searcher = self.searcher(settings)
        collapse = value if name == "collapse" else "on"
        result = evaluate(searcher, queries, qrels, modes, collapse)
        self.done[key] = {"benchmark": "recheck", "dev_set": self.name, "split": {"file": "bench/dev_split.json",
                          "set": self.name, "half": half}, "override": {key[1]: key[2]} if key[1] else {}, **result}
        return self.done[key]

    def close(self) -> None:
        for v in self.versions.values():
            v.close()


def per_query(result: dict[str, Any], metric: str, mode: str = "hybrid") -> dict[str, float]:
    """query id -> score of one metric."""
    return {q: s[metric] for q, s in result["modes"][mode]["per_query"].items()}


def compared(a: dict[str, Any], b: dict[str, Any], metric: str, mode: str = "hybrid") -> dict[str, Any]:
    """Paired comparison of a against b on their common queries."""
    pa, pb = per_query(a, metric, mode), per_query(b, metric, mode)
    if set(pa) != set(pb):
        raise ConfigError("the two runs scored different queries")
    qids = sorted(pa)
    return paired([pa[q] for q in qids], [pb[q] for q in qids]).as_dict()


def tune(runners: dict[str, Runner], name: str, values: list[Any]) -> tuple[list[Any], dict[str, dict[str, float]]]:
    """Each value's primary metric on each tune half, and the values by their average over the sets, best
    first (ties: the current default, then the earlier value)."""
    means: dict[str, dict[str, float]] = {}
    for value in values:
        means[str(value)] = {s: r.score("tune", name, value, ["hybrid"])["modes"]["hybrid"]["means"][PRIMARY[s]]
                             for s, r in runners.items()}
    default = default_of(name)
    order = sorted(values, key=lambda v: (-round(sum(means[str(v)].values()) / len(runners), 4), v != default))
    return order, means


def decide(default: Any, chosen: Any, simpler: Any, vs_chosen: dict | None, vs_simpler: dict | None) -> str:
    """The keep rule: a value other than the default needs a win on the check half of every set with p < 0.05;
    the default must itself win so against the simpler value, or the simpler one replaces it where neutral."""
    def better(comparisons: dict | None) -> list[str]:
        return [s for s, c in (comparisons or {}).items() if c["diff"] > 0 and c["p"] < 0.05]

    if chosen != default and vs_chosen and len(better(vs_chosen)) == len(vs_chosen):
        return f"change to {chosen} (wins on every check half)"
    if simpler is None or simpler == default or not vs_simpler:
        return f"keep {default} (no value wins on every check half)"
    if len(better(vs_simpler)) == len(vs_simpler):
        return f"keep {default} (wins over the simpler {simpler} on every check half)"
    worse = [s for s, c in vs_simpler.items() if c["diff"] < 0 and c["p"] < 0.05]
    if not better(vs_simpler) and not worse:
        return f"neutral: the simpler {simpler} may replace {default} (no significant difference on any check half)"
    if worse and not better(vs_simpler):
        return f"change to the simpler {simpler} (better on {', '.join(worse)})"
    # The simpler value loses significantly on a set: it is not neutral, so it cannot replace the default.
    return f"keep {default} (the simpler {simpler} is worse on {', '.join(better(vs_simpler))}: not neutral)"


def recheck(runners: dict[str, Runner], name: str) -> dict[str, Any]:
    """One constant: tune-half choice, check-half comparisons, decision; writes the check-half result files."""
    values, simpler = GRID[name]
    default = default_of(name)
    order, tune_means = tune(runners, name, values)
    chosen = order[0]
    # When the tune halves keep the default, the best other value is still shown on the check halves (not chosen).
    runner_up = next(v for v in order if v != default) if chosen == default else None
    check: dict[str, dict[str, dict]] = {"chosen_vs_default": {}, "default_vs_simpler": {}, "runner_up_vs_default": {}}
    means: dict[str, dict[str, dict[str, list]]] = {}  # set -> value -> mode -> [mean, low, high] on the check half
    for s, r in runners.items():
        runs = {}
        for value in dict.fromkeys([default, chosen, simpler, runner_up]):
            if value is None:
                continue
            runs[value] = r.score("check", name, value, ["dense", "keyword", "hybrid"])
            means.setdefault(s, {})[str(value)] = {
                mode: [m["means"][PRIMARY[s]], *m["intervals"][PRIMARY[s]]] for mode, m in runs[value]["modes"].items()}
            variant = "sweep-defaults" if value == default else f"sweep-{name}-{value}"
            write_result(result_path(f"eval-{s}-check", variant), {
                "date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit(), **runs[value]})
        if chosen != default:
            check["chosen_vs_default"][s] = compared(runs[chosen], runs[default], PRIMARY[s])
        if simpler is not None and simpler != default:
            check["default_vs_simpler"][s] = compared(runs[default], runs[simpler], PRIMARY[s])
        if runner_up is not None and runner_up != simpler:
            check["runner_up_vs_default"][s] = compared(runs[runner_up], runs[default], PRIMARY[s])
    return {"default": default, "simpler": simpler, "tune": tune_means, "chosen": chosen, "runner_up": runner_up,
            "check": {k: v for k, v in check.items() if v}, "check_means": means,
            "decision": decide(default, chosen, simpler, check["chosen_vs_default"] or None,
                               check["default_vs_simpler"] or None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--constants", nargs="+", choices=list(GRID), default=list(GRID))
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS),
                        help="dev sets (default both; one set alone gives that set's half of the table)")
    parser.add_argument("--lead-free-dir", type=Path, default=ROOT / "var" / "bench" / "eval-reuters-body-nolead",
                        help="where the body-only index without a lead passage is built (or reused)")
    parser.add_argument("--out", type=Path, help="default bench/results/significance-<cpu kind>.json")
    args = parser.parse_args()
    # One FAISS thread: on 2 shared cores its OpenMP threads spin against the other jobs (41 against 208 ms
    # a flat search here); queries run one after the other anyway.
    faiss.omp_set_num_threads(1)
    embedder = QueryMemo(Embedder.from_settings(Settings.from_env()))
    args.out = args.out or result_path("significance")
    found = json.loads(args.out.read_text()) if args.out.exists() else {}
    found.update({"benchmark": "recheck", "commit": commit(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
                  "machine": machine_facts(), "primary": PRIMARY})
    found.setdefault("constants", {})
    all_runners = {s: Runner(s, embedder, args.lead_free_dir) for s in args.sets}
    try:
        for name in args.constants:
            runners = {s: r for s, r in all_runners.items() if name != "lead_sentences" or s == "headlines"}
            found["constants"][name] = {"sets": list(runners), **recheck(runners, name)}
            args.out.write_text(json.dumps(found, indent=2, default=str) + "\n")
            print(name, json.dumps(found["constants"][name], default=str), flush=True)
    finally:
        for r in all_runners.values():
            r.close()


if __name__ == "__main__":
    main()
