"""Operations: GET /metrics and /readyz, one JSON access-log line per request, the request-body limit, CORS,
HEAD as GET.

All of it is installed on an app by `install_operations`; /metrics, /healthz and /readyz need no key.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import Headers
from starlette.routing import Match

from indexer.errors import IndexDamaged, IndexMismatch, NewsearchError, RequestTooLarge, StorageError
from search_api.errors import status_for
from search_api.server.prometheus import Metrics
from search_api.server.schemas import ErrorOut, HealthOut
from search_api.settings import ServerSettings

ACCESS_LOG = logging.getLogger("newsearch.access")
CORS_METHODS, CORS_HEADERS = ("GET", "POST", "DELETE"), ("Authorization", "X-API-Key", "Content-Type")
router = APIRouter(tags=["operations"])


def served(app: Any) -> Any:
    """The searcher the app serves now, or None before one is loaded."""
    holder = getattr(app.state, "holder", None)
    try:
        return holder.current if holder is not None else None
    except NewsearchError:
        return None


def access_line(method: str, path: str, status: int, ms: float, version: str | None) -> str:
    """One access-log record as a JSON line; never headers (API keys) nor the query string (user text)."""
    return json.dumps({"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "method": method, "path": path,
                       "status": status, "ms": round(ms, 2), "index_version": version})


class RequestObserver:
    """ASGI middleware: counts and times every request by route template, and writes its access-log line."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500
        self.metrics.watch_embedder(getattr(getattr(scope["app"].state, "holder", None), "embedder", None))

        async def observed_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        asked = dict(scope)  # as it came in: routing adds to the scope
        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - started
            # The route template (/articles/{article_id}), never the raw path: one series per route.
            route = getattr(scope.get("route"), "path", None) or route_template(asked)
            self.metrics.observe_request(route, scope["method"], status, seconds)
            searcher = served(scope["app"])
            ACCESS_LOG.info(access_line(scope["method"], scope["path"], status, seconds * 1000,
                                        searcher.name if searcher else None))


def route_template(scope: dict) -> str:
    """The path of the app's route or mount that matches a request, else "unmatched". FastAPI names only its
    API routes in the scope; this finds the others (/openapi.json, /docs, /redoc and the files they load)."""
    for route in scope["app"].router.routes:
        if route.matches(scope)[0] is Match.FULL:
            return route.path
    return "unmatched"


class HeadAsGet:
    """ASGI middleware: HEAD is answered as GET (HTTP requires it of GET routes; uptime probes send it). The server
    leaves the body out: it still holds the request's own scope, with the method HEAD."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413, whether or not it declares its length."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = (f"the request body is larger than {self.limit} bytes (NEWSEARCH_MAX_BODY_BYTES); "
                   "send a shorter query")
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            response = Response(json.dumps({"detail": message, "field": None}), status_for(RequestTooLarge),
                                media_type="application/json")
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> dict:
            nonlocal received
            event = await receive()
            received += len(event.get("body", b""))
            if received > self.limit:
                raise HTTPException(status_for(RequestTooLarge), message)  # FastAPI re-raises HTTPException from body parsing
            return event

        await self.app(scope, counted_receive, send)


class Cors(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the JSON error body every other refusal has."""

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code != 400:
            return answer
        refused = bytes(answer.body).decode().removeprefix("Disallowed CORS ")  # "origin, method, headers"
        headers = {k: v for k, v in answer.headers.items() if k not in ("content-length", "content-type")}
        return JSONResponse({"detail": f"CORS preflight refused ({refused}): this server allows the origins in "
                             f"NEWSEARCH_CORS_ORIGINS, the methods {', '.join(CORS_METHODS)} and the headers "
                             f"{', '.join(CORS_HEADERS)}", "field": None}, status_code=400, headers=headers)


def configure_access_log() -> None:
    """JSON access lines to stderr, once per process, unless the host application configured the logger."""
    if not ACCESS_LOG.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        ACCESS_LOG.addHandler(handler)
        ACCESS_LOG.setLevel(logging.INFO)
        ACCESS_LOG.propagate = False


def install_operations(app: FastAPI, settings: ServerSettings) -> None:
    """Metrics, access log, body limit, CORS (when NEWSEARCH_CORS_ORIGINS is set) and the ops routes."""
    app.state.metrics = Metrics(lambda: served(app), lambda: getattr(getattr(app.state, "holder", None), "fault", None))
    configure_access_log()
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(HeadAsGet)
    if settings.cors_origins:
        app.add_middleware(Cors, allow_origins=list(settings.cors_origins), allow_methods=list(CORS_METHODS),
                           allow_headers=list(CORS_HEADERS))
    app.add_middleware(RequestObserver, metrics=app.state.metrics)  # added last: outermost, sees every answer
    app.include_router(router)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format); open like /healthz, it holds no article text."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/readyz", response_model=HealthOut, responses={503: {"model": ErrorOut}})
def readyz(request: Request) -> dict:
    """200 when an index is loaded (with its model) and its database answers; else 503."""
    holder = request.app.state.holder
    searcher = holder.current  # IndexNotFound (503) when none is loaded
    if holder.fault:
        raise StorageError(f"{holder.fault}; rebuild or restore it: the server loads the published version by itself")
    try:
        searcher.version.text.check()
    except IndexDamaged as exc:
        raise IndexMismatch(f"the served index {searcher.name} cannot be read ({exc.reason}); rebuild it with "
                            "`news-index build` and restart the server") from exc
    return {"status": "ready", "index_version": searcher.name}
