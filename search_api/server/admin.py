"""Admin routes: reload the published version, start a re-index job, follow its progress.

They need the key of NEWSEARCH_ADMIN_KEY in the `X-Admin-Key` header; with no key configured they
answer 404 as if they did not exist (a missing key is 401, a wrong one 403).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from indexer.errors import NewsearchError
from search_api.errors import JobNotFound
from search_api.holder import SearcherHolder
from search_api.server.auth import require_admin_key
from search_api.server.schemas import ErrorOut
from search_api.server.strict import unique_keys

log = logging.getLogger("newsearch.admin")


ADMIN_ERRORS = {code: {"model": ErrorOut, "description": text} for code, text in (
    (401, "no X-Admin-Key header"), (403, "a wrong X-Admin-Key"),
    (404, "no NEWSEARCH_ADMIN_KEY is set (the admin routes are hidden), or no such job"),
    (409, "another job or writer is busy with the index"), (413, "body over NEWSEARCH_MAX_BODY_BYTES"),
    (422, "a field is missing or malformed; `field` names it"),
    (503, "the index folder cannot be written, or the published version cannot be loaded"))}
router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin_key)],
                   responses=ADMIN_ERRORS)


class ReloadOut(BaseModel):
    """What POST /admin/reload did."""

    previous: str | None = Field(description="version served before")
    current: str = Field(description="version served now (the published one)")
    changed: bool


class ReindexBody(BaseModel):
    """POST /admin/reindex: what to read."""

    model_config = ConfigDict(extra="forbid")  # a misspelt "delete-missing" must not be ignored

    paths: list[str] = Field(default_factory=list, description="corpus files or folders on the server "
                             "(default: NEWSEARCH_REINDEX_PATHS)")
    # Strict: the one destructive flag is JSON's true or false, never "yes" or 1 coerced to true.
    delete_missing: StrictBool = Field(False, description="drop indexed articles that are not in these paths")


class JobOut(BaseModel):
    """A re-index job."""

    id: str
    kind: str
    state: str = Field(description="running, succeeded or failed")
    paths: list[str]
    delete_missing: bool
    created: float = Field(description="Unix time")
    finished: float | None
    progress: dict[str, Any] = Field(description="stage (reading, chunking, embedding, writing, done), done, total")
    result: dict[str, Any] | None = Field(description="version published and added/changed/deleted/unchanged counts")
    error: str | None


def reload_quietly(holder: SearcherHolder) -> None:
    """Swap to the published version after a job; a failure is logged and the old version kept."""
    try:
        holder.reload()
    except NewsearchError as exc:
        log.warning("cannot load the version the job published, still serving the old one: %s", exc)


@router.post("/reload", response_model=ReloadOut)
def reload(request: Request) -> dict:
    """Serve the published version now (the server also checks every NEWSEARCH_RELOAD_INTERVAL seconds)."""
    return request.app.state.holder.reload()


@router.post("/reindex", response_model=JobOut, status_code=202, dependencies=[Depends(unique_keys)])
def reindex(request: Request, body: ReindexBody) -> dict:
    """Start `news-index update` in the background (409 while another job runs)."""
    return request.app.state.jobs.start(body.paths, body.delete_missing).view()


@router.get("/jobs/{job_id}", response_model=JobOut)
def job(request: Request, job_id: str) -> dict:
    """A job's state and progress."""
    found = request.app.state.jobs.get(job_id)
    if found is None:
        raise JobNotFound(f"no job {job_id!r} on this server (jobs are kept in memory until it restarts)")
    return found.view()
