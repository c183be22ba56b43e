"""Alert routes: save a search, list, read and delete saved searches, and read an alert's matches as an Atom feed.

They take the keys the search routes take (NEWSEARCH_API_KEYS; open when none is set) or the admin key, which sees
every alert; any other key sees only the alerts it created (another key's alert is a 404).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from feedgen.feed import FeedGenerator
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from indexer.alerts_store import Alert, AlertStore, Delivery, Match
from indexer.errors import BadQuery
from indexer.sources import control_as_spaces
from search_api.alerts.batch import request_of
from search_api.errors import Forbidden
from search_api.records import Mode
from search_api.server.auth import key_matches, presented_key, require_api_key
from search_api.server.schemas import ErrorOut, Text, iso_only
from search_api.server.strict import only_parameters, unique_keys

ALERT_ERRORS = {code: {"model": ErrorOut, "description": text} for code, text in (
    (401, "no valid API key (only when NEWSEARCH_API_KEYS is set)"), (403, "a wrong X-Admin-Key"),
    (404, "no such alert for this key"), (413, "body over NEWSEARCH_MAX_BODY_BYTES"),
    (422, "a field is missing, malformed or out of range; `field` names it"),
    (503, "no index loaded, or the alerts file cannot be read or written"))}


async def alert_owner(request: Request, key: Annotated[str | None, Depends(presented_key)],
                      x_admin_key: Annotated[str | None, Header()] = None) -> str | None:
    """Whose alerts a request sees: None for the admin key (all), a fingerprint of its API key, "" on an open server."""
    settings = request.app.state.settings
    if settings.admin_key and x_admin_key is not None:
        if not key_matches(x_admin_key, (settings.admin_key,)):
            raise Forbidden("the admin key sent does not match NEWSEARCH_ADMIN_KEY")
        return None
    if settings.admin_key and key is not None and key_matches(key, (settings.admin_key,)):
        return None
    await require_api_key(request, key)
    return hashlib.sha256(key.encode()).hexdigest()[:16] if settings.api_keys and key else ""


Owner = Annotated[str | None, Depends(alert_owner)]
router = APIRouter(prefix="/alerts", tags=["alerts"], responses=ALERT_ERRORS, dependencies=[Depends(only_parameters())])


class AlertBody(BaseModel):
    """POST /alerts: a saved search, with the filters of /search."""

    model_config = ConfigDict(extra="forbid")

    query: Text = Field(description="the query, as /search's q", json_schema_extra={"minLength": 1, "pattern": r"\S"})
    mode: Mode | None = Field(None, description="retrieval mode; default hybrid")
    since: date | datetime | None = Field(None, description="only articles published on or after (ISO date)")
    until: date | datetime | None = Field(None, description="only articles published on or before (ISO date)")
    source: list[Text] = Field(default_factory=list, description="only these sources")
    min_relevance: float | None = Field(None, ge=0, le=1, allow_inf_nan=False, description="relevance a new article "
                                        "needs to match (0-1; default NEWSEARCH_MIN_RELEVANCE)")
    webhook: AnyHttpUrl | None = Field(None, description="http(s) URL that gets a POST of each batch of matches")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_only(cls, value: Any) -> Any:
        return iso_only(value)

    @field_validator("webhook", mode="before")
    @classmethod
    def _short_url(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) > 2000:
            raise ValueError("must be at most 2,000 characters")
        return value


class AlertOut(BaseModel):
    """A saved search and how many articles it matched."""

    id: str
    query: str
    mode: str | None
    since: str | None
    until: str | None
    source: list[str]
    min_relevance: float | None
    webhook: str | None
    created: float = Field(description="Unix time")
    matches: int = Field(description="articles matched so far")


class AlertDetailOut(AlertOut):
    """An alert with its newest matches and webhook deliveries."""

    recent: list[Match] = Field(description="newest matches first (at most 20); the feed has more")
    deliveries: list[Delivery] = Field(description="newest webhook POSTs first (at most 10)")


def store_of(request: Request) -> Iterator[AlertStore]:
    """The index folder's alerts file for this request (a plain `def`: opening it touches the disk)."""
    store = AlertStore(request.app.state.settings.index_dir)
    try:
        yield store
    finally:
        store.close()


StoreDep = Annotated[AlertStore, Depends(store_of)]


def _out(store: AlertStore, alert: Alert) -> dict[str, Any]:
    view = alert.view()
    return {**view, "source": view.pop("sources"), "matches": store.match_count(alert.id)}


@router.post("", response_model=AlertOut, status_code=201, dependencies=[Depends(unique_keys)])
def create(request: Request, store: StoreDep, owner: Owner, body: AlertBody) -> dict:
    """Save a search; each later update's new and changed articles are matched against it."""
    alert = Alert("", body.query, "admin" if owner is None else owner, 0.0, body.mode, _iso(body.since), _iso(body.until), tuple(body.source),
                  body.min_relevance, str(body.webhook) if body.webhook else None)
    with request.app.state.holder.use() as searcher:
        try:
            searcher.validate(request_of(alert))  # the checks /search makes (query length, since before until, ...)
        except BadQuery as exc:
            if exc.field != "q":
                raise
            raise BadQuery(f"query: {exc}".replace(": q ", ": the query ", 1), "query") from None
    saved = store.create(alert.query, alert.owner, alert.mode, alert.since, alert.until, alert.sources,
                         alert.min_relevance, alert.webhook)
    return _out(store, saved)


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@router.get("", response_model=list[AlertOut])
def list_alerts(store: StoreDep, owner: Owner) -> list[dict]:
    """This key's alerts (every alert for the admin key), oldest first."""
    return [_out(store, a) for a in store.alerts(owner)]


@router.get("/{alert_id}", response_model=AlertDetailOut)
def get_alert(store: StoreDep, owner: Owner, alert_id: str) -> dict:
    """One alert with its newest matches and webhook deliveries."""
    alert = store.get(alert_id, owner)
    return {**_out(store, alert), "recent": store.matches(alert_id, 20), "deliveries": store.deliveries(alert_id)}


@router.delete("/{alert_id}", status_code=204, response_class=Response)
def delete_alert(store: StoreDep, owner: Owner, alert_id: str) -> Response:
    """Remove an alert, its matches and its pending webhook deliveries."""
    store.delete(alert_id, owner)
    return Response(status_code=204)


@router.get("/{alert_id}/feed.atom", response_class=Response,
            responses={200: {"content": {"application/atom+xml": {}}, "description": "Atom 1.0 feed"}})
def feed(request: Request, store: StoreDep, owner: Owner, alert_id: str) -> Response:
    """The alert's newest matches (at most 100) as an Atom feed."""
    alert = store.get(alert_id, owner)
    return Response(atom(alert, store.matches(alert_id, 100), str(request.url)), media_type="application/atom+xml")


def _link(url: str | None) -> str | None:
    """An article's URL as a feed may link it: http(s) only (never `javascript:`), without characters XML cannot
    hold (an indexed URL is the corpus' text, not checked as a URL)."""
    if not url or control_as_spaces(url) != url or any(c.isspace() for c in url):
        return None
    try:
        return url if urlsplit(url).scheme.lower() in ("http", "https") else None
    except ValueError:  # "http://[oops/x": not a URL urllib can read
        return None


def atom(alert: Alert, matches: list[Match], self_url: str) -> bytes:
    """An Atom 1.0 document of an alert's matches, newest first. Article text may hold characters XML 1.0 cannot
    (U+FFFF, control characters): they read as spaces, as they do in queries."""
    fg = FeedGenerator()
    fg.id(f"urn:newsearch:alert:{alert.id}")
    fg.title(control_as_spaces(f"newsearch alert: {alert.query}"[:200]))
    fg.link(href=self_url, rel="self")
    fg.updated(_utc(max([m.matched for m in matches], default=alert.created)))
    fg.generator("newsearch")
    fg.author({"name": "newsearch"})  # Atom wants an author on the feed when its entries have none
    for m in matches:
        entry = fg.add_entry(order="append")
        entry.id(f"urn:newsearch:match:{alert.id}:{quote(m.version, safe='')}:{quote(m.article_id, safe='')}")
        entry.title(control_as_spaces(m.title or m.article_id))
        entry.link(href=_link(m.url) or f"{self_url.split('/alerts/')[0]}/articles/{quote(m.article_id, safe='')}")
        entry.summary(control_as_spaces(m.passage))
        entry.updated(_utc(m.matched))
        if m.published:
            entry.published(datetime.fromisoformat(m.published).replace(tzinfo=UTC))
        entry.category(term=f"relevance:{m.relevance:.4f}")
        entry.category(term=f"version:{m.version}")
    return fg.atom_str(pretty=True)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
