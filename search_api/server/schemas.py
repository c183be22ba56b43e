"""Pydantic models of the HTTP boundary: request fields and response bodies."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from indexer.sources import lone_surrogate

_NUMBER = re.compile(r"\s*[-+]?[\d.]+(e[-+]?\d+)?\s*", re.IGNORECASE)


def _text(value: str) -> str:
    """A request's text, refused if it holds a lone UTF-16 surrogate (which nothing downstream can encode)."""
    if lone_surrogate(value):
        raise ValueError("holds a lone UTF-16 surrogate (an escape such as \\ud800 without its pair)")
    return value


Text = Annotated[str, AfterValidator(_text)]
# Stored dates are naive UTC: JSON Schema's date-time would promise an offset the server never writes.
NaiveUTC = Annotated[datetime, WithJsonSchema({"type": "string", "description": "UTC date and time without an "
                                               "offset, e.g. 2020-01-02T03:04:05", "example": "2020-01-02T03:04:05"})]


class SearchBody(BaseModel):
    """POST /search body: the same fields as the GET query string."""

    # A misspelt filter (`sorce=`) must be an error, not a silently unfiltered result.
    model_config = ConfigDict(extra="forbid")
    # JSON has numbers and booleans of its own: "5" or true for k is a client's mistake, not a 5 or a 1.
    # A query string has only text, so SearchQuery reads "5" as 5.
    typed_json: ClassVar[bool] = True

    q: Text = Field(description="natural-language query or keywords (1-1,000 characters by default: "
                    "NEWSEARCH_MAX_QUERY_CHARS)", json_schema_extra={"minLength": 1, "pattern": r"\S"})
    k: int = Field(10, description="hits per page (1-100 by default: NEWSEARCH_MAX_K)",
                   json_schema_extra={"minimum": 1})
    offset: int = Field(0, description="hits to skip, for paging (offset + k: at most NEWSEARCH_CANDIDATES)",
                        json_schema_extra={"minimum": 0})
    group: Literal["article", "story", "none"] = Field("article", description="one hit per article, one per story "
                                                      "(articles reporting the same event), or raw passages")
    mode: Literal["hybrid", "dense", "keyword"] | None = Field(None, description="retrieval mode; default hybrid")
    since: date | datetime | None = Field(None, description="only articles published on or after (ISO date)")
    until: date | datetime | None = Field(None, description="only articles published on or before (ISO date: that whole day; a datetime: that instant)")
    source: list[Text] = Field(default_factory=list, description="only these sources (repeatable)")
    collapse: bool = Field(True, description="show wire copies of one story as one hit")
    recency_half_life_days: float | None = Field(None, description="favour recent articles: score halves per this many days of age")
    now: datetime | None = Field(None, description="reference time for recency (default: newest article)")
    min_relevance: float | None = Field(None, ge=0, le=1, description="relevance a hit needs to count as a match "
                                        "(0-1; default NEWSEARCH_MIN_RELEVANCE; docs/relevance.md)")

    @field_validator("since", "until", "now", mode="before")
    @classmethod
    def _iso_only(cls, value: Any) -> Any:
        # Pydantic would read 2020 or "20200101" as seconds since 1970.
        if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
            raise ValueError("give an ISO 8601 date or date-time (2020-01-31 or 2020-01-31T12:00:00), not a number")
        return value

    @field_validator("k", "offset", mode="before")
    @classmethod
    def _integer(cls, value: Any) -> Any:
        if isinstance(value, bool) or (cls.typed_json and not isinstance(value, int)):
            raise ValueError(f"must be an integer, not {type(value).__name__} {value!r}"[:120])
        return value

    @field_validator("collapse", mode="before")
    @classmethod
    def _boolean(cls, value: Any) -> Any:
        if cls.typed_json and not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}"[:120])
        return value

    @field_validator("recency_half_life_days", "min_relevance", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or (cls.typed_json and value is not None and not isinstance(value, (int, float))):
            raise ValueError(f"must be a number, not {value!r}"[:120])
        return value


class SearchQuery(SearchBody):
    """GET /search query string: SearchBody's fields, read from text."""

    typed_json: ClassVar[bool] = False


class StorySummaryOut(BaseModel):
    """A story: articles reporting the same event, across sources and days (docs/stories.md)."""

    id: str = Field(description="story id (the id of the article that started it); GET /stories/{id}")
    articles: int = Field(description="articles in the story")
    first_published: NaiveUTC | None
    last_published: NaiveUTC | None
    sources: list[str]
    headline: str = Field(description="the title of the story's first article")


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
    published: NaiveUTC | None
    source: str | None
    url: str | None
    matched_passages: int = Field(description="other passages of this article among the matches")
    duplicates: list[str] = Field(description="ids of near-identical articles collapsed into this hit")
    highlights: list[tuple[int, int]] = Field(description="best-matching sentence(s), offsets into `text`")
    matched_terms: list[str] = Field(description="query words found in the passage")
    relevance: float = Field(description="calibrated probability (0-1) that the hit is relevant; below the floor "
                             "it gets no highlight")
    story: StorySummaryOut | None = Field(None, description="with group=story: the story this hit stands for")


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
    published: NaiveUTC | None
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
    oldest: NaiveUTC | None
    newest: NaiveUTC | None
    sources: dict[str, int]


class TimelineEntryOut(BaseModel):
    """One article of a story's timeline."""

    id: str
    title: str
    published: NaiveUTC | None
    source: str | None
    url: str | None
    dup_group: str | None = Field(description="id of its wire-copy group, if it has copies")


class StoryOut(StorySummaryOut):
    """A story and its articles in time order (GET /stories/{id})."""

    timeline: list[TimelineEntryOut]
    index_version: str


class SimilarHitOut(BaseModel):
    """An article related to the one asked about."""

    article_id: str
    title: str
    published: NaiveUTC | None
    source: str | None
    url: str | None
    score: float = Field(description="cosine of its best passage to the asked article's vector")
    story_id: str
    same_story: bool = Field(description="in the asked article's own story (listed after the others)")


class SimilarOut(BaseModel):
    """Related coverage of one article (GET /articles/{id}/similar): nearest articles outside its story first,
    then the rest of its story; its wire copies left out."""

    article_id: str
    story_id: str
    index_version: str
    hits: list[SimilarHitOut]
