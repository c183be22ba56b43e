"""Operations through the real app over the corpus index: metrics, readiness, keys, limits, CORS, access log."""

from __future__ import annotations

import json
import logging
import re

import pytest
from fastapi.testclient import TestClient

from search_api.searcher import Searcher
from search_api.server.app import SearcherHolder, create_app
from search_api.server.auth import key_matches
from search_api.server.ops import ACCESS_LOG
from search_api.settings import ServerSettings
from tests.helpers import samples


@pytest.fixture(scope="module")
def own_searcher(corpus_index, corpus_settings, embedder):
    searcher = Searcher.open(corpus_index, corpus_settings, embedder)
    yield searcher
    searcher.close()


def make_client(settings: ServerSettings, searcher: Searcher) -> TestClient:
    """A client of a new app serving its own Searcher over the same index (the app closes it on exit)."""
    holder = SearcherHolder(settings, searcher.embedder)
    holder.swap(Searcher.open(searcher.version.path.parent, settings, searcher.embedder))
    return TestClient(create_app(settings, holder))


def test_metrics_count_requests_searches_embeddings_and_the_index(corpus_settings, own_searcher):
    with make_client(corpus_settings, own_searcher) as client:
        assert client.get("/search", params={"q": "gas explosion"}).status_code == 200
        assert client.get("/search", params={"q": "gas explosion", "mode": "keyword"}).status_code == 200
        assert client.get("/search", params={"q": ""}).status_code == 422
        assert client.get("/articles/no-such-id").status_code == 404
        metrics = samples(client.get("/metrics").text)
    route = ("route", "/search")
    assert metrics[("newsearch_http_requests_total", (("method", "GET"), route, ("status", "200")))] == 2
    assert metrics[("newsearch_http_requests_total", (("method", "GET"), route, ("status", "422")))] == 1
    article_route = ("newsearch_http_requests_total",
                     (("method", "GET"), ("route", "/articles/{article_id:path}"), ("status", "404")))
    assert metrics[article_route] == 1  # the route template, not the raw path
    assert metrics[("newsearch_search_duration_seconds_count", (("mode", "hybrid"),))] == 1
    assert metrics[("newsearch_search_duration_seconds_count", (("mode", "keyword"),))] == 1
    # Keyword mode embeds the query too: the relevance of its hits reads the query's meaning (docs/relevance.md).
    assert metrics[("newsearch_query_embedding_seconds_count", ())] == 2
    assert metrics[("newsearch_http_request_duration_seconds_count", (("method", "GET"), route,
                                                                       ("status", "200")))] == 2
    manifest = own_searcher.version.manifest
    assert metrics[("newsearch_index_articles", ())] == manifest["counts"]["articles"] == 51
    assert metrics[("newsearch_index_passages", ())] == manifest["counts"]["passages"]
    info = [labels for (name, labels) in metrics if name == "newsearch_index_info"]
    assert dict(info[0])["version"] == own_searcher.name


def test_healthz_and_readyz(corpus_settings, own_searcher):
    with make_client(corpus_settings, own_searcher) as client:
        assert client.get("/readyz").json() == {"status": "ready", "index_version": own_searcher.name}
    app = create_app(corpus_settings)
    app.state.holder = SearcherHolder(corpus_settings, own_searcher.embedder)  # alive, nothing loaded
    bare = TestClient(app)  # no lifespan: nothing gets loaded
    assert bare.get("/healthz").json() == {"status": "ok", "index_version": None}
    not_ready = bare.get("/readyz")
    assert not_ready.status_code == 503 and "news-index build" in not_ready.json()["detail"]


def test_body_size_limit_gives_413(corpus_settings, own_searcher):
    settings = corpus_settings.replace(max_body_bytes=2048)
    with make_client(settings, own_searcher) as client:
        big = json.dumps({"q": "x" * 3000})
        declared = client.post("/search", content=big, headers={"content-type": "application/json"})
        assert declared.status_code == 413 and "NEWSEARCH_MAX_BODY_BYTES" in declared.json()["detail"]
        streamed = client.post("/search", content=iter([big[:1500].encode(), big[1500:].encode()]),
                               headers={"content-type": "application/json"})  # chunked: no content-length
        assert streamed.status_code == 413 and streamed.json()["field"] is None
        assert client.post("/search", json={"q": "gas explosion", "k": 1}).status_code == 200


def test_cors_is_off_unless_origins_are_configured(corpus_settings, own_searcher):
    preflight = {"Origin": "https://news.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    with make_client(corpus_settings, own_searcher) as client:
        assert "access-control-allow-origin" not in client.options("/search", headers=preflight).headers
    with make_client(corpus_settings.replace(cors_origins=("https://news.example",)), own_searcher) as client:
        answer = client.options("/search", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://news.example"
        # A page on that origin may delete its alerts too (DELETE /alerts/{id}).
        delete = client.options("/alerts/a0000", headers={**preflight, "Access-Control-Request-Method": "DELETE",
                                                          "Access-Control-Request-Headers": "x-api-key"})
        assert delete.status_code == 200 and "DELETE" in delete.headers["access-control-allow-methods"], delete.text
        assert client.get("/healthz", headers={"Origin": "https://evil.example"}).headers.get(
            "access-control-allow-origin") is None
        # A refused preflight is a 400 in the JSON error body of every other refusal, saying what was refused.
        for refused, headers in (("origin", {"Origin": "https://evil.example"}),
                                 ("method", {"Access-Control-Request-Method": "PUT"})):
            answer = client.options("/search", headers={**preflight, **headers})
            assert answer.status_code == 400 and answer.json()["field"] is None, answer.text
            assert f"refused ({refused})" in answer.json()["detail"] and "NEWSEARCH_CORS_ORIGINS" in answer.text


def test_access_log_is_one_json_line_per_request_without_keys(corpus_settings, own_searcher):
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    ACCESS_LOG.addHandler(handler)
    try:
        with make_client(corpus_settings.replace(api_keys=("s3cret-key",)), own_searcher) as client:
            client.get("/search", params={"q": "private words"}, headers={"Authorization": "Bearer s3cret-key"})
            client.get("/stats", headers={"X-API-Key": "wrong-key"})
    finally:
        ACCESS_LOG.removeHandler(handler)
    records = [json.loads(line) for line in lines]
    assert [(r["method"], r["path"], r["status"]) for r in records] == [("GET", "/search", 200), ("GET", "/stats", 401)]
    assert all(r["index_version"] == own_searcher.name and r["ms"] >= 0 for r in records)
    assert not any(secret in line for line in lines for secret in ("s3cret-key", "wrong-key", "private"))


def test_keys_compare_in_constant_time_and_admin_routes_need_the_admin_key(corpus_settings, own_searcher):
    assert key_matches("b", ("a", "b")) and not key_matches("c", ("a", "b")) and not key_matches(None, ("",))
    for settings, headers, status in [
        (corpus_settings, {"X-Admin-Key": "anything"}, 404),                    # no admin key: closed
        (corpus_settings.replace(admin_key="adm"), {}, 401),
        (corpus_settings.replace(admin_key="adm"), {"X-Admin-Key": "nope"}, 403),
        (corpus_settings.replace(admin_key="adm"), {"Authorization": "Bearer nope"}, 403),
        (corpus_settings.replace(admin_key="adm"), {"X-API-Key": "adm"}, 200),  # the admin key as a bearer/API key
        (corpus_settings.replace(admin_key="adm"), {"Authorization": "Bearer adm"}, 200),
        (corpus_settings.replace(admin_key="adm"), {"X-Admin-Key": "adm"}, 200),
    ]:
        with make_client(settings, own_searcher) as client:
            answer = client.post("/admin/reload", headers=headers)
        assert answer.status_code == status, (settings.admin_key, headers, answer.text)
        if status == 401:
            assert answer.headers["www-authenticate"].startswith("Bearer") and "ADMIN_KEY" in answer.json()["detail"]


def local_assets(html: str) -> list[str]:
    """Every script, stylesheet and icon address an HTML page loads."""
    return re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', html)


def test_api_docs_load_only_local_assets_and_work_offline(corpus_settings, own_searcher):
    with make_client(corpus_settings, own_searcher) as client:
        for page in ("/docs", "/redoc"):
            r = client.get(page)
            assert r.status_code == 200 and "text/html" in r.headers["content-type"]
            assets = local_assets(r.text)
            assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), (page, assets)
            assert "http://" not in r.text and "https://" not in r.text  # no CDN, no web fonts
            for asset in assets:
                assert client.get(asset).status_code == 200, asset
        assert client.get("/openapi.json").json()["info"]["title"] == "newsearch"


def test_metrics_name_the_docs_routes_and_count_only_unknown_paths_as_unmatched(corpus_settings, own_searcher):
    with make_client(corpus_settings, own_searcher) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/static-offline-docs/swagger-ui.css", "/no-such-page"):
            client.get(path)
        metrics = samples(client.get("/metrics").text)
    routes = {dict(labels)["route"]: value for (name, labels), value in metrics.items()
              if name == "newsearch_http_requests_total"}
    assert {"/docs", "/redoc", "/openapi.json", "/static-offline-docs"} <= set(routes)
    assert routes["unmatched"] == 1  # /no-such-page


def test_stats_sources_count_every_article_the_seed_too(corpus_settings, own_searcher):
    with make_client(corpus_settings, own_searcher) as client:
        stats = client.get("/stats").json()
    assert stats["sources"] == {"English Wikinews (CC BY 2.5)": 50, "Reuters": 1} and stats["articles"] == 51
