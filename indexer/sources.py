"""Read corpus files (.txt, .jsonl, .jsonl.gz, .html, directories) into RawArticle records.

Bad files and lines are reported as "path:line: reason" and skipped, or fatal with strict=True.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from indexer.errors import SourceError
from indexer.records import RawArticle

TEXT_SUFFIXES = (".txt",)
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
HTML_SUFFIXES = (".html", ".htm")
KNOWN_FIELDS = ("id", "title", "body", "date", "source", "url")
MAX_JSON_DEPTH = 32  # nesting of a record's values; deeper ones could not be stored back as JSON metadata
# JSON's \\ud800 escapes decode to lone surrogates, which no UTF-8 file, hash or SQLite text can hold.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Problem:
    """One skipped file or record."""

    origin: str
    reason: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.reason}"


def supported(path: Path) -> bool:
    """True if the file name has a suffix this module can read."""
    name = path.name.lower()
    return name.endswith(TEXT_SUFFIXES + JSONL_SUFFIXES + HTML_SUFFIXES)


class CorpusReader:
    """Iterate over the articles under some paths; `problems` collects what was skipped."""

    def __init__(self, paths: list[Path], strict: bool = False):
        self.paths = [Path(p) for p in paths]
        self.strict = strict
        self.problems: list[Problem] = []
        self.files_read = 0
        missing = [str(p) for p in self.paths if not p.exists()]
        if missing:
            raise SourceError(f"{missing[0]}: no such file or directory; check the corpus path")

    def __iter__(self) -> Iterator[RawArticle]:
        for root in self.paths:
            for path, rel in _walk(root, self._report):
                yield from self._read_file(path, rel)

    def files(self) -> list[tuple[Path, str]]:
        """Every corpus file under the paths, in reading order, with the name ids are derived from."""
        return [pair for root in self.paths for pair in _walk(root, self._report)]

    def read_file(self, path: Path, rel: str) -> Iterator[RawArticle]:
        """The articles of one file (as `files` lists it); lets an engine read files in parallel."""
        return self._read_file(path, rel)

    def _read_file(self, path: Path, rel: str) -> Iterator[RawArticle]:
        name = path.name.lower()
        try:
            if name.endswith(JSONL_SUFFIXES):
                yield from self._read_jsonl(path)
            else:
                data = path.read_bytes()
                text = _decode(data, str(path))
                if not text.strip():
                    raise _Skip(f"{path}", "empty file")
                if name.endswith(HTML_SUFFIXES):
                    yield _html_article(text, path, rel)
                else:
                    yield _text_article(text, path, rel)
            self.files_read += 1
        except _Skip as skip:
            self._report(Problem(skip.origin, skip.reason))
        except OSError as exc:
            self._report(Problem(str(path), f"cannot read file ({exc.strerror or exc})"))

    def _read_jsonl(self, path: Path) -> Iterator[RawArticle]:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        records = lineno = 0
        try:
            with opener(path, "rb") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    origin = f"{path}:{lineno}"
                    try:
                        yield _json_article(_json_line(line, origin), origin, path)
                        records += 1
                    except _Skip as skip:
                        self._report(Problem(skip.origin, skip.reason))
        except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
            # The articles before the damage were yielded already and stay indexed.
            if not lineno:
                raise _Skip(str(path), f"damaged gzip file ({exc})") from None
            raise _Skip(f"{path}:{lineno + 1}", f"damaged gzip file ({exc}); the {records} article(s) "
                        "before this line were read, re-create the file to index the rest") from None
        if records == 0 and not any(p.origin.startswith(f"{path}:") for p in self.problems):
            raise _Skip(str(path), "empty file")

    def _report(self, problem: Problem) -> None:
        if self.strict:
            raise SourceError(f"{problem}; fix the file or run without --strict to skip it")
        self.problems.append(problem)


class _Skip(Exception):
    def __init__(self, origin: str, reason: str):
        super().__init__(reason)
        self.origin, self.reason = origin, reason


def _walk(root: Path, report: Callable[[Problem], None]) -> Iterator[tuple[Path, str]]:
    if not root.is_dir():
        # A file named on its own is read only in a corpus format too: /etc/shadow given to POST /admin/reindex
        # must not become a searchable article.
        if not supported(root):
            report(Problem(_shown(root), "not a corpus file: newsearch reads .txt, .jsonl, .jsonl.gz, .html and .htm "
                                         "files (and folders of them)"))
        elif not root.is_file():
            report(Problem(_shown(root), "not a regular file (a pipe or device); give a file or a folder"))
        elif _utf8_name(root, report):
            yield root, root.name
        return
    for path in sorted(root.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if path.is_symlink() and path.is_dir():
            report(Problem(_shown(path), "symbolic link to a folder: not followed; name its target to read it"))
        elif path.is_file():
            if supported(path) and _utf8_name(path, report):
                yield path, path.relative_to(root).as_posix()
        elif path.is_symlink():
            report(Problem(_shown(path), _broken_link(path)))


def _shown(path: Path) -> str:
    """A path as text that can be printed, whatever bytes its name is made of."""
    return os.fsencode(path).decode("utf-8", "replace")


def _utf8_name(path: Path, report: Callable[[Problem], None]) -> bool:
    """True if the path is UTF-8 text, which ids are made from; else False, with a problem reported."""
    if not lone_surrogate(str(path)):
        return True
    report(Problem(_shown(path), "file name is not UTF-8; rename the file"))
    return False


def _broken_link(path: Path) -> str:
    """Why a symbolic link leads to no file: a loop, or a target that does not exist."""
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a loop so
        return "symbolic link loop; remove the link"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop; remove the link"
        return f"dangling symbolic link to {os.readlink(path)}; remove the link or restore its target"
    return "symbolic link to something that is not a file"


def _json_line(line: bytes, origin: str) -> Any:
    """One JSON value from a line of bytes; _Skip (never another error) if it is not one."""
    too_deep = f"JSON nested more than {MAX_JSON_DEPTH} levels deep"
    try:
        value = json.loads(_decode(line, origin), parse_constant=lambda word: _not_json(word, origin))
    except json.JSONDecodeError as exc:
        raise _Skip(origin, f"malformed JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise _Skip(origin, too_deep) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise _Skip(origin, f"unreadable JSON ({exc})") from None
    fault = unstorable(value, MAX_JSON_DEPTH)
    if fault:
        raise _Skip(origin, too_deep if fault == "depth" else f"field {fault!r} holds a lone UTF-16 surrogate "
                    "(an escape such as \\ud800 without its pair); fix the text or drop the escape")
    return value


def _not_json(word: str, origin: str) -> Any:
    """Python reads NaN and Infinity, which JSON has not: kept, they came back as null in every JSON response."""
    raise _Skip(origin, f"malformed JSON ({word} is not JSON; write null or a number)")


# Characters no XML document may hold (an alert's query is written into its Atom feed) and no query means.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def control_as_spaces(text: str) -> str:
    """`text` with control characters (but tab and line ends) and the non-characters U+FFFE/U+FFFF as spaces."""
    return _CONTROL.sub(" ", text)


def lone_surrogate(text: str) -> bool:
    """True if `text` holds a UTF-16 surrogate on its own, which cannot be encoded, hashed or stored."""
    return _SURROGATE.search(text) is not None


def unstorable(value: Any, limit: int) -> str | None:
    """Why a parsed JSON value cannot be indexed: "depth" if lists and objects nest more than `limit`
    levels, else the top-level field holding a lone surrogate in a key or string; None if neither."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:  # walked without recursion: the value may be deep
        item, depth, top = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return top or "(the record)"
        elif isinstance(item, (dict, list)):
            if depth > limit:
                return "depth"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and _SURROGATE.search(key):
                    return top or "(a field name)"
                stack.append((child, depth + 1, top or str(key)))
    return None


def _decode(data: bytes, origin: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Skip(origin, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); re-save it as UTF-8") from None


def stable_id(prefix: str, *parts: str) -> str:
    """A short id that depends only on the given parts."""
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]
    return f"{prefix}-{digest}"


def parse_date(value: Any, origin: str) -> datetime | None:
    """ISO 8601 date or datetime -> naive UTC datetime; None for null or empty."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise _Skip(origin, f"date must be an ISO 8601 string, not {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _Skip(origin, f"date {value!r} is not ISO 8601 (e.g. 2019-01-04 or 2019-01-04T10:30:00)") from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is before year 1 in UTC
            raise _Skip(origin, f"date {value!r} is outside years 1-9999 in UTC") from None
    return parsed


def _optional_str(record: dict, key: str, origin: str) -> str | None:
    value = record.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):  # true is an int to Python, "True" to no one
        raise _Skip(origin, f"field {key!r} must be a string")
    return str(value)


def _usable_id(article_id: str, origin: str) -> str:
    """An id a person can see, type and send: not blank, no control characters or line breaks (a NUL, a newline;
    a joiner or a no-break space, as ordinary words hold them, is fine)."""
    if not article_id.strip() or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in article_id):
        raise _Skip(origin, f"id {article_id!r} is blank or holds control characters; give the article a visible id")
    return article_id


def _json_article(record: Any, origin: str, path: Path) -> RawArticle:
    if not isinstance(record, dict):
        raise _Skip(origin, "a line must hold one JSON object")
    body = record.get("body")
    if not isinstance(body, str) or not body.strip():
        raise _Skip(origin, "missing or empty 'body'")
    title = _optional_str(record, "title", origin) or ""
    source = _optional_str(record, "source", origin)
    url = _optional_str(record, "url", origin)
    published = parse_date(record.get("date"), origin)
    article_id = _optional_str(record, "id", origin)
    if article_id is not None:
        _usable_id(article_id, origin)
    else:
        # Not the body: a corrected article must keep its id.
        key = url or f"{title}|{record.get('date') or ''}"
        article_id = stable_id("doc", source or path.name, key)
    meta = {k: v for k, v in record.items() if k not in KNOWN_FIELDS}
    return RawArticle(article_id, title, body, published, source, url, origin, meta)


def _front_matter(text: str, origin: str) -> tuple[dict[str, str], str]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            fields: dict[str, str] = {}
            for line in lines[1:end]:
                if not line.strip():
                    continue
                key, sep, value = line.partition(":")
                if not sep:
                    raise _Skip(origin, f"front matter line {line!r} is not 'key: value'")
                fields[key.strip().lower()] = value.strip()
            return fields, "\n".join(lines[end + 1 :])
    raise _Skip(origin, "front matter opened with '---' is never closed")


def _text_article(text: str, path: Path, rel: str) -> RawArticle:
    origin = str(path)
    fields, rest = _front_matter(text.replace("\r\n", "\n").replace("\r", "\n"), origin)
    lines = rest.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise _Skip(origin, "no title or body after the front matter")
    title = fields.get("title") or lines[first].strip()
    body = "\n".join(lines[first + 1 :]) if "title" not in fields else rest
    if not body.strip():
        raise _Skip(origin, "a title but no body (the body follows the first line)")
    source = fields.get("source") or None
    url = fields.get("url") or None
    article_id = _usable_id(fields["id"], origin) if fields.get("id") else stable_id("txt", source or "", rel)
    meta = {k: v for k, v in fields.items() if k not in KNOWN_FIELDS}
    return RawArticle(article_id, title, body, parse_date(fields.get("date"), origin), source, url, origin, meta)


class _HTMLText(HTMLParser):
    """Collects <title>, the first <h1> and block-level text, skipping scripts, styles and page chrome."""

    SKIP = {"script", "style", "nav", "footer", "header", "aside", "form", "noscript", "template"}
    BLOCKS = {"p", "h1", "h2", "h3", "h4", "li", "blockquote", "pre", "div", "br", "tr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.h1 = ""
        self.blocks: list[str] = []
        self._skip = 0
        self._stack: list[str] = []
        self._buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.SKIP:
            self._skip += 1
        if tag in self.BLOCKS:
            self._flush()
        self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self._flush(tag)
        if tag in self.SKIP and self._skip:
            self._skip -= 1
        if tag in self._stack:
            while self._stack and self._stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if "title" in self._stack[-1:]:
            self.title += data
        elif not self._skip:
            self._buf.append(data)

    def _flush(self, tag: str = "") -> None:
        text = " ".join("".join(self._buf).split())
        self._buf = []
        if text:
            if tag == "h1" and not self.h1:
                self.h1 = text
            else:
                self.blocks.append(text)


def _html_article(text: str, path: Path, rel: str) -> RawArticle:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    parser._flush()
    title = parser.h1 or " ".join(parser.title.split())
    if not parser.blocks:
        raise _Skip(str(path), "no paragraph text found in the HTML")
    body = "\n\n".join(parser.blocks)
    return RawArticle(stable_id("html", "", rel), title, body, None, None, None, str(path), {})
