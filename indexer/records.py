"""Records that flow through the pipeline: RawArticle -> Article -> Passage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RawArticle:
    """An article as read from a corpus file, before cleaning."""

    id: str
    title: str
    body: str
    published: datetime | None
    source: str | None
    url: str | None
    origin: str  # "path:line" where it was read, for error messages
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Article:
    """A cleaned article: the unit of identity, dates and sources."""

    id: str
    title: str
    body: str
    published: datetime | None
    source: str | None
    url: str | None
    content_hash: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Passage:
    """A chunk of an article body; `id` is its FAISS id, `start`/`end` index into the body."""

    id: int
    article_id: str
    ordinal: int
    text: str
    start: int
    end: int
    tokens: int = 0
