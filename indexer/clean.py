"""Turn a RawArticle into a clean Article: Unicode and whitespace normalised, site junk, markup and
wire residue and repeated paragraphs removed. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable

from indexer.records import Article, RawArticle

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n")

# Whole-line patterns of page furniture; anchored so that real sentences that merely start
# with "Share" or "Print" (e.g. "Share prices fell") are kept.
_JUNK_LINE = re.compile(
    r"""^(?:
        .*\bbloggers?\ like\ this\b.*
      | powered\ by\b.{0,120}
      | (?:©|\(c\)\ ?\d{4}|copyright\ ?(?:©|\(c\))?\ ?\d{4}).{0,200}
      | .{0,200}\ball\ rights\ reserved\b.{0,50}
      | (?:share|share\ this|like\ this|tweet|email|print|related|related\ (?:posts|articles|stories)
          |you\ may\ also\ like|read\ more|loading\.\.\.|advertisement|comments?|follow\ us(?:\ on\ \w+)?
          |subscribe(?:\ now)?|click\ to\ \w+(?:\ \w+){0,4}|leave\ a\ (?:reply|comment)|tags?)\s*[:.]?
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_NAV_SEPARATORS = re.compile(r"\s*[|•·]\s*")
_SENTENCE_END = re.compile(r"""[.!?:;…]["'”’)\]]*$""")
_DATELINE = re.compile(
    r"^(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day,?\s+[A-Z][a-z]+\s+\d{1,2},?\s+\d{4}$"
)
_HEADLINE_MAX_WORDS = 16


def normalize_text(text: str) -> str:
    """NFC, no invisible or control characters, single spaces, trimmed lines, \\n newlines."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text.translate(_INVISIBLE))
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))


def is_junk_line(line: str) -> bool:
    """Social widgets, "Powered by", copyright lines and navigation bars."""
    if _JUNK_LINE.match(line):
        return True
    parts = [p for p in _NAV_SEPARATORS.split(line) if p]
    # A nav bar is several short items between separators, e.g. "| About Us | Privacy Policy |".
    return len(parts) >= 3 and line.count("|") + line.count("•") + line.count("·") >= 2 and all(
        len(p.split()) <= 4 for p in parts
    )


# Residue of a site's markup or of a wire service, found in the corpora by bench/scan_residue.py: each rule maps a
# line to its cleaned text ("" drops the line). Order matters: a language tag before speaker labels.
_LANGUAGE_TAG = re.compile(r"\(\([a-z]{2,3}(?:-[a-z]+)?\)\)\s*[A-Z][a-z]+(?: [A-Z]?[a-z]+)?:\s*")
_SPEAKER = re.compile(r"^\(\(([^()\n]{1,60})\)\)\s*:?\s*")
_DOUBLE_PARENS = re.compile(r"\(\(([^()\n]{1,60})\)\)")
_WIKI_LINK = re.compile(r"\{\{?w\|(?:[^|{}\n]*\|)?([^|{}\n]+)\}\}?")
_STRAY_PIPE = re.compile(r"(?<= )\|(?=[A-Za-z])")
_FOOTNOTE_MARK = re.compile(r"(?<=[a-z.,;)])\[\d{1,3}\]")
_PHOTO_CREDIT = re.compile(r"\s*\(?(?:Image|Photo): [^\n]{1,80}$")  # glued too: "Jo JorgensenImage: ..."
_LEGEND_SWATCH = re.compile(r"^[\u2580-\u259f]+\s*")
_WIKINEWS_NOTICE = re.compile(r"^This article (?:requires pre-publication review|features first-hand journalism"
                              r"|has been archived|is a work in progress)\b.*$")
_WIRE_LINE = re.compile(r"^(?:reuters?\d*|more|[-=*_~]{3,})\.{0,3}$", re.IGNORECASE)
_WIRE_SIGNATURE = re.compile(r"(?<=\S) +(?:REUTER|Reuter|reuter)\.{0,3}$")
_CORRECTION = re.compile(r"(?:(?:^|(?<=[.!?\"')])\s+)-{1,2}\s*(?i:corrects?|correcting)\b[^\n]*"
                         r"|\s*\((?i:corrects?|correcting|adds|repeats)\b[^()\n]*\)\.?)$")
_FOREIGN_GAP = 6  # Latin-script words after which a non-Latin original is over (its own text mixes in a few)


def _is_foreign(word: str) -> bool:
    return any(ch.isalpha() and not unicodedata.name(ch, "").startswith("LATIN") for ch in word)


def drop_language_tags(line: str) -> str:
    """Wikinews' "((hu))Hungarian language: ..." (a quote's original beside its translation): the tag goes, and
    the original too when it is in a non-Latin script, up to its last such word; a Latin-script original has no
    visible end, so it stays."""
    while match := _LANGUAGE_TAG.search(line):
        head, rest = line[: match.start()].rstrip(), line[match.end() :]
        words = list(re.finditer(r"\S+", rest))
        end, last = 0, -1
        for i, word in enumerate(words if words and _is_foreign(words[0].group()) else []):
            if i - last > _FOREIGN_GAP:
                break
            if _is_foreign(word.group()):
                last, end = i, word.end()
        tail = rest[end:].lstrip()
        line = " ".join(part for part in (head, tail) if part)
    return line


def _speaker_labels(line: str) -> str:
    """Interview speakers, "((WN)) question" -> "WN: question"; other doubled parentheses lose one pair."""
    line = _SPEAKER.sub(lambda m: m.group(1).strip() + ": ", line)
    return _DOUBLE_PARENS.sub(r"\1", line).strip()


def _wiki_links(line: str) -> str:
    return _STRAY_PIPE.sub("", _WIKI_LINK.sub(r"\1", line))


def _strip(pattern: re.Pattern[str]) -> Callable[[str], str]:
    return lambda line: pattern.sub("", line).strip()


RESIDUE_RULES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("language tag", drop_language_tags),
    ("speaker label", _speaker_labels),
    ("wiki link", _wiki_links),
    ("footnote mark", _strip(_FOOTNOTE_MARK)),
    ("photo credit", _strip(_PHOTO_CREDIT)),
    ("legend swatch", _strip(_LEGEND_SWATCH)),
    ("wikinews notice", _strip(_WIKINEWS_NOTICE)),
    ("wire line", _strip(_WIRE_LINE)),
    ("wire signature", _strip(_WIRE_SIGNATURE)),
    ("correction notice", _strip(_CORRECTION)),
)


def strip_residue(line: str) -> str:
    """One normalised line without markup or wire residue ("" when nothing real is left)."""
    for _, rule in RESIDUE_RULES:
        line = rule(line)
    return line


def _is_headline(line: str) -> bool:
    return len(line.split()) <= _HEADLINE_MAX_WORDS and not _SENTENCE_END.search(line)


def _strip_trailing_junk(blocks: list[tuple[list[str], bool]]) -> list[list[str]]:
    """Drop trailing blocks that are link lists of related headlines.

    A trailing block goes if it held junk lines and what is left looks like headlines, or if it is
    two or more headline-like lines on their own: real articles end with sentences.
    """
    while blocks:
        lines, had_junk = blocks[-1]
        headline_like = all(_is_headline(line) for line in lines)
        if not lines or (headline_like and (had_junk or len(lines) >= 2)):
            blocks.pop()
        else:
            break
    return [lines for lines, _ in blocks if lines]


def _dedupe(paragraphs: list[str]) -> list[str]:
    """Remove verbatim repeats, keeping the first copy.

    Copies at the very top are a photo caption printed twice (alt text and caption, as in the
    seed article): all of them go. Elsewhere a repeat is a wire re-send or a pull quote of real
    text, so the first copy stays.
    """
    keys = [para.casefold() for para in paragraphs]
    start = 0
    while start + 1 < len(keys) and keys[start] == keys[start + 1]:
        run = keys[start]
        while start < len(keys) and keys[start] == run:
            start += 1
    out: list[str] = []
    seen: set[str] = set(keys[:start])
    for key, para in zip(keys[start:], paragraphs[start:]):
        if key not in seen:
            seen.add(key)
            out.append(para)
    return out


def clean_body(body: str, title: str = "") -> str:
    """The cleaned body: paragraphs separated by one blank line, junk and repeats removed."""
    blocks: list[tuple[list[str], bool]] = []
    for block in _BLANK_LINES.split(normalize_text(body)):
        lines = [line for line in block.split("\n") if line]
        kept = [line for line in map(strip_residue, lines) if line and not is_junk_line(line)]
        blocks.append((kept, len(kept) < len(lines)))
    paragraphs = ["\n".join(lines) for lines in _strip_trailing_junk(blocks)]
    if paragraphs and _DATELINE.match(paragraphs[0].split("\n", 1)[0]):
        rest = paragraphs[0].split("\n", 1)[1:]
        paragraphs = rest + paragraphs[1:]
    if paragraphs and title and paragraphs[0].casefold() == normalize_text(title).casefold():
        paragraphs = paragraphs[1:]
    return "\n\n".join(_dedupe(paragraphs))


def content_hash(title: str, body: str, published: str | None, source: str | None, url: str | None) -> str:
    """Hash of everything that is indexed: any change means the article must be re-embedded."""
    payload = json.dumps([title, body, published, source, url], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def clean_article(raw: RawArticle) -> Article:
    """Clean one article; the body may come out empty, which the caller reports."""
    title = " ".join(normalize_text(raw.title).split())
    body = clean_body(raw.body, title)
    published = raw.published.isoformat() if raw.published else None
    source = " ".join(raw.source.split()) if raw.source else None
    url = raw.url.strip() if raw.url else None
    digest = content_hash(title, body, published, source, url)
    return Article(raw.id, title, body, raw.published, source, url, digest, dict(raw.meta))
