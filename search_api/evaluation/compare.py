"""Compare two evaluation results (files written by `news-search eval --out`) query by query: per mode and
metric, both means, the mean difference with its paired bootstrap interval, and the randomization p-value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from indexer.errors import ConfigError, SourceError
from search_api.evaluation.reading import read_text
from search_api.evaluation.significance import paired


def load_result(path: Path) -> dict[str, Any]:
    """An eval result file, checked to hold per-query scores."""
    text = read_text(path, "a file written by news-search eval --out")
    try:
        result = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise SourceError(f"{path}: not JSON; give a file written by news-search eval --out") from None
    modes = result.get("modes") if isinstance(result, dict) else None
    if not isinstance(modes, dict) or not all(_scores(m) for m in modes.values()):
        raise SourceError(f"{path}: no per-query scores; give a file written by news-search eval --out")
    return result


def _scores(mode: Any) -> bool:
    """Whether a result's mode holds per-query scores: query id -> metric -> number."""
    per_query = mode.get("per_query") if isinstance(mode, dict) else None
    return isinstance(per_query, dict) and all(
        isinstance(scores, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                         for v in scores.values()) for scores in per_query.values())


def shared_queries(a: dict[str, Any], b: dict[str, Any], mode: str, intersect: bool = False) -> list[str]:
    """The query ids both results scored in `mode`; ConfigError if they differ and `intersect` is off."""
    qa, qb = set(a["modes"][mode]["per_query"]), set(b["modes"][mode]["per_query"])
    if qa != qb and not intersect:
        raise ConfigError(f"the two results scored different queries in {mode} ({len(qa - qb)} only in the first, "
                          f"{len(qb - qa)} only in the second); compare the same queries, or pass --intersect")
    common = sorted(qa & qb)
    if not common:
        raise ConfigError(f"the two results share no query in {mode}")
    return common


def compare(a: dict[str, Any], b: dict[str, Any], intersect: bool = False,
            metrics: list[str] | None = None) -> dict[str, dict[str, dict[str, float | int]]]:
    """Mode -> metric -> the paired comparison of a against b (diff = a - b), over the modes both hold."""
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for mode in [m for m in a["modes"] if m in b["modes"]]:
        qids = shared_queries(a, b, mode, intersect)
        pa, pb = a["modes"][mode]["per_query"], b["modes"][mode]["per_query"]
        names = metrics or list(next(iter(pa.values())))
        held = set.intersection(*(set(pa[q]) & set(pb[q]) for q in qids))  # in every query of both
        if unknown := [name for name in names if name not in held]:
            raise ConfigError(f"no metric {', '.join(unknown)} in every query of both results (both hold "
                              f"{', '.join(sorted(held)) or 'none'}); pick one with --metric")
        out[mode] = {name: paired([pa[q][name] for q in qids], [pb[q][name] for q in qids]).as_dict()
                     for name in names}
    if not out:
        raise ConfigError(f"the two results share no mode (first: {', '.join(a['modes'])}; "
                          f"second: {', '.join(b['modes'])})")
    return out


def comparison_table(found: dict[str, dict[str, dict[str, float | int]]], name_a: str = "A",
                     name_b: str = "B") -> str:
    """A Markdown table, one row per mode and metric."""
    lines = [f"| mode | metric | queries (changed) | {name_a} | {name_b} | {name_a} - {name_b} [95% interval] | p |",
             "|---|---|---:|---:|---:|---|---:|"]
    for mode, by_metric in found.items():
        for metric, c in by_metric.items():
            lines.append(f"| {mode} | {metric} | {c['queries']} ({c['changed']}) | {c['mean_a']:.4f} | {c['mean_b']:.4f} | "
                         f"{c['diff']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}] | {c['p']:.3g} |")
    return "\n".join(lines)
