"""Steps of Searcher.search over corpus/ (real model and index) that the speed work reshaped: the relevance a hit
shows is the public `signals` of the ranking, computed while the page is read; an article's passages are found
all at once."""

from __future__ import annotations

import numpy as np
import pytest

from search_api.ranking.relevance import relevance
from search_api.searcher import SearchRequest

QUERY = "Syrian army retakes Palmyra with Russian air support"


@pytest.mark.parametrize(("group", "mode"), [("article", "hybrid"), ("article", "keyword"), ("none", "hybrid"),
                                             ("story", "dense")])
def test_hits_show_the_relevance_of_the_rankings_signals(searcher, group, mode):
    req = SearchRequest(q=QUERY, k=15, group=group, mode=mode)
    keys = [key for key, _ in searcher.ranking(req)]
    expected = np.round(relevance(searcher.signals(req, keys, searcher.embedder.encode_query(QUERY))), 4)
    result = searcher.search(req)
    shown = [h.passage_id if group == "none" else h.article_id for h in result.hits]
    assert shown == keys[:15]
    assert [h.relevance for h in result.hits] == expected[:15].tolist()
    assert result.total == int((expected >= result.min_relevance).sum())
    # Spans only on hits that clear the floor: read before the relevance was known, dropped after.
    assert all(bool(h.highlights) or h.relevance < result.min_relevance for h in result.hits)
    assert not any(h.highlights for h in result.hits if h.relevance < result.min_relevance)


def test_passages_of_lists_the_passages_article_by_article(searcher):
    catalog = searcher.version.text.catalog()
    nums = np.array([3, 1, 3, len(catalog.article_ids) - 1, 2], dtype=np.int64)
    pids, owner = searcher.passages_of(nums)
    expected = [pid for num in nums.tolist() for pid in sorted(catalog.passage_ids[catalog.owners == num].tolist())]
    assert sorted(pids.tolist()) == sorted(expected) and len(pids) == len(expected)
    for place, num in enumerate(nums.tolist()):
        assert set(pids[owner == place].tolist()) == set(catalog.passage_ids[catalog.owners == num].tolist())
    assert [len(a) for a in searcher.passages_of(np.zeros(0, dtype=np.int64))] == [0, 0]


def test_passage_hits_decay_by_their_articles_dates(searcher):
    plain = searcher.search(SearchRequest(q=QUERY, group="none", k=20))
    recent = searcher.search(SearchRequest(q=QUERY, group="none", k=20, recency_half_life_days=1.0))
    assert {h.passage_id for h in recent.hits} and all(
        r.score <= p.score for p in plain.hits for r in recent.hits if r.passage_id == p.passage_id)
