"""MkDocs hook: the configuration table of docs/configuration.md, generated from `indexer.settings.Settings`.

Each row comes from one field: its NEWSEARCH_ variable, type, default, allowed range (`RANGES`) and docstring.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, get_type_hints

from indexer import settings as settings_module
from indexer.settings import DEPRECATED, ENV_PREFIX, RANGES, Settings

MARKER = "<!-- settings-table -->"
TYPE_NAMES = {Path: "path", str: "text", int: "integer", float: "number", bool: "true/false"}


def descriptions() -> dict[str, str]:
    """Each Settings field's docstring (the string right below it in indexer/settings.py), by field name."""
    tree = ast.parse(inspect.getsource(settings_module))
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == Settings.__name__:
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
    if name not in RANGES:
        return ""
    low, high, _ = RANGES[name]
    return f"≥ {low:g}" if high == float("inf") else f"{low:g} to {high:g}"


def settings_table() -> str:
    """The Markdown table of every setting, one row a field, in the order of the class."""
    hints, docs = get_type_hints(Settings), descriptions()
    aliases = {name: old for old, name in DEPRECATED.items()}
    rows = ["| variable | type | default | range | meaning |", "|---|---|---|---|---|"]
    for f in fields(Settings):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        meaning = docs.get(f.name, "").replace("|", "\\|")
        if f.name in aliases:
            meaning += f" Alias: `{ENV_PREFIX}{aliases[f.name]}`."
        rows.append(f"| `{ENV_PREFIX}{f.name.upper()}` | {_type_name(hints[f.name])} | {_default(default)} "
                    f"| {_range(f.name)} | {meaning} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Put the generated table where docs/configuration.md has the marker."""
    if MARKER in markdown:
        return markdown.replace(MARKER, settings_table())
    return markdown
