"""The HTTP API: thin routes over the Searcher, validation, and one place mapping errors to HTTP.

The model and the index are loaded in `lifespan`, never at import; tests override `get_searcher`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.routing import Match

from indexer import __version__
from indexer.errors import BadQuery, IndexDamaged, NewsearchError, StorageError, Unauthorized
from search_api.alerts.worker import AlertWorker
from search_api.errors import status_of
from search_api.holder import SearcherHolder
from search_api.searcher import Searcher
from search_api.server import web
from search_api.server.admin import reload_quietly
from search_api.server.admin import router as admin_router
from search_api.server.alerts import router as alerts_router
from search_api.server.auth import CHALLENGE, require_api_key
from search_api.server.jobs import JobRunner
from search_api.server.ops import install_operations, served
from search_api.server.schemas import (
    ArticleOut,
    ErrorOut,
    HealthOut,
    SearchBody,
    SearchOut,
    SearchQuery,
    StatsOut,
    search_request,
)
from search_api.server.stories import router as stories_router
from search_api.server.strict import only_parameters, single_values, unique_keys, utf8_text
from search_api.settings import ServerSettings


# The dependencies are `async def`: they never block, and FastAPI runs a plain `def` dependency in the thread
# pool, one hand-off per dependency per request; only the route itself (the search) runs in a thread.
async def get_holder(request: Request) -> SearcherHolder:
    """The app's holder (set in lifespan)."""
    return request.app.state.holder


async def get_searcher(holder: Annotated[SearcherHolder, Depends(get_holder)]) -> AsyncIterator[Searcher]:
    """The searcher for this request, kept open until the request is done even if a swap happens."""
    with holder.use() as searcher:
        yield searcher


SearcherDep = Annotated[Searcher, Depends(get_searcher)]
ERRORS = {code: {"model": ErrorOut, "description": text} for code, text in (
    (401, "no valid API key (only when NEWSEARCH_API_KEYS is set)"), (404, "no such article"),
    (422, "a field is missing, malformed or out of range; `field` names it"),
    (503, "no index loaded, or the served index cannot be read"))}
# Answered by search_api/server/guard.py before the app sees the request, on every route, then the connection closes.
GUARD_ERRORS = {code: {"model": ErrorOut, "description": text} for code, text in (
    (408, "the headers (NEWSEARCH_HEADER_TIMEOUT) or the body (NEWSEARCH_BODY_TIMEOUT) did not arrive in time"),
    (431, "request line and headers over NEWSEARCH_MAX_HEADER_BYTES"))}
BODY_ERRORS = {**ERRORS, 413: {"model": ErrorOut, "description": "body over NEWSEARCH_MAX_BODY_BYTES"}}


def _response(request: Request, searcher: Searcher, body: SearchBody) -> dict:
    result = searcher.search(search_request(body))
    request.app.state.metrics.observe_search(result.mode, result.took_ms / 1000)
    return {**vars(result), "hits": [vars(h) for h in result.hits]}


def lifespan(settings: ServerSettings, holder: SearcherHolder | None):
    """The app's startup and shutdown: load the index, then watch it, evaluate alerts and run jobs until the end."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        app.state.holder = holder or SearcherHolder(settings)
        if not app.state.holder.loaded:
            app.state.holder.load()
        app.state.holder.start_watching()
        app.state.alerts = AlertWorker(settings, app.state.holder)  # evaluates what updates staged (docs/alerts.md)
        app.state.jobs = JobRunner(settings, on_done=lambda job: (reload_quietly(app.state.holder),
                                                                  app.state.alerts.wake()))
        app.state.alerts.start()
        yield
        app.state.alerts.stop()
        app.state.holder.close()

    return run


def create_app(settings: ServerSettings | None = None, holder: SearcherHolder | None = None) -> FastAPI:
    """The FastAPI application; pass a holder to serve an already opened searcher."""
    settings = settings or ServerSettings.from_env()
    # /docs and /redoc with Swagger UI and ReDoc served from fastapi-offline's files, not a CDN: they work offline.
    # No redirect to the route without a trailing slash: a client's typo gets a JSON 404 that names the route.
    app = FastAPIOffline(title="newsearch", version=__version__, lifespan=lifespan(settings, holder),
                         responses=GUARD_ERRORS, dependencies=[Depends(utf8_text)], redirect_slashes=False,
                         description="Semantic search over news: ranked passages for natural-language queries.")
    app.state.settings = settings
    install_error_handlers(app)
    document_limits(app, settings)
    install_operations(app, settings)
    app.include_router(web.router)
    app.include_router(admin_router)
    app.include_router(stories_router)
    app.include_router(alerts_router)
    keyed = [Depends(require_api_key)]

    @app.get("/search", response_model=SearchOut, responses=ERRORS, dependencies=[*keyed, Depends(single_values)])
    def search_get(request: Request, searcher: SearcherDep, body: Annotated[SearchQuery, Query()]) -> dict:
        """Ranked passages for a query (one per article unless group=none)."""
        return _response(request, searcher, body)

    @app.post("/search", response_model=SearchOut, responses=BODY_ERRORS, dependencies=[*keyed, Depends(unique_keys)])
    def search_post(request: Request, searcher: SearcherDep, body: SearchBody) -> dict:
        """The same as GET /search, with the fields in a JSON body."""
        return _response(request, searcher, body)

    @app.options("/search", status_code=204, response_class=Response, include_in_schema=False)
    def search_options() -> Response:
        """The methods /search answers (a CORS preflight is answered by the CORS middleware before this)."""
        return Response(status_code=204, headers={"Allow": "GET, POST, OPTIONS"})

    @app.get("/articles/{article_id:path}", response_model=ArticleOut, responses=ERRORS,
             dependencies=[*keyed, Depends(only_parameters())])
    def article(searcher: SearcherDep, article_id: str) -> dict:
        """One article, whole, with the offsets of its passages."""
        return {**searcher.article(article_id), "index_version": searcher.name}

    @app.get("/healthz", response_model=HealthOut)
    def healthz(request: Request) -> dict:
        """200 while the process is up; /readyz tells whether it can answer searches."""
        searcher = served(request.app)
        return {"status": "ok", "index_version": searcher.name if searcher else None}

    @app.get("/stats", response_model=StatsOut, dependencies=keyed, responses={c: ERRORS[c] for c in (401, 503)})
    def stats(searcher: SearcherDep) -> dict:
        """Index version, counts, model, dates and sources."""
        return searcher.stats()

    return app


def document_limits(app: FastAPI, settings: ServerSettings) -> None:
    """Write this server's limits (NEWSEARCH_MAX_K, _MAX_QUERY_CHARS, _CANDIDATES) into its OpenAPI schema."""
    limits = {"q": {"maxLength": settings.max_query_chars}, "k": {"maximum": settings.max_k},
              "offset": {"maximum": settings.candidates - 1}}
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            body = schema["components"]["schemas"]["SearchBody"]["properties"]
            query = {p["name"]: p["schema"] for p in schema["paths"]["/search"]["get"]["parameters"]}
            for name, limit in limits.items():
                body[name].update(limit)
                query[name].update(limit)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _without_slash(request: Request) -> str | None:
    """The request's path without its trailing slash, when a route answers that path."""
    path = request.url.path
    if len(path) < 2 or not path.endswith("/"):
        return None
    scope = {**request.scope, "path": path.rstrip("/") or "/"}
    return scope["path"] if any(route.matches(scope)[0] != Match.NONE for route in request.app.routes) else None


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to a JSON body {detail, field} with a 4xx/5xx status, in one place."""

    @app.exception_handler(NewsearchError)
    async def newsearch_error(request: Request, exc: NewsearchError) -> JSONResponse:
        field = exc.field if isinstance(exc, BadQuery) else None
        headers = CHALLENGE if isinstance(exc, Unauthorized) else None
        return JSONResponse({"detail": str(exc), "field": field}, status_code=status_of(exc), headers=headers)

    @app.exception_handler(IndexDamaged)
    async def storage_error(request: Request, exc: IndexDamaged) -> JSONResponse:
        # The served version's files were damaged (or removed) after it was opened and verified.
        holder = request.app.state.holder
        name = served(request.app).name if served(request.app) else "?"
        holder.mark_damaged(name, exc.reason)
        request.app.state.metrics.storage_errors.inc()
        error = StorageError(f"the served index {name} cannot be read ({exc.reason}); rebuild it with `news-index "
                             "build` (or restore its files): the server loads the published version by itself")
        return await newsearch_error(request, error)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's answer to a body json.loads refuses: every bad input is a 422 here
            return JSONResponse({"detail": "the request body is not JSON this server can read (send UTF-8 JSON "
                                 "with integers under 4,300 digits)", "field": None}, status_code=422)
        detail = str(exc.detail)
        if exc.status_code == 404 and (route := _without_slash(request)):
            detail = f"no route {request.url.path}: routes take no trailing slash, try {route}"
        return JSONResponse({"detail": detail, "field": None}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        # loc is ("query"|"body", field, ...) or, for a body that is not JSON, ("body", character offset).
        loc = list(first.get("loc", ()))
        loc = loc[1:] if loc and loc[0] in ("query", "body", "path", "header") else loc  # a field may be named "query"
        field = loc[0] if loc and isinstance(loc[0], str) and loc[0] else None  # "?=x" names no field
        message = str(first.get("msg"))
        if first.get("type") == "extra_forbidden":
            message = "unknown parameter; see /docs for the accepted fields"
        elif not field and first.get("type") in ("model_attributes_type", "dict_type"):  # FastAPI read no JSON
            message = "the body must be a JSON object, sent with Content-Type: application/json"
        elif first.get("type") == "value_error":  # our validators' own words, without pydantic's prefix
            message = str(first["ctx"]["error"])
        elif (first.get("ctx") or {}).get("error"):
            message = f"{message} ({first['ctx']['error']})"
        if field:
            message = f"{field}: {message}"
        return JSONResponse({"detail": message, "field": field}, status_code=422)
