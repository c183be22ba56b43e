"""The calibrated relevance: the pure function, then what the Searcher does with it over corpus/ (real model)."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.errors import BadQuery
from search_api.ranking.query_words import idf
from search_api.ranking.relevance import FEATURES, Signals, background, columns, coverage, features, logistic, relevance
from search_api.searcher import SearchRequest

SEED_QUERY = "Syrian army retakes Palmyra with Russian air support"
NONSENSE = "xqzv plorb frumious snorkeldink"


def signals(cosine, cover, mean=0.05, sd=0.05) -> Signals:
    return Signals(np.array(cosine, dtype=float), np.array(cover, dtype=float), mean, sd)


def test_relevance_is_a_probability_rising_with_cosine_and_words_found():
    cosines = np.linspace(-0.2, 0.9, 12)
    for cover in (0.0, 0.5, 1.0):
        rel = relevance(signals(cosines, [cover] * 12))
        assert ((rel >= 0) & (rel <= 1)).all() and (np.diff(rel) > 0).all()
    by_cover = relevance(signals([0.5] * 3, [0.0, 0.5, 1.0]))
    assert (np.diff(by_cover) > 0).all()
    assert relevance(signals([], [])).shape == (0,)


def test_relevance_reads_cosines_relative_to_the_querys_background():
    # Another model's cosines, shifted and stretched with its background, rate the same hits alike.
    base = signals([0.2, 0.45, 0.7], [0.0, 0.5, 1.0], mean=0.05, sd=0.06)
    other = signals(0.3 + 1.5 * base.cosine, base.coverage, mean=0.3 + 1.5 * 0.05, sd=1.5 * 0.06)
    assert np.allclose(relevance(base), relevance(other))
    one = signals([0.4], [0.0], mean=0.4, sd=0.0)  # a one-passage sample: no division by zero
    assert np.isfinite(relevance(one)).all()


def test_coverage_weighs_rare_words_more():
    present = np.array([[True, False, True], [False, True, True]])  # words x hits
    assert coverage([1.0, 3.0], present).tolist() == [0.25, 0.75, 1.0]
    assert coverage([], np.zeros((0, 2))).tolist() == [0.0, 0.0]


def test_idf_is_positive_and_defined_when_counts_include_replaced_articles():
    assert idf(100, 1) > idf(100, 10) > idf(100, 60) == 1e-6
    # After an update the keyword index's document frequencies still count replaced copies (hits > rows).
    assert idf(52, 53) == idf(52, 52) == 1e-6


def test_background_is_the_mean_and_spread_of_the_query_cosines():
    sample = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert background(np.array([1.0, 0.0]), sample) == (0.5, 0.5)
    assert background(np.array([1.0, 0.0]), np.zeros((0, 2))) == (0.0, 1.0)


def test_features_are_named_columns_and_logistic_is_stable():
    s = signals([0.3, 0.6], [1.0, 0.0])
    assert features(s).shape == (2, len(FEATURES)) and set(FEATURES) <= set(columns(s))
    assert logistic(np.array([[1e6], [-1e6]]), [1.0], 0.0).tolist() == [1.0, 0.0]


# -- through the Searcher, over corpus/ ----------------------------------------------------------------


def test_nonsense_query_is_no_close_match_with_the_nearest_hits_unmarked(searcher):
    result = searcher.search(SearchRequest(q=NONSENSE))
    assert result.no_close_match and result.total == 0 and result.ranked > 10
    assert len(result.hits) == 10 and all(h.highlights == [] for h in result.hits)
    assert all(h.relevance < result.min_relevance == searcher.settings.min_relevance for h in result.hits)


def test_seed_query_clears_the_floor_and_keeps_its_highlight(searcher):
    result = searcher.search(SearchRequest(q=SEED_QUERY))
    top = result.hits[0]
    assert not result.no_close_match and 1 <= result.total <= result.ranked
    assert top.relevance >= result.min_relevance and "Palmyra" in top.text[slice(*top.highlights[0])]
    assert result.total == sum(h.relevance >= result.min_relevance for h in
                               searcher.search(SearchRequest(q=SEED_QUERY, k=100)).hits)


def test_the_floor_changes_counts_and_highlights_never_the_ranking(searcher):
    runs = {floor: searcher.search(SearchRequest(q="Palmyra", k=20, min_relevance=floor)) for floor in (0.0, 1.0)}
    assert [h.article_id for h in runs[0.0].hits] == [h.article_id for h in runs[1.0].hits]
    assert [h.relevance for h in runs[0.0].hits] == [h.relevance for h in runs[1.0].hits]
    assert runs[0.0].total == runs[0.0].ranked and runs[1.0].total == 0 and runs[1.0].no_close_match
    assert all(h.highlights for h in runs[0.0].hits) and not any(h.highlights for h in runs[1.0].hits)


def test_an_articles_relevance_is_the_same_in_every_mode(searcher):
    rated = [{h.article_id: h.relevance for h in searcher.search(SearchRequest(q=SEED_QUERY, mode=mode, k=50)).hits}
             for mode in ("hybrid", "dense", "keyword")]
    for other in rated[1:]:
        shared = set(rated[0]) & set(other)
        assert shared and all(rated[0][a] == other[a] for a in shared)


def test_passage_hits_are_rated_too(searcher):
    result = searcher.search(SearchRequest(q=SEED_QUERY, group="none", k=5))
    assert result.hits[0].relevance >= result.min_relevance
    assert all(0 <= h.relevance <= 1 for h in result.hits)


@pytest.mark.parametrize("floor", [-0.01, 1.01, float("nan")])
def test_a_floor_outside_0_1_is_refused_naming_the_field(searcher, floor):
    with pytest.raises(BadQuery) as exc:
        searcher.search(SearchRequest(q=SEED_QUERY, min_relevance=floor))
    assert exc.value.field == "min_relevance"
