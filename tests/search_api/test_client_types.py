"""The client's types cannot drift from the server's OpenAPI schema; DataFrame and Jupyter HTML rendering."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from search_api.client import SEARCH_OPTIONS
from search_api.client.types import (
    NO_CLOSE_MATCH,
    Article,
    Health,
    PassageRef,
    SearchHit,
    SearchResults,
    Similar,
    SimilarHit,
    Stats,
    Story,
    StorySummary,
    TimelineEntry,
    marked_html,
)
from search_api.server import schemas
from search_api.server.app import create_app
from search_api.settings import ServerSettings

CLIENT_TYPES = {"HitOut": SearchHit, "SearchOut": SearchResults, "ArticleOut": Article, "PassageRef": PassageRef,
                "StatsOut": Stats, "HealthOut": Health, "StorySummaryOut": StorySummary, "StoryOut": Story,
                "TimelineEntryOut": TimelineEntry, "SimilarOut": Similar, "SimilarHitOut": SimilarHit}
CLIENT_ONLY = {"extra", "request"}


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    """The server's OpenAPI component schemas (building the schema loads no model and no index)."""
    return create_app(ServerSettings()).openapi()["components"]["schemas"]


def example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A non-null value that satisfies a JSON schema of the server (enough of JSON Schema for our models)."""
    if schema is True or schema == {}:  # any value
        return "anything"
    if "example" in schema:  # e.g. the naive UTC date-times, which no JSON Schema format describes
        return schema["example"]
    if "$ref" in schema:
        return example(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    if "anyOf" in schema:
        return example(next(s for s in schema["anyOf"] if s.get("type") != "null"), components)
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        return {name: example(prop, components) for name, prop in schema["properties"].items()}
    if kind == "object":
        return {"key": example(schema.get("additionalProperties", True), components)}
    if kind == "array" and "prefixItems" in schema:
        return [example(item, components) for item in schema["prefixItems"]]
    if kind == "array":
        return [example(schema.get("items", {"type": "string"}), components)] * 2
    formats = {"date-time": "2020-01-02T03:04:05Z", "date": "2020-01-02"}
    return {"integer": 7, "number": 1.5, "boolean": True}.get(kind) or formats.get(schema.get("format"), "text")


@pytest.mark.parametrize("name", sorted(CLIENT_TYPES))
def test_client_types_declare_every_server_field(components, name):
    server = set(components[name]["properties"])
    client = {f.name for f in fields(CLIENT_TYPES[name])} - CLIENT_ONLY
    assert server - client == set(), f"{CLIENT_TYPES[name].__name__} lacks the server's fields {server - client}"
    assert client - server == set(), f"{CLIENT_TYPES[name].__name__} has fields the server dropped {client - server}"


@pytest.mark.parametrize("name, decode", [
    ("SearchOut", SearchResults.from_json), ("ArticleOut", Article.from_json), ("StatsOut", Stats.from_json),
    ("HealthOut", Health.from_json), ("StoryOut", Story.from_json), ("SimilarOut", Similar.from_json),
])
def test_every_field_round_trips_through_the_client(components, name, decode):
    sent = example(components[name], components)
    decoded = decode(sent)
    assert decoded.extra == {}
    model = getattr(schemas, name)
    assert model.model_validate(decoded.to_json()) == model.model_validate(sent)
    if name == "SearchOut":
        hit = decoded.hits[0]
        assert hit.extra == {} and hit.highlights == [(7, 7), (7, 7)] and hit.published.year == 2020


def test_search_options_match_the_servers_request_fields(components):
    assert SEARCH_OPTIONS == set(components["SearchBody"]["properties"]) - {"q", "k", "offset"}


def test_unknown_server_fields_are_kept_not_lost(components):
    sent = example(components["HitOut"], components) | {"new_field": [1, 2]}
    hit = SearchHit.from_json(sent)
    assert hit.extra == {"new_field": [1, 2]} and hit.to_json()["new_field"] == [1, 2]


def page_with(title: str, text: str, spans: list[list[int]]) -> SearchResults:
    hit = {"rank": 1, "score": 0.5, "passage_id": 3, "text": text, "start": 0, "end": len(text), "article_id": "a1",
           "title": title, "published": "2019-01-04T00:00:00", "source": "Src & Co", "url": "javascript:alert(1)",
           "matched_passages": 0, "duplicates": [], "highlights": spans, "matched_terms": ["gas"],
           "relevance": 0.8}
    return SearchResults.from_json({"query": "gas <b>", "index_version": "v1", "took_ms": 3.0, "mode": "hybrid",
                                    "total": 1, "ranked": 1, "no_close_match": False, "min_relevance": 0.1,
                                    "hits": [hit]}, {"q": "gas <b>", "k": 10, "offset": 0})


def test_html_table_marks_the_sentence_and_escapes_everything():
    page = page_with("<script>alert(1)</script>", "Before. A gas <leak> here. After.", [[8, 26]])
    table = page._repr_html_()
    assert "<mark>A gas &lt;leak&gt; here.</mark>" in table
    assert "<script>" not in table and "&lt;script&gt;alert(1)&lt;/script&gt;" in table
    assert "javascript:" not in table  # only http(s) urls become links
    assert "gas &lt;b&gt;" in table and "Src &amp; Co" in table and "<td>2019-01-04</td>" in table
    assert not page.has_next


def test_marked_html_clamps_overlapping_and_out_of_range_spans():
    assert marked_html("abcdef", [(4, 10), (0, 2), (1, 3)]) == "<mark>ab</mark><mark>c</mark>d<mark>ef</mark>"
    assert marked_html("<>", []) == "&lt;&gt;"


def test_to_pandas_has_one_row_per_hit():
    frame = page_with("Gas blast", "Before. A gas leak here. After.", [[8, 24]]).to_pandas()
    assert list(frame.index) == [1] and frame.loc[1, "sentence"] == "A gas leak here."
    assert frame.loc[1, "published"].year == 2019 and frame.loc[1, "source"] == "Src & Co"


def test_repr_is_one_line():
    assert repr(page_with("t", "x", [])) == \
        "<SearchResults 'gas <b>': ranks 1-1 of 1, 1 close match (hybrid, index v1, 3 ms)>"


def test_no_close_match_is_said_in_the_html_and_the_repr():
    page = page_with("Coral reefs", "Fish defend reefs. Warming hurts.", [])
    page.no_close_match, page.total, page.hits[0].relevance = True, 0, 0.01
    assert f"{NO_CLOSE_MATCH} (hybrid" in page._repr_html_() and "<td>0.01</td>" in page._repr_html_()
    assert NO_CLOSE_MATCH in repr(page) and page.to_pandas().loc[1, "relevance"] == 0.01
