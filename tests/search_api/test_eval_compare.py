"""Comparing two eval results query by query: the paired figures, and refusals of unlike results."""

from __future__ import annotations

import json

import pytest

from indexer.errors import ConfigError, SourceError
from search_api.evaluation.compare import compare, comparison_table, load_result


def _result(scores: dict[str, float], modes=("hybrid",)):
    per_query = {q: {"ndcg@10": s, "mrr@10": s / 2} for q, s in scores.items()}
    return {"modes": {m: {"means": {}, "per_query": per_query} for m in modes}}


def test_a_shift_on_every_query_is_reported_with_its_interval_and_p():
    b = {f"q{i}": i / 40 for i in range(40)}
    a = {q: s + 0.1 for q, s in b.items()}
    found = compare(_result(a), _result(b))
    c = found["hybrid"]["ndcg@10"]
    assert c["queries"] == 40 and c["diff"] == pytest.approx(0.1) and c["p"] < 0.001
    assert c["low"] == pytest.approx(0.1) and c["high"] == pytest.approx(0.1)
    assert found["hybrid"]["mrr@10"]["diff"] == pytest.approx(0.05)
    table = comparison_table(found)
    assert "| hybrid | ndcg@10 | 40 (40) | 0.5875 | 0.4875 | +0.1000 [+0.1000, +0.1000] | 0.0001 |" in table


def test_queries_are_paired_by_id_not_by_order():
    a = _result({"q1": 1.0, "q2": 0.0})
    b = _result({"q2": 0.0, "q1": 1.0})
    assert compare(a, b)["hybrid"]["ndcg@10"] == {"queries": 2, "changed": 0, "mean_a": 0.5, "mean_b": 0.5, "diff": 0.0,
                                                  "low": 0.0, "high": 0.0, "p": 1.0}


def test_different_query_sets_are_refused_unless_intersected():
    a, b = _result({"q1": 1.0, "q2": 0.5}), _result({"q2": 0.0, "q3": 1.0})
    with pytest.raises(ConfigError, match="different queries .*1 only in the first, 1 only in the second.*--intersect"):
        compare(a, b)
    assert compare(a, b, intersect=True)["hybrid"]["ndcg@10"]["queries"] == 1
    with pytest.raises(ConfigError, match="share no query"):
        compare(_result({"q1": 1.0}), _result({"q2": 1.0}), intersect=True)


def test_only_shared_modes_and_known_metrics_are_compared():
    a = _result({"q1": 1.0}, modes=("dense", "hybrid"))
    b = _result({"q1": 0.5}, modes=("hybrid", "keyword"))
    assert list(compare(a, b)) == ["hybrid"]
    with pytest.raises(ConfigError, match="share no mode"):
        compare(_result({"q1": 1.0}, ("dense",)), _result({"q1": 1.0}, ("keyword",)))
    with pytest.raises(ConfigError, match="no metric map"):
        compare(a, b, metrics=["map"])


def test_files_without_per_query_scores_are_refused(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"modes": {"hybrid": {"means": {"ndcg@10": 0.5}}}}))
    with pytest.raises(SourceError, match="no per-query scores"):
        load_result(path)
    path.write_text("not json")
    with pytest.raises(SourceError, match="not JSON"):
        load_result(path)
    with pytest.raises(SourceError, match="no such file"):
        load_result(tmp_path / "missing.json")
