"""One value per field at the HTTP boundary: a query parameter or a JSON key given twice is a 422 naming it,
never "the last one wins"; a path or query string whose %-escapes are not UTF-8 is a 422, never read as U+FFFD."""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from fastapi import Request

from indexer.errors import BadQuery


def _one_value_each(request: Request, names: tuple[str, ...] | None, repeatable: str = "") -> None:
    """Refuse a query parameter given twice (but `repeatable`), and one not in `names` when they are given."""
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if names is not None and key not in names:
            accepted = ", ".join(names) or "none"
            raise BadQuery(f"{key or '(empty name)'}: unknown parameter; this route takes {accepted}", key or None)
        if key in seen and key != repeatable:
            only = f" (only {repeatable} may repeat)" if repeatable else ""
            raise BadQuery(f"{key}: given more than once; give it once{only}", key)
        seen.add(key)


async def single_values(request: Request) -> None:
    """Refuse a repeated query parameter that takes one value (only `source` repeats): which would win? (GET
    /search's model refuses unknown ones itself.)"""
    _one_value_each(request, None, "source")


async def utf8_text(request: Request) -> None:
    """Refuse %-escapes that are not UTF-8 (`q=%ff`, or `%ed%a0%80`, a lone surrogate) in the path or the query
    string: Starlette would read them as U+FFFD and search for that."""
    scope = request.scope
    if not getattr(scope.get("route"), "include_in_schema", True):
        return  # the web page reads its own address; a bad link there still opens the page
    for where, raw in (("path", scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")),
                       ("query string", scope.get("query_string", b""))):
        try:
            unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise BadQuery(f"the {where} holds %-escapes that are not UTF-8 text; percent-encode the UTF-8 bytes "
                           "of each character", None) from None


def only_parameters(*names: str):  # noqa: ANN201 - a FastAPI dependency
    """A dependency refusing query parameters other than `names`, and any given twice: a misspelt one would be
    ignored silently, and of two values which would win?"""

    async def check(request: Request) -> None:
        _one_value_each(request, names)

    return check


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise BadQuery(f"{key}: given more than once in the JSON body; give it once", key)
        seen[key] = value
    return seen


async def unique_keys(request: Request) -> None:
    """Refuse a JSON body whose object repeats a key (`{"q": "a", "q": "b"}`), which json.loads would read as its last."""
    body = await request.body()  # Starlette keeps the bytes: the route's own parsing reads the same ones
    try:
        json.loads(body, object_pairs_hook=_refuse_duplicates)
    except ValueError:
        return  # not JSON: FastAPI's own parsing answers it (422, see install_error_handlers)
