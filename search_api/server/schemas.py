"""Pydantic models of the HTTP boundary: request fields and response bodies. Those of search_api/records.py are
derived from its dataclasses (request_model, response_model); the others are written here."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import MISSING
from dataclasses import fields as dataclass_fields
from datetime import date, datetime
from functools import reduce
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model

from indexer.sources import control_as_spaces, lone_surrogate
from search_api import records
from search_api.records import Hit, SearchRequest, SearchResponse, ServedArticle, description, http_options

_NUMBER = re.compile(r"\s*[-+]?[\d.]+(e[-+]?\d+)?\s*", re.IGNORECASE)
# ISO 8601 as RFC 3339 writes it: "T" or a space between date and time. fromisoformat would take any one character
# there ("2020-01-31x12:00"), and pydantic a trailing NUL: neither is a date a client meant.
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}(:\d{2}(:\d{2}([.,]\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?")


def _text(value: str) -> str:
    """A request's text, refused if it holds a lone UTF-16 surrogate (which nothing downstream can encode); control
    characters read as spaces, so a query of nothing else is blank."""
    if lone_surrogate(value):
        raise ValueError("holds a lone UTF-16 surrogate (an escape such as \\ud800 without its pair)")
    return control_as_spaces(value)


Text = Annotated[str, AfterValidator(_text)]
# Stored dates are naive UTC: JSON Schema's date-time would promise an offset the server never writes.
NaiveUTC = Annotated[datetime, WithJsonSchema({"type": "string", "description": "UTC date and time without an "
                                               "offset, e.g. 2020-01-02T03:04:05", "example": "2020-01-02T03:04:05"})]


def iso_only(value: Any) -> Any:
    """A date as ISO text only: pydantic would read 2020 or "20200101" as seconds since 1970. Text with a time
    is that instant, even at midnight: pydantic would read "2020-01-31T00:00:00+05:00" as the whole day."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("give an ISO 8601 date or date-time (2020-01-31 or 2020-01-31T12:00:00), not a number")
    if isinstance(value, str) and len(value.strip()) > len("2020-01-31"):
        text = value.strip().upper()  # "z" for UTC as well as "Z"
        if not _DATE_TIME.fullmatch(text):
            raise ValueError("give an ISO 8601 date or date-time: 2020-01-31, or 2020-01-31T12:00:00 with \"T\" or a "
                             "space before the time and an optional Z or offset such as +05:00 after it")
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return value  # pydantic's own message says what is wrong with it (a 13th month, a 25th hour)
    return value


# JSON has numbers and booleans of its own: "5" or true for k is a client's mistake, not a 5 or a 1 (`typed`).
# A query string has only text, so GET's form reads "5" as 5.
def _integer(typed: bool) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or (typed and not isinstance(value, int)):
            raise ValueError(f"must be an integer, not {type(value).__name__} {value!r}"[:120])
        _digits_only(value)
        return value
    return check


def _digits_only(value: Any) -> None:
    """Python (and so pydantic) reads "1_0" as 10: in a query string that is a typo, not ten."""
    if isinstance(value, str) and "_" in value:
        raise ValueError(f"must be a number written without underscores, not {value!r}"[:120])


query_integer = _integer(typed=False)  # an integer query parameter as GET /search reads one


def _boolean(typed: bool) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if typed and not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}"[:120])
        return value
    return check


def _number(typed: bool) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or (typed and value is not None and not isinstance(value, (int, float))):
            raise ValueError(f"must be a number, not {value!r}"[:120])
        _digits_only(value)
        return value
    return check


def _input_type(kind: Any, typed: bool) -> Any:
    """The HTTP form of a request field's type: text without lone surrogates, numbers and booleans as JSON (`typed`)
    or a query string reads them, dates only in ISO, a tuple of texts as a repeatable list."""
    args = set(get_args(kind)) - {type(None)}
    if kind is str:
        return Text
    if kind is bool:
        return Annotated[kind, BeforeValidator(_boolean(typed))]
    if kind is int:
        return Annotated[kind, BeforeValidator(_integer(typed))]
    if kind is float or args == {float}:
        return Annotated[kind, BeforeValidator(_number(typed))]
    if args & {date, datetime}:
        return Annotated[kind, BeforeValidator(iso_only)]
    if get_origin(kind) is tuple:
        return list[_input_type(get_args(kind)[0], typed)]
    return kind


def request_model(name: str, typed: bool, record: type = SearchRequest, doc: str | None = None) -> type[BaseModel]:
    """The HTTP form of a request record: its HTTP-named fields (records.http_options), descriptions and limits."""
    hints = get_type_hints(record)
    definitions: dict[str, Any] = {}
    for http, f in http_options(record).items():
        default: dict[str, Any] = {"default": f.default} if f.default is not MISSING else {}
        if isinstance(f.default, tuple):  # a repeatable field: a list over HTTP
            default = {"default_factory": list}
        info = Field(description=description(f), **default, **f.metadata.get("http", {}))
        definitions[http] = (_input_type(hints[f.name], typed), info)
    # A misspelt filter (`sorce=`) must be an error, not a silently unfiltered result.
    return create_model(name, __config__=ConfigDict(extra="forbid"), __doc__=doc, __module__=__name__, **definitions)


def search_request(body: BaseModel, record: type = SearchRequest) -> Any:
    """The in-process request (SearchRequest unless given) a validated SearchBody or SearchQuery stands for."""
    values = {f.name: getattr(body, http) for http, f in http_options(record).items()}
    return record(**{name: tuple(v) if isinstance(v, list) else v for name, v in values.items()})


SearchBody = request_model("SearchBody", typed=True, doc="POST /search body: the same fields as the GET query string.")
SearchQuery = request_model("SearchQuery", typed=False, doc="GET /search query string: SearchBody's fields, read "
                            "from text.")


def _output_type(kind: Any, nested: dict[type, type]) -> Any:
    """The HTTP form of a response field's type: naive UTC date-times, nested records as their HTTP models."""
    if kind is datetime:
        return NaiveUTC
    if kind in nested:
        return nested[kind]
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, UnionType):
        return reduce(operator.or_, [_output_type(a, nested) for a in args])
    if origin is list:
        return list[_output_type(args[0], nested)]
    return kind


def response_model(record: type, name: str, nested: dict[type, type] | None = None, **types: Any) -> type[BaseModel]:
    """The HTTP form of a response record: every field required (the server always sends it), with its description;
    nested records map to their models through `nested`, and `types` overrides a field's type."""
    hints = get_type_hints(record)
    definitions = {f.name: (types.get(f.name) or _output_type(hints[f.name], nested or {}),
                            Field(description=description(f))) for f in dataclass_fields(record)}
    return create_model(name, __doc__=record.__doc__, __module__=__name__, **definitions)


class StorySummaryOut(BaseModel):
    """A story: articles reporting the same event, across sources and days (docs/stories.md)."""

    id: str = Field(description="story id (the id of the article that started it, with ~2, ~3... if an update reused that id "
                    "for another story); GET /stories/{id}")
    articles: int = Field(description="articles in the story")
    first_published: NaiveUTC | None
    last_published: NaiveUTC | None
    sources: list[str]
    headline: str = Field(description="the title of the story's first article")


HitOut = response_model(Hit, "HitOut", story=StorySummaryOut | None)
SearchOut = response_model(SearchResponse, "SearchOut", {Hit: HitOut})
PassageRef = response_model(records.PassageRef, "PassageRef")
ArticleOut = response_model(ServedArticle, "ArticleOut", {records.PassageRef: PassageRef})


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
    limits: dict[str, int] = Field(description="this server's limits: max_k (hits per request), candidates (the "
                                   "depth results are ranked to: offset + k at most) and max_query_chars")


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
