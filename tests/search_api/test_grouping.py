"""Grouping and highlighting through the real Searcher over corpus/, with the fake embedder of conftest (no model):
what must hold of any ranking, whatever the vectors."""

from __future__ import annotations

from search_api.ranking.highlight import query_terms
from search_api.searcher import SearchRequest

QUERY = "Syrian army retakes Palmyra"


def test_article_grouping_lists_each_article_once_with_one_of_its_passages(fake_searcher):
    passages = fake_searcher.search(SearchRequest(q=QUERY, k=100, group="none", mode="hybrid")).hits
    articles = fake_searcher.search(SearchRequest(q=QUERY, k=100, group="article", mode="hybrid")).hits
    ids = [h.article_id for h in articles]
    assert ids and len(ids) == len(set(ids))
    assert [h.rank for h in articles] == list(range(1, len(articles) + 1))
    assert all(a.score >= b.score for a, b in zip(articles, articles[1:]))
    assert all(h.matched_passages == 0 for h in passages)
    bodies = {a.id: a.body for a in fake_searcher.version.text.articles(ids)}
    for hit in articles:  # the passage shown for an article is its own: its text at its offsets in that body
        assert hit.text == bodies[hit.article_id][hit.start : hit.end]


def test_highlights_are_spans_of_the_passage_holding_query_words(fake_searcher):
    hits = fake_searcher.search(SearchRequest(q=QUERY, k=10, mode="keyword")).hits
    assert hits and any(h.highlights for h in hits)
    terms = set(query_terms(QUERY))
    for hit in hits:
        assert all(0 <= start < end <= len(hit.text) for start, end in hit.highlights)
        assert set(hit.matched_terms) <= terms
