"""Each record is defined once (search_api/records.py); its HTTP schema and client type are derived from it. These
tests check that the derived forms carry every field of the definition, and that a field added to a definition (one
edit) reaches the HTTP schema, its validation, the in-process request and the client. The client's types are checked
against the served OpenAPI schema in test_client_types.py."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field, fields, make_dataclass
from datetime import date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from indexer.errors import BadQuery
from search_api import records
from search_api.client import SEARCH_OPTIONS, types
from search_api.records import Hit, SearchRequest, described, http_options
from search_api.server import schemas

# (definition, its HTTP model, its client type)
DERIVED = [(records.Hit, schemas.HitOut, types.SearchHit),
           (records.SearchResponse, schemas.SearchOut, types.SearchResults),
           (records.ServedArticle, schemas.ArticleOut, types.Article),
           (records.PassageRef, schemas.PassageRef, types.PassageRef)]
CLIENT_ONLY = ["request", "extra"]


def names(record: type) -> list[str]:
    """The fields of a dataclass or a pydantic model, in their order."""
    if hasattr(record, "model_fields"):
        return list(record.model_fields)
    return [f.name for f in fields(record)]


@pytest.mark.parametrize("record, model, client", DERIVED, ids=lambda r: r.__name__)
def test_derived_forms_carry_every_field_of_the_definition(record, model, client):
    assert names(model) == names(record)
    assert [n for n in names(client) if n not in CLIENT_ONLY] == names(record)
    described_ = {f.name: f.metadata["description"] for f in fields(record) if f.metadata.get("description")}
    assert {n: model.model_fields[n].description for n in described_} == described_


def test_the_served_article_is_the_stored_one_and_what_serving_adds():
    from indexer.records import Article

    assert names(records.ServedArticle)[: len(names(Article))] == names(Article)


def test_the_request_forms_are_the_requests_http_fields():
    assert names(schemas.SearchBody) == names(schemas.SearchQuery) == list(http_options())
    assert "source" in http_options() and "rerank" not in http_options()  # renamed, and in-process only
    assert SEARCH_OPTIONS == set(http_options()) - {"q", "k", "offset"}


def test_a_body_becomes_the_request_field_by_field():
    body = schemas.SearchBody(q="gas leak", k=5, offset=10, group="story", mode="keyword", since=date(2020, 1, 1),
                              until=date(2020, 2, 1), source=["Wikinews", "Reuters"], collapse=False,
                              recency_half_life_days=30.0, min_relevance=0.2)
    assert schemas.search_request(body) == SearchRequest(
        q="gas leak", k=5, offset=10, group="story", mode="keyword", since=date(2020, 1, 1), until=date(2020, 2, 1),
        sources=("Wikinews", "Reuters"), collapse=False, recency_half_life_days=30.0, min_relevance=0.2)
    assert schemas.search_request(schemas.SearchQuery(q="x")) == SearchRequest(q="x")


def test_a_field_added_to_the_hit_reaches_the_http_schema_and_the_client():
    # The one edit: a field on the hit (here a subclass stands for the edited Hit).
    hit = make_dataclass("NewHit", [("updated", datetime | None, described(None, "when the article last changed"))],
                         bases=(Hit,))
    model = schemas.response_model(hit, "NewHitOut", story=schemas.StorySummaryOut | None)
    prop = model.model_json_schema()["properties"]["updated"]
    assert prop["description"] == "when the article last changed"
    assert prop["anyOf"][0]["example"] == "2020-01-02T03:04:05"  # a naive UTC date-time, as every served date

    @dataclass
    class ClientHit(hit):  # what client/types.py writes for the hit: its conveniences and `extra`
        _: KW_ONLY
        extra: dict[str, Any] = field(default_factory=dict)

    sent = {"rank": 1, "score": 0.5, "passage_id": 3, "text": "t", "start": 0, "end": 1, "article_id": "a",
            "title": "T", "published": None, "source": None, "url": None, "updated": "2020-01-02T03:04:05",
            "highlights": [[0, 1]]}
    decoded = types.decode(ClientHit, sent)
    assert decoded.updated == datetime(2020, 1, 2, 3, 4, 5) and decoded.highlights == [(0, 1)] and decoded.extra == {}


def test_an_option_added_to_the_request_is_validated_over_http_and_reaches_the_searcher():
    # The one edit: an option on the request (a subclass stands for the edited SearchRequest).
    request = make_dataclass("NewRequest", [("fuzzy", bool, described(False, "match misspelt words")),
                                            ("languages", tuple[str, ...], described((), "only these languages",
                                                                                      http_name="language"))],
                             bases=(SearchRequest,), frozen=True)
    body = schemas.request_model("NewBody", typed=True, record=request)
    query = schemas.request_model("NewQuery", typed=False, record=request)
    assert body.model_json_schema()["properties"]["fuzzy"]["description"] == "match misspelt words"
    with pytest.raises(ValidationError, match="must be true or false"):
        body.model_validate({"q": "x", "fuzzy": "yes"})  # JSON has booleans of its own
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        body.model_validate({"q": "x", "languages": ["en"]})  # the HTTP name is `language`
    got = schemas.search_request(query.model_validate({"q": "x", "fuzzy": "true", "language": ["en", "fr"]}), request)
    assert got == request(q="x", fuzzy=True, languages=("en", "fr"))


@pytest.mark.parametrize("field, value, message", [("mode", "fuzzy", "mode must be hybrid, dense or keyword"),
                                                   ("group", "day", "group must be article, story or none")])
def test_in_process_choices_are_the_records_literals(fake_searcher, field, value, message):
    with pytest.raises(BadQuery, match=message) as caught:
        fake_searcher.validate(SearchRequest(q="gas", **{field: value}))
    assert caught.value.field == field
