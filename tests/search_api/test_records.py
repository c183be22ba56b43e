"""Each record has one definition the others are checked against: a field added to the in-process record and not to
its HTTP form (or the reverse) fails here, naming both. The client's types are checked against the HTTP forms in
test_client_types.py, so the chain is in-process record -> HTTP schema -> client type."""

from __future__ import annotations

from dataclasses import fields
from datetime import date

from indexer.records import Article
from search_api.searcher import Hit, SearchRequest, SearchResponse
from search_api.server import schemas
from search_api.server.app import RENAMED, _request

# The HTTP forms add what only a response carries; the in-process records keep what only in-process callers set.
ARTICLE_OUT_ONLY = {"duplicates", "passages", "index_version"}
IN_PROCESS_ONLY = {"rerank"}  # a Reranker is passed to Searcher in Python; HTTP has none to ask for


def names(record: type) -> list[str]:
    """The fields of a dataclass or a pydantic model, in their order."""
    if hasattr(record, "model_fields"):
        return list(record.model_fields)
    return [f.name for f in fields(record)]


def test_the_hit_is_defined_once():
    assert names(schemas.HitOut) == names(Hit), "search_api/searcher.py Hit and server/schemas.py HitOut differ"


def test_the_search_response_is_defined_once():
    assert set(names(schemas.SearchOut)) == set(names(SearchResponse)), \
        "search_api/searcher.py SearchResponse and server/schemas.py SearchOut differ"


def test_the_article_is_defined_once():
    out = names(schemas.ArticleOut)
    assert [n for n in out if n not in ARTICLE_OUT_ONLY] == names(Article), \
        "indexer/records.py Article and server/schemas.py ArticleOut differ"


def test_the_search_request_is_defined_once():
    body = {RENAMED.get(n, n) for n in names(schemas.SearchBody)}
    assert body == set(names(SearchRequest)) - IN_PROCESS_ONLY, \
        "search_api/searcher.py SearchRequest and server/schemas.py SearchBody differ"
    assert names(schemas.SearchQuery) == names(schemas.SearchBody)


def test_a_body_becomes_the_request_field_by_field():
    body = schemas.SearchBody(q="gas leak", k=5, offset=10, group="story", mode="keyword", since=date(2020, 1, 1),
                              until=date(2020, 2, 1), source=["Wikinews", "Reuters"], collapse=False,
                              recency_half_life_days=30.0, min_relevance=0.2)
    assert _request(body) == SearchRequest(q="gas leak", k=5, offset=10, group="story", mode="keyword",
                                           since=date(2020, 1, 1), until=date(2020, 2, 1),
                                           sources=("Wikinews", "Reuters"), collapse=False,
                                           recency_half_life_days=30.0, min_relevance=0.2)
