"""The Python client of the HTTP API (sync and asyncio, over httpx): typed results, retries, clear errors.

Retries, with exponential backoff, only when the server cannot be reached or answers 502/503/504;
every 4xx raises a NewsearchError subclass carrying the server's own message.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import httpx

from indexer.errors import BadQuery, ConfigError, NewsearchError, RequestRejected, ServerError, Unauthorized
from search_api.client.types import Article, Health, SearchResults, Similar, Stats, Story
from search_api.errors import client_error
from search_api.records import http_options

# The optional fields of POST /search besides q, k and offset, from the one definition of the request.
SEARCH_OPTIONS = frozenset(http_options()) - {"q", "k", "offset"}
ALERT_OPTIONS = frozenset({"mode", "since", "until", "source", "min_relevance", "webhook"})  # POST /alerts besides query
RETRY_STATUSES = frozenset({502, 503, 504})
# Nothing was sent: any request may be sent again.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
# The connection dropped after the request went out: the server may have acted on it, so only a request that
# changes nothing (a GET, a search) is sent again; creating or deleting an alert twice is not the same as once.
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


def repeatable(method: str, path: str) -> bool:
    """Whether sending the request twice has the effect of sending it once (POST /search only reads)."""
    return method == "GET" or (method == "POST" and path == "/search")


def error_for(status: int, body: Any, path: str) -> NewsearchError:
    """The NewsearchError for a non-2xx answer, with the server's {detail, field} message."""
    detail = body.get("detail") if isinstance(body, dict) else None
    field = body.get("field") if isinstance(body, dict) else None
    message = str(detail) if detail else f"HTTP {status} from {path}: {str(body)[:200]}"
    kind = client_error(status, path)
    if kind is Unauthorized:
        message += " (pass api_key= to the client)"
    elif kind is ServerError:
        message = f"the server failed: {message}"
    error = kind(message)
    error.status_code = status
    error.field = field
    return error


def search_body(q: str, k: int, offset: int, filters: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of POST /search; unknown filter names raise BadQuery here, not silently on the server."""
    unknown = sorted(set(filters) - SEARCH_OPTIONS)
    if unknown:
        raise BadQuery(f"unknown search option(s) {unknown}; known: {sorted(SEARCH_OPTIONS)}", unknown[0])
    body: dict[str, Any] = {"q": q, "k": k, "offset": offset}
    for name, value in filters.items():
        if value is None:
            continue
        if isinstance(value, date | datetime):
            value = value.isoformat()
        if name == "source" and isinstance(value, str):
            value = [value]
        if name == "source" and not (isinstance(value, list | tuple | set | frozenset)
                                     and all(isinstance(v, str) for v in value)):
            raise BadQuery(f"source must be a source name or a list of them, not {value!r}"[:200], "source")
        body[name] = list(value) if name == "source" else value
    return body


def next_body(page: SearchResults) -> dict[str, Any] | None:
    """The request for the page after `page`, or None when it was the last. The last page is shorter when `k`
    does not divide the ranked depth: the server refuses a page reaching past it."""
    if not page.has_next:
        return None
    offset = page.offset + len(page.hits)
    return {**page.request, "offset": offset, "k": min(int(page.request["k"]), page.ranked - offset)}


def alert_body(query: str, options: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of POST /alerts: the query and mode, since, until, source, min_relevance, webhook."""
    unknown = sorted(set(options) - ALERT_OPTIONS)
    if unknown:
        raise BadQuery(f"unknown alert option(s) {unknown}; known: {sorted(ALERT_OPTIONS)}", unknown[0])
    body = search_body(query, 10, 0, {k: v for k, v in options.items() if k != "webhook"})
    return {"query": query, **{k: v for k, v in body.items() if k not in ("q", "k", "offset")},
            **({"webhook": options["webhook"]} if options.get("webhook") else {})}


def _id(value: Any, name: str) -> str:
    """An id as its URL path segment, escaped (ids may hold any character); BadQuery if it is not text."""
    if not isinstance(value, str) or not value:
        raise BadQuery(f"{name} must be a non-empty string, not {value!r}"[:200], name)
    return quote(value, safe="")


def alert_path(alert_id: str, feed: bool = False) -> str:
    """The URL path of one alert (or of its Atom feed)."""
    return "/alerts/" + _id(alert_id, "alert_id") + ("/feed.atom" if feed else "")


def article_path(article_id: str) -> str:
    """The URL path of one article."""
    return "/articles/" + _id(article_id, "article_id")


def story_path(story_id: str) -> str:
    """The URL path of one story."""
    return "/stories/" + _id(story_id, "story_id")


class _Base:
    """Settings, request building and answer decoding shared by the sync and async clients."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0,
                 connect_timeout: float = 5.0, retries: int = 3, backoff: float = 0.5, max_backoff: float = 8.0):
        if not isinstance(base_url, str) or not base_url.lower().startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, not {base_url!r}")
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 < value < math.inf):
                raise ConfigError(f"{name} must be a number of seconds above 0 (or None: no limit), not {value!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"retries must be a whole number, 0 or more, not {retries!r}")
        for name, value in (("backoff", backoff), ("max_backoff", max_backoff)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"{name} must be a number of seconds, 0 or more, not {value!r}")
        if api_key is not None and (not isinstance(api_key, str) or not api_key.isascii() or not api_key.isprintable()):
            raise ConfigError("api_key must be printable ASCII text (it is sent in an HTTP header)")
        self.base_url = base_url.rstrip("/")
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def _options(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "headers": self._headers, "timeout": self.timeout}

    def _refuse_closed(self, pool: httpx.Client | httpx.AsyncClient) -> None:
        if pool.is_closed:
            block = "async with" if isinstance(pool, httpx.AsyncClient) else "with"
            raise ConfigError(f"this client is closed; make a new {type(self).__name__} (or use it inside `{block}`)")

    def _retry_after(self, attempt: int, method: str, path: str, response: httpx.Response | None,
                     error: httpx.TransportError | None) -> float | None:
        """Seconds to wait before sending again; None when `response` is the answer; raises when out of luck."""
        again = repeatable(method, path)
        if error is not None:
            retry = isinstance(error, NOT_SENT) or (again and isinstance(error, DROPPED))
            delay = self._delay(attempt, None) if retry else None
            if delay is None:
                raise self._unreachable(path, error, attempt + 1) from error
            return delay
        # 503 is the server (or its connection limit) refusing before it acted; a proxy's 502/504 may come after.
        retry = response.status_code in RETRY_STATUSES and (again or response.status_code == 503)
        return self._delay(attempt, response) if retry else None

    def _delay(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry number `attempt + 1`, or None when retries are used up."""
        if attempt >= self.retries:
            return None
        delay = self.backoff * 2 ** attempt
        after = response.headers.get("Retry-After", "") if response is not None else ""
        if after.isdigit():
            delay = max(delay, float(after))
        return min(delay, self.max_backoff)

    def _unreachable(self, path: str, exc: Exception, attempts: int) -> ServerError:
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return ServerError(f"{self.base_url}{path} did not answer within {self.timeout.read} s; "
                               "pass a larger timeout= to the client")
        if isinstance(exc, DROPPED):
            return ServerError(f"{self.base_url}{path} dropped the connection before answering "
                               f"({type(exc).__name__}: {exc}) after {attempts} attempt(s); the request may have "
                               "been carried out (a request that changes something is not sent twice): check, "
                               "then retry")
        return ServerError(f"cannot reach {self.base_url} ({type(exc).__name__}: {exc}) after {attempts} "
                           "attempt(s); is `news-search serve` running there?")

    def _answer(self, response: httpx.Response, path: str) -> Any:
        """A success's JSON object or list (an Atom feed's text; {} for 204), else the error it stands for."""
        if response.status_code == 204:
            return {}
        try:
            body = response.json()
        except ValueError:
            body = response.text
        xml = response.headers.get("content-type", "").startswith("application/atom+xml")
        if response.is_success and (isinstance(body, dict | list) or xml):
            return body
        where = f"{self.base_url}{path}"
        if response.is_success:
            raise ServerError(f"{where} answered {response.status_code} with something that is not newsearch's JSON "
                              f"({str(body)[:80]!r}); check that base_url points at `news-search serve`")
        if response.is_redirect:
            raise RequestRejected(f"{where} answered {response.status_code}, a redirect to "
                                  f"{response.headers.get('location')!r}; give the client that address as base_url")
        raise error_for(response.status_code, body, path)


class NewsSearchClient(_Base):
    """Blocking client: `NewsSearchClient("http://127.0.0.1:8000").search("gas explosion", k=5)`.

    `timeout` bounds each read and write in seconds, `connect_timeout` the connection; failed connections
    and 502/503/504 answers are retried `retries` times, waiting backoff * 2**n seconds (at most max_backoff).
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0, **options: Any):
        super().__init__(base_url, api_key, timeout, **options)
        self._http = httpx.Client(**self._options())

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        self._refuse_closed(self._http)
        for attempt in range(self.retries + 1):
            try:
                response, error = self._http.request(method, path, **kwargs), None
            except httpx.TransportError as exc:
                response, error = None, exc
            delay = self._retry_after(attempt, method, path, response, error)
            if delay is None:
                return self._answer(response, path)
            time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def search(self, q: str, k: int = 10, offset: int = 0, **filters: Any) -> SearchResults:
        """One page of hits; options: since, until, source, mode, group, collapse, recency_half_life_days, now,
        min_relevance (the floor a hit's relevance must clear to count in `total` and be highlighted)."""
        body = search_body(q, k, offset, filters)
        return SearchResults.from_json(self._call("POST", "/search", json=body), body)

    def next_page(self, page: SearchResults) -> SearchResults | None:
        """The page after `page`, or None when it was the last."""
        body = next_body(page)
        return None if body is None else SearchResults.from_json(self._call("POST", "/search", json=body), body)

    def pages(self, q: str, k: int = 10, max_pages: int = 10, **filters: Any) -> Iterator[SearchResults]:
        """Successive pages of one query, until the results or `max_pages` run out."""
        page: SearchResults | None = self.search(q, k, **filters)
        for _ in range(max_pages):
            if page is None or not page.hits:
                return
            yield page
            page = self.next_page(page)

    def article(self, article_id: str) -> Article:
        """One whole article; ArticleNotFound if the server has no such id."""
        return Article.from_json(self._call("GET", article_path(article_id)))

    def story(self, story_id: str) -> Story:
        """One story and its articles in time order; StoryNotFound if the server has no such id."""
        return Story.from_json(self._call("GET", story_path(story_id)))

    def similar(self, article_id: str, k: int = 10) -> Similar:
        """Related coverage of an article: nearest articles outside its story first, its copies left out."""
        return Similar.from_json(self._call("GET", article_path(article_id) + "/similar", params={"k": k}))

    def stats(self) -> Stats:
        """Index version, counts, model, date range and sources."""
        return Stats.from_json(self._call("GET", "/stats"))

    def create_alert(self, query: str, **options: Any) -> dict[str, Any]:
        """Save an alert (docs/alerts.md); options: mode, since, until, source, min_relevance, webhook."""
        return self._call("POST", "/alerts", json=alert_body(query, options))

    def alerts(self) -> list[dict[str, Any]]:
        """This key's alerts, with their match counts."""
        return self._call("GET", "/alerts")

    def alert(self, alert_id: str) -> dict[str, Any]:
        """One alert with its newest matches and webhook deliveries; AlertNotFound if there is none."""
        return self._call("GET", alert_path(alert_id))

    def delete_alert(self, alert_id: str) -> None:
        """Remove an alert and its matches."""
        self._call("DELETE", alert_path(alert_id))

    def alert_feed(self, alert_id: str) -> str:
        """An alert's matches as Atom XML."""
        return self._call("GET", alert_path(alert_id, feed=True))

    def health(self) -> Health:
        """Whether the server is up, and the index version it serves."""
        return Health.from_json(self._call("GET", "/healthz"))

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> NewsSearchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncNewsSearchClient(_Base):
    """The same API as NewsSearchClient for asyncio code: `await client.search(...)`."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 30.0, **options: Any):
        super().__init__(base_url, api_key, timeout, **options)
        self._http = httpx.AsyncClient(**self._options())
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop whose connections the pool holds

    def _pool(self) -> httpx.AsyncClient:
        """The connection pool for the running event loop. A script may call asyncio.run more than once with one
        client: the connections of a loop that has ended cannot be used by the next, so a new pool is made."""
        self._refuse_closed(self._http)
        loop = asyncio.get_running_loop()
        if self._loop_ended():
            self._http = httpx.AsyncClient(**self._options())
        elif self._loop is not None and self._loop is not loop:
            raise ConfigError("this AsyncNewsSearchClient is in use by another running event loop; make one client "
                              "per loop")
        self._loop = loop
        return self._http

    def _loop_ended(self) -> bool:
        """Whether the pool's connections belong to an event loop that has ended (so they cannot be used)."""
        return self._loop is not None and self._loop.is_closed()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        pool = self._pool()
        for attempt in range(self.retries + 1):
            try:
                response, error = await pool.request(method, path, **kwargs), None
            except httpx.TransportError as exc:
                response, error = None, exc
            delay = self._retry_after(attempt, method, path, response, error)
            if delay is None:
                return self._answer(response, path)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def search(self, q: str, k: int = 10, offset: int = 0, **filters: Any) -> SearchResults:
        """One page of hits (see NewsSearchClient.search)."""
        body = search_body(q, k, offset, filters)
        return SearchResults.from_json(await self._call("POST", "/search", json=body), body)

    async def next_page(self, page: SearchResults) -> SearchResults | None:
        """The page after `page`, or None when it was the last."""
        body = next_body(page)
        return None if body is None else SearchResults.from_json(await self._call("POST", "/search", json=body), body)

    async def pages(self, q: str, k: int = 10, max_pages: int = 10, **filters: Any) -> AsyncIterator[SearchResults]:
        """Successive pages of one query, until the results or `max_pages` run out."""
        page: SearchResults | None = await self.search(q, k, **filters)
        for _ in range(max_pages):
            if page is None or not page.hits:
                return
            yield page
            page = await self.next_page(page)

    async def article(self, article_id: str) -> Article:
        """One whole article; ArticleNotFound if the server has no such id."""
        return Article.from_json(await self._call("GET", article_path(article_id)))

    async def story(self, story_id: str) -> Story:
        """One story and its articles in time order (see NewsSearchClient.story)."""
        return Story.from_json(await self._call("GET", story_path(story_id)))

    async def similar(self, article_id: str, k: int = 10) -> Similar:
        """Related coverage of an article (see NewsSearchClient.similar)."""
        return Similar.from_json(await self._call("GET", article_path(article_id) + "/similar", params={"k": k}))

    async def stats(self) -> Stats:
        """Index version, counts, model, date range and sources."""
        return Stats.from_json(await self._call("GET", "/stats"))

    async def create_alert(self, query: str, **options: Any) -> dict[str, Any]:
        """Save an alert (see NewsSearchClient.create_alert)."""
        return await self._call("POST", "/alerts", json=alert_body(query, options))

    async def alerts(self) -> list[dict[str, Any]]:
        """This key's alerts, with their match counts."""
        return await self._call("GET", "/alerts")

    async def alert(self, alert_id: str) -> dict[str, Any]:
        """One alert with its newest matches and webhook deliveries."""
        return await self._call("GET", alert_path(alert_id))

    async def delete_alert(self, alert_id: str) -> None:
        """Remove an alert and its matches."""
        await self._call("DELETE", alert_path(alert_id))

    async def alert_feed(self, alert_id: str) -> str:
        """An alert's matches as Atom XML."""
        return await self._call("GET", alert_path(alert_id, feed=True))

    async def health(self) -> Health:
        """Whether the server is up, and the index version it serves."""
        return Health.from_json(await self._call("GET", "/healthz"))

    async def aclose(self) -> None:
        """Close the connection pool (one made under an ended event loop has nothing left to close)."""
        if self._loop_ended():
            self._http = httpx.AsyncClient(**self._options())
        await self._http.aclose()

    async def __aenter__(self) -> AsyncNewsSearchClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
