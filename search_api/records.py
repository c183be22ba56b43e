"""The records a search takes and gives, each defined once: the request and its options, the hit, the page of hits,
the served article. server/schemas.py derives the HTTP schemas from them and client/types.py the client's types, so a
field added here reaches the API, its docs and the client (standard library only: the client imports it)."""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields
from datetime import date, datetime
from typing import Any, Literal

from indexer.records import Article

Mode = Literal["hybrid", "dense", "keyword"]
Group = Literal["article", "story", "none"]


def described(default: Any = MISSING, description: str | None = None, *, factory: Any = MISSING,
              http_name: str | None | object = MISSING, **http: Any) -> Any:
    """A dataclass field with its description and its HTTP form: the name there (None: in-process only), and
    pydantic Field arguments (ge, le, json_schema_extra) for the request's HTTP forms."""
    meta: dict[str, Any] = {"description": description, "http": http}
    if http_name is not MISSING:
        meta["http_name"] = http_name
    return field(default=default, default_factory=factory, metadata=meta)


def description(f: Field) -> str | None:
    """A field's description, if it has one."""
    return f.metadata.get("description")


def http_options(record: type | None = None) -> dict[str, Field]:
    """The fields of a request (SearchRequest unless given) by their HTTP names; in-process-only fields left out."""
    return {name: f for f in fields(record or SearchRequest) if (name := f.metadata.get("http_name", f.name))}


@dataclass(frozen=True)
class SearchRequest:
    """One query and its options, in process (Searcher.search) and over HTTP (GET and POST /search, whose field names
    and limits are in each field's metadata); `until` is inclusive (a date means the whole day)."""

    q: str = described(description="natural-language query or keywords (1-1,000 characters by default: "
                       "NEWSEARCH_MAX_QUERY_CHARS)", json_schema_extra={"minLength": 1, "pattern": r"\S"})
    k: int = described(10, "hits per page (1-100 by default: NEWSEARCH_MAX_K)", json_schema_extra={"minimum": 1})
    offset: int = described(0, "hits to skip, for paging (offset + k: at most NEWSEARCH_CANDIDATES)",
                            json_schema_extra={"minimum": 0})
    group: Group = described("article", "one hit per article, one per story (articles reporting the same event), "
                             "or raw passages")
    mode: Mode | None = described(None, "retrieval mode; default hybrid")  # None: the settings' default mode
    since: date | datetime | None = described(None, "only articles published on or after (ISO date)")
    until: date | datetime | None = described(None, "only articles published on or before (ISO date: that whole day; "
                                              "a datetime: that instant)")
    sources: tuple[str, ...] = described((), "only these sources (repeatable)", http_name="source")
    collapse: bool = described(True, "show wire copies of one story as one hit")
    recency_half_life_days: float | None = described(None, "favour recent articles: score halves per this many days "
                                                     "of age")
    now: datetime | None = described(None, "reference time for recency (default: newest article)")
    # A Reranker is passed to Searcher in Python; HTTP has none to ask for.
    rerank: bool = described(False, "re-score the top settings.rerank_depth with the searcher's Reranker",
                             http_name=None)
    min_relevance: float | None = described(None, "relevance a hit needs to count as a match (0-1; default "
                                            "NEWSEARCH_MIN_RELEVANCE; docs/relevance.md)", ge=0, le=1,
                                            allow_inf_nan=False)


@dataclass
class Hit:
    """One ranked result: a passage and its article."""

    rank: int
    score: float
    passage_id: int
    text: str
    start: int = described(description="offset of the passage in the article body")
    end: int
    article_id: str
    title: str
    published: datetime | None
    source: str | None
    url: str | None
    matched_passages: int = described(0, "other passages of this article among the matches")
    duplicates: list[str] = described(description="ids of near-identical articles collapsed into this hit",
                                      factory=list)
    highlights: list[tuple[int, int]] = described(description="best-matching sentence(s), offsets into `text`",
                                                  factory=list)
    matched_terms: list[str] = described(description="query words found in the passage", factory=list)
    relevance: float = described(0.0, "calibrated probability (0-1) that the hit is relevant; below the floor it gets "
                                 "no highlight")
    # In process the story summary's dict (indexer/stories.py); the HTTP and client forms type it.
    story: dict[str, Any] | None = described(None, "with group=story: the story this hit stands for")


@dataclass
class SearchResponse:
    """Hits of one page and what produced them."""

    query: str
    index_version: str
    took_ms: float
    mode: str
    hits: list[Hit]
    total: int = described(description="ranked results whose relevance clears the floor (close matches)")
    ranked: int = described(0, "ranked results available for paging")
    no_close_match: bool = described(False, "no result clears the floor: the hits are the nearest, not matches")
    min_relevance: float = described(0.0, "the relevance floor applied")


@dataclass(frozen=True)
class PassageRef:
    """Where a passage sits in its article."""

    id: int
    ordinal: int
    start: int
    end: int


@dataclass(frozen=True, kw_only=True)
class ServedArticle(Article):
    """A whole article as GET /articles/{id} serves it: the stored article, its copies, its passages' offsets and
    the index version."""

    duplicates: list[str]
    passages: list[PassageRef]
    index_version: str
