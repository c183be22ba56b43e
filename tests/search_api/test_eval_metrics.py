"""Retrieval metrics on hand-made rankings, checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from search_api.evaluation.metrics import dedupe, mean_scores, mrr_at, ndcg_at, per_query, precision_at, recall_at


def test_ndcg_of_a_perfect_ranking_is_one_and_order_matters():
    rel = {"a": 1, "b": 1}
    assert ndcg_at(["a", "b", "x"], rel) == pytest.approx(1.0)
    # relevant docs at ranks 2 and 3: (1/log2(3) + 1/log2(4)) / (1 + 1/log2(3))
    expected = (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3))
    assert ndcg_at(["x", "a", "b"], rel) == pytest.approx(expected)


def test_ndcg_uses_grades_and_cuts_at_k():
    rel = {"a": 2, "b": 1}
    assert ndcg_at(["b", "a"], rel) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert ndcg_at(["x"] * 10 + ["a"], rel, k=10) == 0.0
    assert ndcg_at(["a"], {}) == 0.0


def test_mrr_is_the_reciprocal_of_the_first_relevant_rank_within_k():
    assert mrr_at(["x", "y", "a", "b"], {"a": 1, "b": 1}) == pytest.approx(1 / 3)
    assert mrr_at([f"x{i}" for i in range(10)] + ["a"], {"a": 1}, k=10) == 0.0
    assert mrr_at(["a"], {"a": 0}) == 0.0  # grade 0 is judged not relevant


def test_precision_divides_by_k_even_for_short_rankings():
    assert precision_at(["a", "x", "b"], {"a": 1, "b": 1, "c": 1}, k=10) == pytest.approx(0.2)


def test_recall_counts_relevant_docs_found_in_the_top_k():
    rel = {"a": 1, "b": 1, "c": 1, "d": 0}
    assert recall_at(["a", "d", "c"], rel, k=100) == pytest.approx(2 / 3)
    assert recall_at(["x", "a"], rel, k=1) == 0.0


def test_per_query_skips_unjudgeable_queries_and_scores_missing_runs_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    scores = per_query({"q1": ["a"], "q9": ["b"]}, qrels)
    assert set(scores) == {"q1", "q2"}
    assert scores["q1"]["mrr@10"] == 1.0 and scores["q2"]["mrr@10"] == 0.0
    means = mean_scores(scores)
    assert means["mrr@10"] == pytest.approx(0.5) and means["p@10"] == pytest.approx(0.05)
    assert mean_scores({})["ndcg@10"] == 0.0


def test_dedupe_keeps_first_places():
    assert dedupe(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]
