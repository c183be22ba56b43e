"""The HTTP API: thin routes over the Searcher, validation, and one place mapping errors to HTTP.

The model and the index are loaded in `lifespan`, never at import; tests override `get_searcher`.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from indexer import __version__
from indexer.embed import Embedder
from indexer.errors import BadQuery, IndexNotFound, NewsearchError
from indexer.settings import Settings
from search_api import web
from search_api.auth import CHALLENGE, require_api_key
from search_api.ops import install_operations, served
from search_api.schemas import ArticleOut, ErrorOut, HealthOut, SearchBody, SearchOut, StatsOut
from search_api.searcher import Searcher, SearchRequest


class SearcherHolder:
    """The searcher being served; swapped whole so a request keeps the version it started with."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.embedder = embedder
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()

    def load(self) -> Searcher:
        """Open the published version and serve it."""
        self.embedder = self.embedder or Embedder.from_settings(self.settings)
        searcher = Searcher.open(self.settings.index_dir, self.settings, self.embedder)
        self.swap(searcher)
        return searcher

    def swap(self, searcher: Searcher) -> None:
        """Serve `searcher` from now on."""
        with self._lock:
            self._searcher = searcher

    @property
    def current(self) -> Searcher:
        """The searcher to use for one request."""
        searcher = self._searcher
        if searcher is None:
            raise IndexNotFound(f"no index is loaded from {self.settings.index_dir}; build one with "
                                f"`news-index build <corpus> --index-dir {self.settings.index_dir}` and restart")
        return searcher


def get_holder(request: Request) -> SearcherHolder:
    """The app's holder (set in lifespan)."""
    return request.app.state.holder


def get_searcher(holder: Annotated[SearcherHolder, Depends(get_holder)]) -> Searcher:
    """The searcher for this request."""
    return holder.current


SearcherDep = Annotated[Searcher, Depends(get_searcher)]
ERRORS = {422: {"model": ErrorOut}, 404: {"model": ErrorOut}, 503: {"model": ErrorOut}}


def _request(body: SearchBody) -> SearchRequest:
    return SearchRequest(q=body.q, k=body.k, offset=body.offset, group=body.group, mode=body.mode,
                         since=body.since, until=body.until, sources=tuple(body.source), collapse=body.collapse,
                         recency_half_life_days=body.recency_half_life_days, now=body.now)


def _response(request: Request, searcher: Searcher, body: SearchBody) -> dict:
    result = searcher.search(_request(body))
    request.app.state.metrics.observe_search(result.mode, result.took_ms / 1000)
    return {"query": result.query, "index_version": result.index_version, "took_ms": result.took_ms,
            "mode": result.mode, "total": result.total, "hits": [vars(h) for h in result.hits]}


def create_app(settings: Settings | None = None, holder: SearcherHolder | None = None) -> FastAPI:
    """The FastAPI application; pass a holder to serve an already opened searcher."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.holder = holder or SearcherHolder(settings)
        if app.state.holder._searcher is None:
            app.state.holder.load()
        yield
        app.state.holder.current.close()

    app = FastAPI(title="newsearch", version=__version__, lifespan=lifespan,
                  description="Semantic search over news: ranked passages for natural-language queries.")
    app.state.settings = settings
    install_error_handlers(app)
    install_operations(app, settings)
    app.include_router(web.router)
    keyed = [Depends(require_api_key)]

    @app.get("/search", response_model=SearchOut, responses=ERRORS, dependencies=keyed)
    def search_get(request: Request, searcher: SearcherDep, body: Annotated[SearchBody, Query()]) -> dict:
        """Ranked passages for a query (one per article unless group=none)."""
        return _response(request, searcher, body)

    @app.post("/search", response_model=SearchOut, responses=ERRORS, dependencies=keyed)
    def search_post(request: Request, searcher: SearcherDep, body: SearchBody) -> dict:
        """The same as GET /search, with the fields in a JSON body."""
        return _response(request, searcher, body)

    @app.get("/articles/{article_id:path}", response_model=ArticleOut, responses=ERRORS, dependencies=keyed)
    def article(searcher: SearcherDep, article_id: str) -> dict:
        """One article, whole, with the offsets of its passages."""
        return {**searcher.article(article_id), "index_version": searcher.name}

    @app.get("/healthz", response_model=HealthOut)
    def healthz(request: Request) -> dict:
        """200 while the process is up; /readyz tells whether it can answer searches."""
        searcher = served(request.app)
        return {"status": "ok", "index_version": searcher.name if searcher else None}

    @app.get("/stats", response_model=StatsOut, dependencies=keyed)
    def stats(searcher: SearcherDep) -> dict:
        """Index version, counts, model, dates and sources."""
        return searcher.stats()

    return app


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to a JSON body {detail, field} with a 4xx/5xx status, in one place."""

    @app.exception_handler(NewsearchError)
    async def newsearch_error(request: Request, exc: NewsearchError) -> JSONResponse:
        field = exc.field if isinstance(exc, BadQuery) else None
        headers = CHALLENGE if exc.http_status == 401 else None
        return JSONResponse({"detail": str(exc), "field": field}, status_code=exc.http_status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail), "field": None}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        loc = [str(part) for part in first.get("loc", ()) if part not in ("query", "body", "path", "header")]
        field = loc[0] if loc else None
        message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        return JSONResponse({"detail": message, "field": field}, status_code=422)
