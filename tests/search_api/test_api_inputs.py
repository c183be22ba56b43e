"""Strict input at the HTTP boundary (issue 15, defects 2, 7 and 9): every malformed request is a 422
naming its field, never a 500 nor a silently different query; the OpenAPI schema says what is refused."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from search_api.server.app import SearcherHolder, create_app


@pytest.fixture(scope="module")
def client(searcher, corpus_settings):
    holder = SearcherHolder(corpus_settings, searcher.embedder)
    holder.swap(searcher)
    with TestClient(create_app(corpus_settings, holder), raise_server_exceptions=False) as c:
        yield c


def post(client, body: dict):
    # json.dumps writes a lone surrogate as the escape \ud800, as a hostile client sends it
    return client.post("/search", content=json.dumps(body), headers={"content-type": "application/json"})


@pytest.mark.parametrize(("body", "field"), [
    ({"q": "\ud800oil"}, "q"),
    ({"q": "oil", "source": ["\ud800"]}, "source"),
    ({"q": "oil", "source": ["Reuters", "x\udfffy"]}, "source"),
])
def test_a_lone_surrogate_is_a_422_naming_the_field(client, body, field):
    r = post(client, body)
    assert r.status_code == 422 and r.json()["field"] == field
    assert "lone UTF-16 surrogate" in r.json()["detail"]


@pytest.mark.parametrize(("body", "field"), [
    ({"q": "oil", "k": True}, "k"), ({"q": "oil", "k": "5"}, "k"), ({"q": "oil", "k": 5.0}, "k"),
    ({"q": "oil", "offset": False}, "offset"), ({"q": "oil", "collapse": "yes"}, "collapse"),
    ({"q": "oil", "collapse": 1}, "collapse"), ({"q": "oil", "recency_half_life_days": "7"}, "recency_half_life_days"),
    ({"q": "oil", "since": 2020}, "since"), ({"q": "oil", "since": "20200101"}, "since"),
    ({"q": "oil", "until": 1.5e9}, "until"), ({"q": "oil", "now": "1600000000"}, "now"),
    ({"q": "oil", "min_relevance": "0.5"}, "min_relevance"), ({"q": "oil", "min_relevance": True}, "min_relevance"),
])
def test_json_values_of_the_wrong_type_are_refused_not_coerced(client, body, field):
    r = post(client, body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and r.json()["detail"].startswith(f"{field}: ")


@pytest.mark.parametrize(("query", "field"), [
    ("q=oil&since=2020", "since"), ("q=oil&since=20200101", "since"), ("q=oil&q=gas", "q"), ("q=oil&k=3&k=4", "k"),
    ("q=oil&k=true", "k"), ("q=oil&k=1_0", "k"), ("q=oil&offset=1_0", "offset"),
    ("q=oil&recency_half_life_days=3_0", "recency_half_life_days"),
])
def test_query_strings_refuse_numbers_as_dates_and_repeated_fields(client, query, field):
    r = client.get(f"/search?{query}")
    assert r.status_code == 422 and r.json()["field"] == field, r.text


def test_query_strings_still_read_numbers_booleans_dates_and_repeated_sources(client):
    r = client.get("/search?q=oil&k=3&offset=1&collapse=false&since=1990-01-01&source=a&source=b")
    assert r.status_code == 200, r.text
    r = post(client, {"q": "oil", "k": 3, "collapse": False, "since": "1990-01-01", "recency_half_life_days": 30})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("url", ["/search?q=%ff%fe", "/search?q=oil%ed%a0%80", "/articles/%ff", "/search?q=oil&source=%c3"])
def test_percent_escapes_that_are_not_utf8_are_a_422_not_a_search_for_replacement_characters(client, url):
    r = client.get(url)
    assert r.status_code == 422 and "not UTF-8" in r.json()["detail"], r.text
    page = client.get("/?q=caf%E9")  # a Latin-1 link to the web page still opens the page
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(("url", "field"), [
    ("/articles/wikinews-2019-001?foo=1", "foo"), ("/articles/wikinews-2019-001/similar?kk=3", "kk"),
    ("/articles/wikinews-2019-001/similar?k=1&k=50", "k"), ("/stories/s1?k=3", "k"), ("/alerts?x=1", "x"),
    ("/articles/wikinews-2019-001?=x", None), ("/search?q=oil&=x", None),
    ("/articles/wikinews-2019-001/similar?k=1_0", "k"),
])
def test_every_route_refuses_unknown_and_repeated_parameters(client, url, field):
    r = client.get(url)
    assert r.status_code == 422 and r.json()["field"] == field, r.text


def test_a_body_sent_without_the_json_content_type_says_to_send_it(client):
    for headers in ({"content-type": "text/plain"}, {}):
        r = client.post("/search", content=b'{"q": "oil"}', headers=headers)
        assert r.status_code == 422 and "Content-Type: application/json" in r.json()["detail"], r.text


def test_control_characters_read_as_spaces_so_a_query_of_nothing_else_is_blank(client):
    for r in (client.get("/search?q=%00%01"), post(client, {"q": "\u0000\u001b"})):
        assert r.status_code == 422 and r.json()["field"] == "q", r.text
    r = client.get("/search?q=gas%00explosion&k=3")
    assert r.status_code == 200 and r.json()["query"] == "gas explosion", r.text


@pytest.mark.parametrize(("bounds", "found"), [
    ("until=2019-01-04T00:00:00%2B05:00", False),  # 2019-01-03T19:00Z, before the article's midnight
    ("until=2019-01-04T00:00:00Z", True),  # that very instant, inclusive
    ("until=2019-01-03t23:59:59z", False), ("until=2019-01-04t00:00:00z", True),
    ("until=2019-01-03", False), ("until=2019-01-04", True),  # a date: its whole day
    ("since=2019-01-04T00:00:00-05:00", False),  # 05:00Z, after it
    ("since=2019-01-04T00:00:00Z", True),
])
def test_a_midnight_date_time_is_that_instant_in_utc_not_the_whole_day(client, bounds, found):
    # wikinews-2019-001 was published 2019-01-04, stored as midnight UTC.
    for r in (client.get(f"/search?q=Magnitogorsk+apartment+collapse&k=20&{bounds}"),
              post(client, {"q": "Magnitogorsk apartment collapse", "k": 20,
                            **dict([bounds.replace("%2B", "+").split("=")])})):
        assert r.status_code == 200, r.text
        assert ("wikinews-2019-001" in {h["article_id"] for h in r.json()["hits"]}) is found, bounds


@pytest.mark.parametrize(("content", "field"), [
    ('{"q": "a", "q": "b"}', "q"), ('{"q": "oil", "k": 3, "k": 4}', "k"), ('{"k": 3, "q": "oil", "k": 3}', "k"),
    ('{"q": "oil", "source": ["a"], "source": ["b"]}', "source"),
])
def test_a_key_repeated_in_a_json_body_is_a_422_naming_it(client, content, field):
    r = client.post("/search", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert "more than once" in r.json()["detail"]


def test_a_key_repeated_in_the_admin_body_is_a_422_naming_it(corpus_settings, searcher):
    settings = corpus_settings.replace(admin_key="k")
    holder = SearcherHolder(settings, searcher.embedder)
    holder.swap(searcher)
    with TestClient(create_app(settings, holder), raise_server_exceptions=False) as c:
        r = c.post("/admin/reindex", content='{"paths": ["a"], "paths": ["b"]}',
                   headers={"content-type": "application/json", "x-admin-key": "k"})
        assert r.status_code == 422 and r.json()["field"] == "paths", r.text
        # The destructive flag takes JSON's booleans only: "yes" or 1 is refused before any job starts.
        for value in ("yes", 1, "true"):
            r = c.post("/admin/reindex", json={"paths": ["a"], "delete_missing": value}, headers={"x-admin-key": "k"})
            assert r.status_code == 422 and r.json()["field"] == "delete_missing", r.text
        r = c.post("/admin/reindex", json={"paths": ["a"], "delete-missing": True}, headers={"x-admin-key": "k"})
        assert r.status_code == 422 and r.json()["field"] == "delete-missing", r.text  # misspelt: not ignored


@pytest.mark.parametrize(("content", "content_type"), [
    (b'{"q":"caf\xe9"}', "application/json; charset=latin-1"),
    (b'{"q":"oil","k":' + b"9" * 5000 + b"}", "application/json"),
    (b"{bad", "application/json"),
])
def test_an_unparsable_body_is_a_422_not_a_400(client, content, content_type):
    r = client.post("/search", content=content, headers={"content-type": content_type})
    assert r.status_code == 422 and set(r.json()) == {"detail", "field"}, r.text


def test_options_says_every_method_of_search(client):
    r = client.options("/search")
    assert r.status_code == 204 and r.headers["allow"] == "GET, POST, OPTIONS"


def test_openapi_states_the_limits_refusals_and_date_format(client, corpus_settings):
    schema = client.get("/openapi.json").json()
    body = schema["components"]["schemas"]["SearchBody"]["properties"]
    assert body["q"]["minLength"] == 1 and body["q"]["maxLength"] == corpus_settings.max_query_chars
    assert body["k"]["maximum"] == corpus_settings.max_k and body["offset"]["minimum"] == 0
    get_params = {p["name"]: p["schema"] for p in schema["paths"]["/search"]["get"]["parameters"]}
    assert get_params["k"]["maximum"] == corpus_settings.max_k and get_params["q"]["pattern"] == r"\S"
    published = schema["components"]["schemas"]["HitOut"]["properties"]["published"]["anyOf"][0]
    assert "format" not in published and "without an offset" in published["description"]
    post_codes = set(schema["paths"]["/search"]["post"]["responses"])
    assert {"401", "404", "413", "422", "503"} <= post_codes
    assert {"401", "403", "404", "409", "422", "503"} <= set(schema["paths"]["/admin/reindex"]["post"]["responses"])
    error = {"$ref": "#/components/schemas/ErrorOut"}
    assert schema["paths"]["/admin/reindex"]["post"]["responses"]["422"]["content"]["application/json"]["schema"] == error


def test_openapi_documents_the_guards_408_and_431_on_every_route(client):
    # search_api/server/guard.py answers them before the app (tests/search_api/test_slow_clients.py sends them)
    error = {"$ref": "#/components/schemas/ErrorOut"}
    operations = [(path, op) for path, ops in client.get("/openapi.json").json()["paths"].items() for op in ops.values()]
    assert len(operations) >= 10
    for path, op in operations:
        for code in ("408", "431"):
            assert op["responses"][code]["content"]["application/json"]["schema"] == error, (path, code)


@pytest.mark.parametrize("bounds", [
    "until=2019-01-04x00:00:00", "since=2019-01-04T00:00:00%00", "until=2019-01-04%0000:00:00",
    "since=2019-01-04T00:00:00Z%00", "until=2019-01-04_12:00",
])
def test_a_date_time_takes_t_or_a_space_between_date_and_time_and_nothing_after(client, bounds):
    # Python's fromisoformat takes any one character between date and time; a control character reads as a space.
    field = bounds.split("=")[0]
    for r in (client.get(f"/search?q=oil&{bounds}"),
              post(client, {"q": "oil", field: bounds.split("=")[1].replace("%00", "\u0000")})):
        assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert client.get("/search?q=oil&until=2019-01-04 12:00").status_code == 200


@pytest.mark.parametrize(("value", "as_json"), [("nan", "NaN"), ("-nan", "-Infinity"), ("inf", "Infinity")])
def test_min_relevance_that_is_not_a_number_says_so(client, value, as_json):
    content = f'{{"q": "oil", "min_relevance": {as_json}}}'
    for r in (client.get(f"/search?q=oil&min_relevance={value}"),
              client.post("/search", content=content, headers={"content-type": "application/json"})):
        assert r.status_code == 422 and r.json()["field"] == "min_relevance", r.text
        assert "finite number" in r.json()["detail"], r.text  # not "less than or equal to 1"


@pytest.mark.parametrize("path", ["/alerts/", "/search/", "/stats/", "/healthz/"])
def test_a_trailing_slash_is_a_json_404_that_names_the_route_not_a_redirect(client, path):
    r = client.get(path + "?q=oil", follow_redirects=False)
    assert r.status_code == 404 and r.json()["field"] is None, r.text
    assert f"try {path.rstrip('/')}" in r.json()["detail"]

