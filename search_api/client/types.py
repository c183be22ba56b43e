"""Typed answers of the Python client: hits, pages of results, articles, stats; as DataFrames and HTML.

Plain dataclasses decoded from the server's JSON; fields the server adds later land in `extra`.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass, field, fields, is_dataclass
from datetime import datetime
from functools import cache
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from indexer.errors import ServerError
from search_api import records

NO_CLOSE_MATCH = "No close matches; nearest shown"  # as the web page says it


@cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _convert(kind: Any, value: Any) -> Any:
    """A JSON value as the declared type reads it: ISO text to datetime, lists to tuples, objects to records."""
    if value is None:
        return None
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, UnionType):
        return _convert(next(a for a in args if a is not type(None)), value)
    if kind is datetime:
        return datetime.fromisoformat(value)
    if is_dataclass(kind):
        return decode(kind, value)
    if origin is list:
        return [_convert(args[0], v) for v in value]
    if origin is tuple:
        return tuple(_convert(a, v) for a, v in zip(args, value))
    return value


def decode(cls: type, data: dict[str, Any]) -> Any:
    """An instance of dataclass `cls` from JSON, each field read as its type says; unknown keys kept in `extra`.
    ServerError when the JSON is not that record (the client's base_url reaches something else)."""
    try:
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: _convert(_hints(cls)[k], v) for k, v in data.items() if k in names}
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ServerError(f"the answer is not newsearch's {cls.__name__} ({type(exc).__name__}: {exc})"[:300]
                          + "; check that the client's base_url points at `news-search serve`") from None


def encode(value: Any) -> Any:
    """JSON-ready form of a decoded value: the inverse of `decode` (extra keys included)."""
    if hasattr(value, "__dataclass_fields__"):
        out = {f.name: encode(getattr(value, f.name)) for f in fields(value) if f.name != "extra"}
        return {**out, **getattr(value, "extra", {})}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def marked_html(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` HTML-escaped, with each (start, end) span wrapped in <mark>."""
    out, pos = [], 0
    for start, end in sorted(spans):
        start, end = max(start, pos), min(end, len(text))
        if start >= end:
            continue
        out += [html.escape(text[pos:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out)


@dataclass
class StorySummary:
    """A story (articles reporting the same event): size, date span, sources, headline (the server's
    StorySummaryOut)."""

    id: str
    articles: int
    first_published: datetime | None
    last_published: datetime | None
    sources: list[str]
    headline: str
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StorySummary:
        """A story summary from JSON."""
        return decode(cls, data)

    def to_json(self) -> dict[str, Any]:
        """The summary as the server sent it."""
        return encode(self)


@dataclass
class TimelineEntry:
    """One article of a story's timeline."""

    id: str
    title: str
    published: datetime | None
    source: str | None
    url: str | None
    dup_group: str | None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Story(StorySummary):
    """A story with its articles in time order (GET /stories/{id})."""

    timeline: list[TimelineEntry] = field(default_factory=list)
    index_version: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Story:
        """A story from the body of GET /stories/{id}."""
        return decode(cls, data)

    def to_pandas(self):  # noqa: ANN201 - pandas is an optional extra, imported here
        """The timeline as a pandas DataFrame, one row an article in time order."""
        import pandas as pd

        return pd.DataFrame([{f.name: getattr(e, f.name) for f in fields(e) if f.name != "extra"}
                             for e in self.timeline], columns=[f.name for f in fields(TimelineEntry)][:-1])


@dataclass
class SimilarHit:
    """An article related to the one asked about."""

    article_id: str
    title: str
    published: datetime | None
    source: str | None
    url: str | None
    score: float
    story_id: str
    same_story: bool
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Similar:
    """Related coverage of one article (GET /articles/{id}/similar): other stories first, then its own."""

    article_id: str
    story_id: str
    index_version: str
    hits: list[SimilarHit]
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Similar:
        """Related articles from the body of GET /articles/{id}/similar."""
        return decode(cls, data)

    def to_json(self) -> dict[str, Any]:
        """The answer as the server sent it."""
        return encode(self)

    def __iter__(self) -> Iterator[SimilarHit]:
        return iter(self.hits)


@dataclass
class SearchHit(records.Hit):
    """One ranked hit: a passage, its score and its article (search_api.records.Hit's fields)."""

    story: StorySummary | None = None  # with group=story
    _: KW_ONLY
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchHit:
        """A hit from one element of the response's `hits`."""
        return decode(cls, data)

    def to_json(self) -> dict[str, Any]:
        """The hit as the server sent it."""
        return encode(self)

    @property
    def sentence(self) -> str:
        """The best-matching sentence(s), or the start of the passage when none is marked."""
        if not self.highlights:
            return self.text[:240]
        return " … ".join(self.text[s:e] for s, e in self.highlights)


@dataclass
class SearchResults(records.SearchResponse):
    """One page of hits (search_api.records.SearchResponse's fields); iterate it, index it, or turn it into a
    DataFrame."""

    hits: list[SearchHit]
    _: KW_ONLY
    request: dict[str, Any] = field(default_factory=dict, repr=False)  # what was sent, for paging
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any], request: dict[str, Any] | None = None) -> SearchResults:
        """A page from the body of POST /search."""
        page = decode(cls, data)
        page.request = dict(request or {})
        return page

    def to_json(self) -> dict[str, Any]:
        """The page as the server sent it."""
        body = encode(self)
        body.pop("request")
        return body

    def __repr__(self) -> str:
        shown = f"ranks {self.offset + 1}-{self.offset + len(self.hits)} of {self.ranked}" if self.hits else "no hits"
        return (f"<SearchResults {self.query!r}: {shown}, {self.summary} ({self.mode}, index {self.index_version}, "
                f"{self.took_ms:.0f} ms)>")

    @property
    def summary(self) -> str:
        """How many hits clear the relevance floor, or that none does."""
        if self.no_close_match:
            return NO_CLOSE_MATCH
        return f"{self.total} close match{'es' if self.total != 1 else ''}"

    def __iter__(self) -> Iterator[SearchHit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, i: int) -> SearchHit:
        return self.hits[i]

    @property
    def offset(self) -> int:
        """How many ranked hits come before this page."""
        return int(self.request.get("offset", 0))

    @property
    def has_next(self) -> bool:
        """Whether more ranked hits follow this page."""
        return bool(self.hits) and self.offset + len(self.hits) < self.ranked

    def to_pandas(self):  # noqa: ANN201 - pandas is an optional extra, imported here
        """The hits as a pandas DataFrame, one row a hit (needs `pip install 'newsearch[pandas]'`)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install 'newsearch[pandas]'") from None
        rows = [{"rank": h.rank, "score": h.score, "relevance": h.relevance, "title": h.title, "published": h.published, "source": h.source,
                 "sentence": h.sentence, "article_id": h.article_id, "passage_id": h.passage_id, "text": h.text,
                 "matched_terms": h.matched_terms, "matched_passages": h.matched_passages,
                 "duplicates": h.duplicates, "url": h.url} for h in self.hits]
        columns = list(rows[0]) if rows else ["rank", "score", "title", "published", "source", "sentence"]
        return pd.DataFrame(rows, columns=columns).set_index("rank")

    def _repr_html_(self) -> str:
        """A table for Jupyter: the passage with its best sentence marked; everything escaped."""
        head = (f"<p><b>{len(self.hits)}</b> of {self.ranked} hits for <b>{html.escape(self.query)}</b>: "
                f"{self.summary} ({html.escape(self.mode)}, index {html.escape(self.index_version)}, "
                f"{self.took_ms:.0f} ms)</p>")
        if not self.hits:
            return head
        rows = []
        for h in self.hits:
            title = html.escape(h.title)
            if h.url and h.url.startswith(("http://", "https://")):
                title = f'<a href="{html.escape(h.url, quote=True)}" target="_blank">{title}</a>'
            date = h.published.date().isoformat() if h.published else ""
            rows.append(f"<tr><td>{h.rank}</td><td>{h.score:.4f}</td><td>{h.relevance:.2f}</td><td>{title}</td>"
                        f"<td>{date}</td>"
                        f"<td>{html.escape(h.source or '')}</td>"
                        f'<td style="text-align:left">{marked_html(h.text, h.highlights)}</td></tr>')
        return (head + "<table><thead><tr><th>rank</th><th>score</th><th>relevance</th><th>title</th><th>published</th>"
                "<th>source</th><th>passage</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


@dataclass(frozen=True)
class PassageRef(records.PassageRef):
    """Where a passage sits in its article."""

    _: KW_ONLY
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, kw_only=True)
class Article(records.ServedArticle):
    """A whole article as GET /articles/{id} returns it (search_api.records.ServedArticle's fields)."""

    passages: list[PassageRef]
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Article:
        """An article from the body of GET /articles/{id}."""
        return decode(cls, data)

    def to_json(self) -> dict[str, Any]:
        """The article as the server sent it."""
        return encode(self)


@dataclass
class Stats:
    """What the server has indexed (GET /stats)."""

    index_version: str
    created: str
    articles: int
    passages: int
    duplicate_groups: int
    model: dict[str, Any]
    chunking: dict[str, Any]
    faiss: dict[str, Any]
    oldest: datetime | None
    newest: datetime | None
    sources: dict[str, int]
    limits: dict[str, int] = field(default_factory=dict)  # max_k, candidates, max_query_chars (older servers: {})
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stats:
        """Stats from the body of GET /stats."""
        return decode(cls, data)

    def to_json(self) -> dict[str, Any]:
        """The stats as the server sent them."""
        return encode(self)


@dataclass
class Health:
    """Whether the server is up and which index version it serves (GET /healthz)."""

    status: str
    index_version: str | None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Health:
        """Health from the body of GET /healthz."""
        return decode(cls, data)

    def to_json(self) -> dict[str, Any]:
        """The health answer as the server sent it."""
        return encode(self)
