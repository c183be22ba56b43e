"""The Python client against real servers: the corpus index over HTTP, API keys, and failing upstreams."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from indexer.errors import ArticleNotFound, BadQuery, ConfigError, RequestRejected, ServerError, Unauthorized
from search_api.client import AsyncNewsSearchClient, NewsSearchClient
from search_api.client.types import NO_CLOSE_MATCH, SearchHit
from search_api.server.schemas import HitOut
from tests.helpers import free_port
from tests.search_api.live_server import serve_index

SEED_QUERY = "Syrian army retakes Palmyra with Russian air support"
SEED_TITLE = "Russia-backed Syrian army carry on anti-ISIS push"


@pytest.fixture(scope="module")
def base(corpus_index, corpus_settings, embedder):
    with serve_index(corpus_index, corpus_settings, embedder) as url:
        yield url


@pytest.fixture
def client(base):
    with NewsSearchClient(base, timeout=60) as c:
        yield c


def test_search_returns_typed_hits(client):
    results = client.search(SEED_QUERY, k=5)
    assert len(results) == 5 and all(isinstance(h, SearchHit) for h in results)
    top = results[0]
    assert top.title == SEED_TITLE and top.rank == 1 and "Palmyra" in top.sentence
    assert [h.rank for h in results] == [1, 2, 3, 4, 5]
    assert results.mode == "hybrid" and results.ranked >= 5 and results.has_next
    assert 1 <= results.total < results.ranked and not results.no_close_match and top.relevance >= results.min_relevance
    for hit in results:
        assert hit.published is None or isinstance(hit.published, datetime)
        assert all(isinstance(span, tuple) for span in hit.highlights)


def test_hits_round_trip_the_servers_json(base, client):
    raw = httpx.post(f"{base}/search", json={"q": SEED_QUERY, "k": 5}, timeout=60).json()
    page = client.search(SEED_QUERY, k=5)
    for sent, hit in zip(raw["hits"], page):
        assert not hit.extra, f"the client does not know the server's hit fields {sorted(hit.extra)}"
        assert HitOut.model_validate(hit.to_json()) == HitOut.model_validate(sent)


def test_date_and_source_filters(client):
    results = client.search("election", k=10, since="2019-06-01", until=date(2019, 12, 31))
    assert len(results) > 0
    assert all(datetime(2019, 6, 1) <= h.published.replace(tzinfo=None) < datetime(2020, 1, 1) for h in results)
    source = "English Wikinews (CC BY 2.5)"
    assert {h.source for h in client.search(SEED_QUERY, k=10, source=source)} == {source}


def test_paging_walks_through_distinct_articles(client):
    pages = list(client.pages("election results", k=5, max_pages=3))
    assert len(pages) == 3
    ranks = [h.rank for page in pages for h in page]
    assert ranks == list(range(1, 16))
    assert len({h.article_id for page in pages for h in page}) == 15
    last = client.search("Magnitogorsk", k=100, mode="keyword")
    assert not last.has_next and client.next_page(last) is None


def test_paging_ends_with_a_shorter_page_when_k_does_not_divide_the_ranked_depth(corpus_index, corpus_settings,
                                                                                 embedder):
    settings = corpus_settings.replace(max_k=10, candidates=20)  # results ranked 20 deep; pages of 7: 7, 7, 6
    with serve_index(corpus_index, settings, embedder) as url, NewsSearchClient(url, timeout=60) as client:
        pages = list(client.pages("election results", k=7, max_pages=10))
    assert [len(p) for p in pages] == [7, 7, 6] and pages[0].ranked == 20
    assert [h.rank for p in pages for h in p] == list(range(1, 21)) and not pages[-1].has_next


def test_article_stats_and_health(client):
    assert client.stats().limits == {"max_k": 100, "candidates": 200, "max_query_chars": 1000}  # the defaults
    page = client.search(SEED_QUERY, k=1)
    hit = page[0]
    article = client.article(hit.article_id)
    assert article.body[hit.start:hit.end] == hit.text and article.title == SEED_TITLE
    assert any(p.id == hit.passage_id for p in article.passages)
    stats = client.stats()
    assert stats.articles == 51 and stats.model["dim"] == 384 and stats.index_version == page.index_version
    health = client.health()
    assert health.status == "ok" and health.index_version == stats.index_version


def test_4xx_raise_with_the_servers_message(client):
    with pytest.raises(BadQuery) as bad:
        client.search("anything", k=0)
    assert bad.value.field == "k" and bad.value.status_code == 422 and "between 1 and" in str(bad.value)
    with pytest.raises(ArticleNotFound, match="no-such/article") as missing:
        client.article("no-such/article")
    assert missing.value.status_code == 404
    with pytest.raises(BadQuery, match="sinse") as typo:
        client.search("anything", sinse="2019-01-01")  # caught before any request is sent
    assert typo.value.field == "sinse"


def test_no_close_match_and_the_relevance_floor(client):
    nearest = client.search("xqzv plorb frumious snorkeldink", k=5)
    assert nearest.no_close_match and nearest.total == 0 and len(nearest) == 5
    assert nearest.summary == NO_CLOSE_MATCH and NO_CLOSE_MATCH in nearest._repr_html_() and NO_CLOSE_MATCH in repr(nearest)
    assert "<mark>" not in nearest._repr_html_() and all(h.highlights == [] for h in nearest)
    everything = client.search(SEED_QUERY, k=5, min_relevance=0)
    assert everything.total == everything.ranked and everything.min_relevance == 0
    with pytest.raises(BadQuery) as bad:
        client.search(SEED_QUERY, min_relevance=1.5)
    assert bad.value.field == "min_relevance" and bad.value.status_code == 422


@pytest.mark.slow
def test_api_keys_are_sent_and_enforced(corpus_index, corpus_settings, embedder):
    settings = corpus_settings.replace(api_keys=("key-one", "key-two"))
    with serve_index(corpus_index, settings, embedder) as url:
        with pytest.raises(Unauthorized, match="NEWSEARCH_API_KEYS") as denied:
            NewsSearchClient(url).search("gas explosion")
        assert denied.value.status_code == 401
        with pytest.raises(Unauthorized, match="unknown API key"):
            NewsSearchClient(url, api_key="key-three").stats()
        assert NewsSearchClient(url, api_key="key-two").search("gas explosion", k=1)[0].title
        assert httpx.get(f"{url}/stats", headers={"X-API-Key": "key-one"}).status_code == 200
        refused = httpx.get(f"{url}/search", params={"q": "x"}, headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert refused.json()["field"] is None and "nope" not in refused.text
        for open_route in ("/healthz", "/readyz", "/metrics", "/"):
            assert httpx.get(url + open_route).status_code == 200, open_route


def test_async_client(base):
    async def main():
        async with AsyncNewsSearchClient(base, timeout=60) as client:
            results = await client.search(SEED_QUERY, k=3)
            article = await client.article(results[0].article_id)
            pages = [page async for page in client.pages("election results", k=4, max_pages=2)]
            with pytest.raises(BadQuery):
                await client.search("   ")
            return results, article, pages, await client.health()

    results, article, pages, health = asyncio.run(main())
    assert results[0].title == SEED_TITLE and article.id == results[0].article_id
    assert [h.rank for page in pages for h in page] == list(range(1, 9))
    assert health.status == "ok"


class Upstream:
    """A real HTTP server that answers a scripted list of (status, delay) and counts the requests."""

    def __init__(self, script: list[tuple[int, float]]):
        self.script, self.calls = list(script), 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                status, delay = upstream.script[min(upstream.calls, len(upstream.script) - 1)]
                upstream.calls += 1
                threading.Event().wait(delay)
                body = b'{"status": "ok", "index_version": "v1"}' if status == 200 else b'{"detail": "busy"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test)

            def do_POST(self):  # noqa: N802 - the stdlib's name
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.do_GET()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Upstream:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("script, calls, error", [
    ([(503, 0), (502, 0), (200, 0)], 3, None),          # retried through 502/503
    ([(504, 0)], 3, ServerError),                       # gives up after retries=2
    ([(500, 0), (200, 0)], 1, ServerError),             # a 500 is a bug, not a blip: no retry
    ([(404, 0), (200, 0)], 1, RequestRejected),         # 4xx: no retry
])
def test_retries_only_on_502_503_504(script, calls, error):
    with Upstream(script) as up, NewsSearchClient(up.url, retries=2, backoff=0.01) as client:
        if error is None:
            assert client.health().index_version == "v1"
        else:
            with pytest.raises(error, match="busy"):
                client.health()
        assert up.calls == calls


class Dropper:
    """A server on 127.0.0.1 that reads each request, then closes the connection without answering."""

    def __init__(self):
        self.sock, self.calls = socket.create_server(("127.0.0.1", 0)), 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

        def serve():
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = self.sock.accept()
                    with conn:
                        conn.recv(65536)
                        self.calls += 1

        threading.Thread(target=serve, daemon=True).start()

    def close(self):
        self.sock.close()


def test_a_502_or_504_on_a_request_that_changes_something_is_not_resent_but_a_503_is():
    with Upstream([(502, 0), (200, 0)]) as up, NewsSearchClient(up.url, retries=2, backoff=0.01) as client:
        with pytest.raises(ServerError, match="busy"):
            client.create_alert("oil")  # a proxy's 502 may come after the server acted
        assert up.calls == 1
    with Upstream([(503, 0), (201, 0)]) as up, NewsSearchClient(up.url, retries=2, backoff=0.01) as client:
        client.create_alert("oil")  # 503: refused before anything was done
        assert up.calls == 2


@pytest.mark.parametrize(("call", "sends"), [
    (lambda c: c.health(), 3), (lambda c: c.search("oil"), 3),  # reading twice is reading once
    (lambda c: c.create_alert("oil"), 1), (lambda c: c.delete_alert("a1"), 1),  # the server may have acted
])
def test_a_dropped_connection_resends_only_what_changes_nothing(call, sends):
    dropper = Dropper()
    try:
        with NewsSearchClient(dropper.url, retries=2, backoff=0.01) as client, \
                pytest.raises(ServerError, match=f"dropped the connection .* after {sends} attempt"):
            call(client)
        assert dropper.calls == sends
    finally:
        dropper.close()


@pytest.mark.parametrize("options", [
    {"base_url": None}, {"timeout": 0}, {"timeout": -1}, {"timeout": "5"}, {"connect_timeout": float("nan")},
    {"retries": 1.5}, {"retries": -1}, {"max_backoff": -1}, {"backoff": float("inf")}, {"api_key": "cl\u00e9"},
    {"api_key": "a\nb"},
])
def test_client_settings_that_cannot_work_are_refused_at_construction(options):
    with pytest.raises(ConfigError, match=next(iter(options))):
        NewsSearchClient(**{"base_url": "http://127.0.0.1:9", **options})
    NewsSearchClient("HTTP://127.0.0.1:9").close()  # a scheme's case does not matter
    NewsSearchClient("http://127.0.0.1:9", timeout=None).close()  # no limit, as httpx takes it


def test_an_error_raised_before_any_answer_has_no_status_and_may_name_a_field():
    with NewsSearchClient("http://127.0.0.1:9") as client, pytest.raises(BadQuery) as caught:
        client.search("oil", sinse="2020-01-01")
    assert caught.value.status_code is None and caught.value.field == "sinse"


def test_an_async_client_serves_one_asyncio_run_after_another(base):
    client = AsyncNewsSearchClient(base, timeout=60)
    first = asyncio.run(client.health())
    second = asyncio.run(client.health())  # a new loop: the last one's connections died with it
    assert first.status == second.status == "ok"
    asyncio.run(client.aclose())
    with pytest.raises(ConfigError, match="client is closed"):
        asyncio.run(client.health())


def test_arguments_of_the_wrong_kind_and_a_closed_client_are_clear_errors():
    client = NewsSearchClient("http://127.0.0.1:9")
    for call, field in ((lambda: client.search("oil", source=5), "source"), (lambda: client.article(5), "article_id"),
                        (lambda: client.article(None), "article_id"), (lambda: client.story(""), "story_id"),
                        (lambda: client.delete_alert(7), "alert_id")):
        with pytest.raises(BadQuery) as caught:
            call()
        assert caught.value.field == field
    client.close()
    with pytest.raises(ConfigError, match="client is closed"):
        client.health()


class Impostor:
    """A real HTTP server on 127.0.0.1 that is not newsearch: each path answers (status, headers, body)."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]):
        class Handler(BaseHTTPRequestHandler):
            def answer(self):
                status, headers, body = routes.get(self.path.split("?")[0], (404, {}, b'{"detail": "Not Found"}'))
                self.send_response(status)
                for name, value in {"content-length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer  # noqa: N815 - the stdlib's names

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_answers_that_are_not_newsearchs_say_to_check_the_base_url():
    impostor = Impostor({
        "/html/search": (200, {"content-type": "text/html"}, b"<html>a search engine</html>"),
        "/other/search": (200, {"content-type": "application/json"}, b'{"results": []}'),
        "/list/search": (200, {"content-type": "application/json"}, b"[1, 2]"),
        "/redir/search": (307, {"location": "https://news.example/api/search"}, b""),
        "/prefix/articles/nope": (404, {"content-type": "application/json"}, b'{"detail": "no article nope"}'),
    })
    try:
        for prefix, error, message in (("html", ServerError, "not newsearch's JSON .* base_url"),
                                       ("other", ServerError, "not newsearch's SearchResults .* base_url"),
                                       ("list", ServerError, "not newsearch's SearchResults .* base_url"),
                                       ("redir", RequestRejected, "redirect to 'https://news.example/api/search'")):
            with NewsSearchClient(f"{impostor.url}/{prefix}", retries=0) as client, \
                    pytest.raises(error, match=message):
                client.search("oil")
        with NewsSearchClient(f"{impostor.url}/prefix", retries=0) as client, pytest.raises(ArticleNotFound):
            client.article("nope")  # behind a reverse proxy's path, an article 404 is still ArticleNotFound
    finally:
        impostor.close()


def test_timeouts_and_unreachable_servers_fail_clearly():
    with Upstream([(200, 2.0)]) as up, NewsSearchClient(up.url, timeout=0.3, retries=2, backoff=0.01) as client:
        with pytest.raises(ServerError, match="did not answer within 0.3 s"):
            client.health()
        assert up.calls == 1  # a slow answer is not retried: the server is busy, not gone
    port = free_port()
    with NewsSearchClient(f"http://127.0.0.1:{port}", retries=2, backoff=0.01) as client:
        with pytest.raises(ServerError, match="cannot reach .* after 3 attempt"):
            client.search("anything")
