"""The re-ranking extension point, on hand-made inputs."""

from __future__ import annotations

import pytest

from indexer.errors import BadQuery
from search_api.ranking.rerank import rerank
from search_api.searcher import SearchRequest
from tests.helpers import WordOverlap


def test_rerank_reorders_only_the_top_and_keeps_the_rest():
    order = ["a", "b", "c", "d"]
    texts = {"a": "nothing here", "b": "cocoa prices", "c": "cocoa prices rose", "d": "cocoa prices rose again"}
    new_order, scores = rerank(order, texts, "cocoa prices rose", WordOverlap(), top=3)
    assert new_order == ["c", "b", "a", "d"]  # d was below the cut and stays last
    assert scores == {"a": 0.0, "b": 2.0, "c": 3.0}


def test_rerank_breaks_ties_by_key_and_checks_the_reranker():
    new_order, _ = rerank(["z", "y"], {"z": "x", "y": "x"}, "q", WordOverlap(), top=2)
    assert new_order == ["y", "z"]

    class Broken(WordOverlap):
        def score(self, query, texts):
            return [1.0]

    with pytest.raises(ValueError, match="returned 1 scores for 2 texts"):
        rerank(["a", "b"], {"a": "x", "b": "y"}, "q", Broken(), top=2)


def test_asking_for_rerank_without_a_reranker_names_the_field(fake_searcher):
    with pytest.raises(BadQuery) as exc:
        fake_searcher.search(SearchRequest(q="Palmyra", rerank=True))
    assert exc.value.field == "rerank" and "docs/ranking.md" in str(exc.value)
