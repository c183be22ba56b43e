"""The HTTP API through FastAPI's TestClient, over a real index of corpus/ and the real model."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search_api.server.app import SearcherHolder, create_app

SEED_QUERY = "Syrian army retakes Palmyra with Russian air support"


@pytest.fixture(scope="module")
def client(searcher, corpus_settings):
    holder = SearcherHolder(corpus_settings, searcher.embedder)
    holder.swap(searcher)
    with TestClient(create_app(corpus_settings, holder)) as c:
        yield c


def seed_id(searcher):
    return next(aid for aid in searcher.article_ids if aid.startswith("txt-"))


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_seed_article_comes_first(client, searcher, mode):
    r = client.get("/search", params={"q": SEED_QUERY, "mode": mode})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hits"][0]["article_id"] == seed_id(searcher)
    assert body["hits"][0]["title"] == "Russia-backed Syrian army carry on anti-ISIS push"
    assert body["index_version"] == searcher.name and body["mode"] == mode


def test_wikinews_query_finds_its_article(client):
    r = client.get("/search", params={"q": "apartment block in a Ural city collapsed after a gas explosion"})
    assert r.json()["hits"][0]["article_id"] == "wikinews-2019-001"


def test_hit_fields_and_offsets(client, searcher):
    body = client.post("/search", json={"q": SEED_QUERY, "k": 5}).json()
    hit = body["hits"][0]
    article = client.get(f"/articles/{hit['article_id']}").json()
    assert article["body"][hit["start"]:hit["end"]] == hit["text"]
    (s, e), = hit["highlights"]
    assert "Palmyra" in hit["text"][s:e]
    assert [h["rank"] for h in body["hits"]] == [1, 2, 3, 4, 5]
    assert len({h["article_id"] for h in body["hits"]}) == 5  # one hit per article by default
    assert hit["matched_passages"] >= 1


def test_group_none_returns_passages(client, searcher):
    hits = client.get("/search", params={"q": SEED_QUERY, "group": "none", "k": 8}).json()["hits"]
    assert sum(h["article_id"] == seed_id(searcher) for h in hits) >= 2


def test_pages_do_not_repeat_articles(client):
    first = client.get("/search", params={"q": "election results", "k": 5}).json()
    second = client.get("/search", params={"q": "election results", "k": 5, "offset": 5}).json()
    ids1, ids2 = [h["article_id"] for h in first["hits"]], [h["article_id"] for h in second["hits"]]
    assert len(ids2) == 5 and not set(ids1) & set(ids2)
    assert [h["rank"] for h in second["hits"]] == [6, 7, 8, 9, 10]


@pytest.mark.parametrize("params, field", [
    ({"q": ""}, "q"), ({"q": "   "}, "q"), ({"q": "x" * 1001}, "q"), ({}, "q"),
    ({"q": "a", "k": 0}, "k"), ({"q": "a", "k": 101}, "k"), ({"q": "a", "k": "ten"}, "k"),
    ({"q": "a", "offset": -1}, "offset"), ({"q": "a", "mode": "magic"}, "mode"),
    ({"q": "a", "since": "2019-13-01"}, "since"), ({"q": "a", "until": "tomorrow"}, "until"),
    ({"q": "a", "min_relevance": 1.5}, "min_relevance"), ({"q": "a", "min_relevance": -0.1}, "min_relevance"),
    ({"q": "a", "min_relevance": "high"}, "min_relevance"),
])
def test_bad_requests_are_422_naming_the_field(client, params, field):
    r = client.get("/search", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and field in r.json()["detail"]


@pytest.mark.parametrize("params", [
    {"until": "9999-12-31"}, {"since": "0001-01-01T00:00:00+01:00"}, {"until": "9999-12-31T23:00:00-05:00"},
    {"recency_half_life_days": 1, "now": "0001-01-01T00:00:00+01:00"},
    {"since": "9999-12-31T23:00:00-05:00", "until": "9999-12-31T23:30:00-05:00"},
])
def test_dates_at_the_edge_of_the_calendar_are_answered(client, params):
    r = client.get("/search", params={"q": "election", **params})
    assert r.status_code == 200, r.text


def test_unknown_parameters_and_broken_bodies_are_422(client):
    r = client.get("/search", params={"q": "oil", "sorce": "Reuters"})
    assert r.status_code == 422 and r.json()["field"] == "sorce" and "unknown parameter" in r.json()["detail"]
    r = client.post("/search", json={"q": "oil", "sources": ["Reuters"]})
    assert r.status_code == 422 and r.json()["field"] == "sources"
    r = client.post("/search", content=b'{"q": oil}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] is None and "JSON" in r.json()["detail"]
    for value in ("inf", "nan", "0", "-1"):
        r = client.get("/search", params={"q": "oil", "recency_half_life_days": value})
        assert r.status_code == 422 and r.json()["field"] == "recency_half_life_days", (value, r.text)


def test_unknown_article_is_404(client):
    r = client.get("/articles/no-such-id")
    assert r.status_code == 404 and "no-such-id" in r.json()["detail"]


def test_healthz_and_stats(client, searcher):
    assert client.get("/healthz").json() == {"status": "ok", "index_version": searcher.name}
    stats = client.get("/stats").json()
    assert stats["articles"] == 51 and stats["model"]["dim"] == 384
    assert stats["sources"]["English Wikinews (CC BY 2.5)"] == 50
    s = searcher.settings
    assert stats["limits"] == {"max_k": s.max_k, "candidates": s.candidates, "max_query_chars": s.max_query_chars}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(max_size=60), k=st.integers(-5, 120), offset=st.integers(-3, 300))
def test_no_input_gives_a_500(client, q, k, offset):
    r = client.get("/search", params={"q": q, "k": k, "offset": offset, "mode": "keyword"})
    assert r.status_code in (200, 422), r.text


def test_total_counts_hits_that_clear_the_floor(client):
    everything = client.post("/search", json={"q": "Palmyra", "min_relevance": 0}).json()
    assert everything["total"] == everything["ranked"] > 10 and everything["min_relevance"] == 0
    default = client.get("/search", params={"q": SEED_QUERY}).json()
    assert 1 <= default["total"] < default["ranked"] and not default["no_close_match"]
    assert default["hits"][0]["relevance"] >= default["min_relevance"] and default["hits"][0]["highlights"]
    r = client.post("/search", json={"q": SEED_QUERY, "min_relevance": 2})
    assert r.status_code == 422 and r.json()["field"] == "min_relevance"


def test_nonsense_query_says_no_close_match_and_marks_nothing(client):
    body = client.get("/search", params={"q": "xqzv plorb frumious snorkeldink"}).json()
    assert body["no_close_match"] and body["total"] == 0 and len(body["hits"]) == 10
    assert all(h["highlights"] == [] and h["relevance"] < body["min_relevance"] for h in body["hits"])
