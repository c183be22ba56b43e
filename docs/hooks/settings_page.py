"""MkDocs hook: the configuration tables of docs/configuration.md, generated from `indexer.settings.Settings` and
the server's own fields of `search_api.settings.ServerSettings`.

Each row comes from one field: its NEWSEARCH_ variable, type, default, allowed range (`RANGES`, `SERVER_RANGES`) and
docstring.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, get_type_hints

from indexer import settings as settings_module
from indexer.settings import DEPRECATED, ENV_PREFIX, RANGES, Settings, bound
from search_api import settings as server_settings_module
from search_api.settings import SERVER_RANGES, ServerSettings

MARKER = "<!-- settings-table -->"
SERVER_MARKER = "<!-- server-settings-table -->"
TYPE_NAMES = {Path: "path", str: "text", int: "integer", float: "number", bool: "true/false"}


def descriptions() -> dict[str, str]:
    """Each field's docstring (the string right below it in indexer/settings.py or search_api/settings.py), by name."""
    found: dict[str, str] = {}
    for module, cls in ((settings_module, Settings), (server_settings_module, ServerSettings)):
        found.update(_docstrings(module, cls.__name__))
    return found


def _docstrings(module: Any, class_name: str) -> dict[str, str]:
    tree = ast.parse(inspect.getsource(module))
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            body = node.body
            for stmt, following in zip(body, body[1:]):
                if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                        and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                        and isinstance(following.value.value, str)):
                    found[stmt.target.id] = " ".join(following.value.value.split())
    return found


def _type_name(kind: Any) -> str:
    return TYPE_NAMES.get(kind, "comma-separated list" if kind == tuple[str, ...] else str(kind))


def _default(value: Any) -> str:
    if value in ("", ()):
        return "(empty)"
    if isinstance(value, bool):
        return str(value).lower()
    return f"`{value}`"


def _range(name: str) -> str:
    ranges = {**RANGES, **SERVER_RANGES}
    if name not in ranges:
        return ""
    low, high, _ = ranges[name]
    return f"{bound(low)} to {bound(high)}"


def settings_table(server: bool = False) -> str:
    """The Markdown table of the indexer's settings (or the server's own), one row a field, in the class's order."""
    hints, docs = get_type_hints(ServerSettings), descriptions()
    aliases = {name: old for old, name in DEPRECATED.items()}
    rows = ["| variable | type | default | range | meaning |", "|---|---|---|---|---|"]
    indexer_fields = {f.name for f in fields(Settings)}
    for f in fields(ServerSettings):
        if (f.name in indexer_fields) == server:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        meaning = docs.get(f.name, "").replace("|", "\\|")
        if f.name in aliases:
            meaning += f" Alias: `{ENV_PREFIX}{aliases[f.name]}`."
        rows.append(f"| `{ENV_PREFIX}{f.name.upper()}` | {_type_name(hints[f.name])} | {_default(default)} "
                    f"| {_range(f.name)} | {meaning} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Put the generated tables where docs/configuration.md has their markers."""
    return markdown.replace(MARKER, settings_table()).replace(SERVER_MARKER, settings_table(server=True))
