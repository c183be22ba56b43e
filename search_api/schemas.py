"""Pydantic models of the HTTP boundary: request fields and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SearchBody(BaseModel):
    """POST /search body: the same fields as the GET query string."""

    # A misspelt filter (`sorce=`) must be an error, not a silently unfiltered result.
    model_config = ConfigDict(extra="forbid")

    q: str = Field(description="natural-language query or keywords (1-1,000 characters)")
    k: int = Field(10, description="hits per page (1-100)")
    offset: int = Field(0, description="hits to skip, for paging")
    group: Literal["article", "none"] = Field("article", description="one hit per article, or raw passages")
    mode: Literal["hybrid", "dense", "keyword"] | None = Field(None, description="retrieval mode; default hybrid")
    since: date | datetime | None = Field(None, description="only articles published on or after (ISO date)")
    until: date | datetime | None = Field(None, description="only articles published on or before (ISO date: that whole day; a datetime: that instant)")
    source: list[str] = Field(default_factory=list, description="only these sources (repeatable)")
    collapse: bool = Field(True, description="show wire copies of one story as one hit")
    recency_half_life_days: float | None = Field(None, description="favour recent articles: score halves per this many days of age")
    now: datetime | None = Field(None, description="reference time for recency (default: newest article)")
    min_relevance: float | None = Field(None, ge=0, le=1, description="relevance a hit needs to count as a match "
                                        "(0-1; default NEWSEARCH_MIN_RELEVANCE; docs/relevance.md)")


class HitOut(BaseModel):
    """One ranked hit."""

    rank: int
    score: float
    passage_id: int
    text: str
    start: int = Field(description="offset of the passage in the article body")
    end: int
    article_id: str
    title: str
    published: datetime | None
    source: str | None
    url: str | None
    matched_passages: int = Field(description="other passages of this article among the matches")
    duplicates: list[str] = Field(description="ids of near-identical articles collapsed into this hit")
    highlights: list[tuple[int, int]] = Field(description="best-matching sentence(s), offsets into `text`")
    matched_terms: list[str] = Field(description="query words found in the passage")
    relevance: float = Field(description="calibrated probability (0-1) that the hit is relevant; below the floor "
                             "it gets no highlight")


class SearchOut(BaseModel):
    """A page of results."""

    query: str
    index_version: str
    took_ms: float
    mode: str
    total: int = Field(description="ranked results whose relevance clears the floor (close matches)")
    ranked: int = Field(description="ranked results available for paging")
    no_close_match: bool = Field(description="no result clears the floor: the hits are the nearest, not matches")
    min_relevance: float = Field(description="the relevance floor applied")
    hits: list[HitOut]


class PassageRef(BaseModel):
    """Where a passage sits in its article."""

    id: int
    ordinal: int
    start: int
    end: int


class ArticleOut(BaseModel):
    """A whole article."""

    id: str
    title: str
    body: str
    published: datetime | None
    source: str | None
    url: str | None
    content_hash: str
    meta: dict
    duplicates: list[str]
    passages: list[PassageRef]
    index_version: str


class ErrorOut(BaseModel):
    """Every error response: what went wrong, and the field at fault if any."""

    detail: str
    field: str | None = None


class HealthOut(BaseModel):
    """Liveness and the version being served."""

    status: str
    index_version: str | None


class StatsOut(BaseModel):
    """What is indexed."""

    index_version: str
    created: str
    articles: int
    passages: int
    duplicate_groups: int
    model: dict
    chunking: dict
    faiss: dict
    oldest: datetime | None
    newest: datetime | None
    sources: dict[str, int]
