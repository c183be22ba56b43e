"""Split a cleaned article body into sentence-aware passages sized in the model's word pieces.

Pure: the token counter is passed in, so tests can use the real tokenizer or a simple one.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
import threading
from collections.abc import Callable

import blingfire

from indexer.errors import NewsearchError
from indexer.records import Article, Passage

TokenCounter = Callable[[str], int]
Span = tuple[int, int]

MAX_PASSAGES_PER_ARTICLE = 1 << 12
# A whitespace run right after a line's last character; with a second line break in it, a paragraph break.
_LINE_END = re.compile(r"(?<=\S)\n\s*")
_WORD = re.compile(r"\S+")


def passage_id(article_id: str, ordinal: int) -> int:
    """FAISS id of a passage: 48 bits of the article id's hash, then 12 bits of ordinal.

    Ids depend only on (article id, ordinal), so an incremental update and a full rebuild agree.
    """
    if not 0 <= ordinal < MAX_PASSAGES_PER_ARTICLE:
        raise NewsearchError(
            f"article {article_id} needs more than {MAX_PASSAGES_PER_ARTICLE} passages; "
            "split it into several articles or raise NEWSEARCH_CHUNK_TOKENS"
        )
    prefix = int.from_bytes(hashlib.blake2b(article_id.encode("utf-8"), digest_size=6).digest(), "big")
    return (prefix << 12) | ordinal


class _Buffers(threading.local):
    """Output buffers for blingfire's C splitter, one set per thread, grown as texts need and reused: making
    ctypes arrays for every paragraph cost more than splitting it."""

    size = 0

    def fit(self, size: int) -> _Buffers:
        """Buffers of at least `size`: this thread's, or fresh ones kept only for this call if `size` is large."""
        if size > KEEP_BUFFER:
            return _Buffers().fit_once(size)
        if size > self.size:
            self.fit_once(max(size, 2 * self.size, 4096))
        return self

    def fit_once(self, size: int) -> _Buffers:
        self.size = size
        self.out = ctypes.create_string_buffer(size)
        self.starts, self.ends = (ctypes.c_int32 * size)(), (ctypes.c_int32 * size)()
        return self


_buffers = _Buffers()
KEEP_BUFFER = 1 << 18  # larger texts get buffers of their own, so a thread never holds megabytes for one text


def _sentence_ends(text: str) -> list[int]:
    """End offsets of blingfire's sentences in `text`.

    For ASCII text byte and character offsets agree, so blingfire's own wrapper, which maps them with a
    Python loop over every byte (most of the time of highlighting a search's hits), is skipped.
    """
    if not text.isascii():
        return [end for _, end in blingfire.text_to_sentences_and_offsets(text)[1]]
    data = text.encode()
    if not data:
        return []
    size = len(data) * 2  # what blingfire's wrapper allows for the text with its sentence breaks
    buf = _buffers.fit(size)
    split = blingfire.blingfire.TextToSentencesWithOffsets  # the C library blingfire's wrapper calls (pinned 0.1.8)
    length = split(ctypes.c_char_p(data), ctypes.c_int(len(data)), ctypes.byref(buf.out), ctypes.byref(buf.starts),
                   ctypes.byref(buf.ends), ctypes.c_int(size))
    if length == -1 or length > size:
        return []
    return [end + 1 for end in buf.ends[: ctypes.string_at(buf.out, length).split(b"\0", 1)[0].count(b"\n") + 1]]


def _paragraphs(text: str) -> list[Span]:
    """(start, end) of each paragraph without its surrounding whitespace; paragraphs are parted by a blank line.

    A paragraph of one character (a bullet, a table's row label) is joined to the next one.
    """
    pieces: list[Span] = []
    start = 0
    for gap in _LINE_END.finditer(text):
        if gap.group().count("\n") > 1:
            pieces.append((start, gap.start()))
            start = gap.end()
    pieces.append((start, len(text)))
    spans: list[Span] = []
    joining = -1
    for a, b in pieces:
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())
        if lead == len(piece):
            continue
        a, b = (a + lead, b - (len(piece) - len(piece.rstrip())))
        if joining >= 0:
            a, joining = joining, -1
        elif b - a == 1:
            joining = a
            continue
        spans.append((a, b))
    if joining >= 0:
        spans.append((joining, joining + 1))
    return spans


def sentence_spans(text: str) -> list[Span]:
    """Sentence (start, end) offsets covering every non-blank character of `text`.

    Sentences never cross a paragraph break; the splitter's boundaries are only used as cut
    points, so nothing it skips can fall out of the passages.
    """
    spans: list[Span] = []
    for p_start, p_end in _paragraphs(text):
        cuts = sorted({p_start + end for end in _sentence_ends(text[p_start:p_end]) if 0 < end < p_end - p_start})
        start = p_start
        for cut in [*cuts, p_end]:
            piece = text[start:cut]
            stripped = piece.strip()
            if stripped:
                lead = len(piece) - len(piece.lstrip())
                spans.append((start + lead, start + lead + len(stripped)))
            start = cut
    return spans


def _split_long(text: str, span: Span, count: TokenCounter, limit: int) -> list[tuple[Span, int]]:
    """Cut one over-long sentence at word boundaries (or inside a word, if a word alone is too long)."""
    pieces: list[tuple[Span, int]] = []
    cur_start, cur_end, cur_tokens = -1, -1, 0
    for word in _WORD.finditer(text, span[0], span[1]):
        w_start, w_end = word.span()
        w_tokens = count(word.group())
        if w_tokens > limit:
            if cur_start >= 0:
                pieces.append(((cur_start, cur_end), cur_tokens))
                cur_start = -1
            pieces.extend(_split_word(text, (w_start, w_end), count, limit))
            continue
        if cur_start >= 0 and cur_tokens + w_tokens > limit:
            pieces.append(((cur_start, cur_end), cur_tokens))
            cur_start = -1
        if cur_start < 0:
            cur_start, cur_tokens = w_start, 0
        cur_end, cur_tokens = w_end, cur_tokens + w_tokens
    if cur_start >= 0:
        pieces.append(((cur_start, cur_end), cur_tokens))
    return pieces


def _split_word(text: str, span: Span, count: TokenCounter, limit: int) -> list[tuple[Span, int]]:
    pieces: list[tuple[Span, int]] = []
    start = span[0]
    while start < span[1]:
        # Binary search for the longest prefix within the limit; one character always fits.
        lo, hi = start + 1, span[1]
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text[start:mid]) <= limit:
                lo = mid
            else:
                hi = mid - 1
        pieces.append(((start, lo), count(text[start:lo])))
        start = lo
    return pieces


def plan_passages(text: str, count: TokenCounter, max_tokens: int, overlap: int = 1) -> list[tuple[Span, int]]:
    """Greedy packing of whole sentences into spans of at most `max_tokens` word pieces.

    Each passage after the first starts with the last `overlap` sentences of the one before, when
    they take at most half the budget, so a fact split across a boundary is still found.
    """
    units: list[tuple[Span, int]] = []
    for span in sentence_spans(text):
        tokens = count(text[span[0] : span[1]])
        units.extend([(span, tokens)] if tokens <= max_tokens else _split_long(text, span, count, max_tokens))
    passages: list[tuple[Span, int]] = []
    i = 0
    while i < len(units):
        j, tokens = i, 0
        while j < len(units) and (j == i or tokens + units[j][1] <= max_tokens):
            tokens += units[j][1]
            j += 1
        passages.append(((units[i][0][0], units[j - 1][0][1]), tokens))
        if j >= len(units):
            break
        back = 0
        carried = 0
        while back < overlap and j - back - 1 > i:
            carried += units[j - back - 1][1]
            if carried > max_tokens // 2:
                break
            back += 1
        i = j - back
    return passages


def lead_span(text: str, max_sentences: int = 2) -> Span | None:
    """The lead of a news story: its first sentences, within the first paragraph (None if no text)."""
    spans = sentence_spans(text)[: max(max_sentences, 1)]
    if not spans:
        return None
    paragraph_end = text.find("\n\n", spans[0][0])
    end = max(e for s, e in spans if paragraph_end < 0 or e <= paragraph_end or s == spans[0][0])
    return spans[0][0], end


LEAD_FOR = ("all", "untitled", "none")  # which articles get the lead passage


def has_lead_passage(article: Article, lead_sentences: int, lead_for: str = "all") -> bool:
    """Whether `article` gets a lead passage: with lead_for="untitled" only when its title is empty, since a
    titled article's passages are embedded under its title already and the lead stands in for a missing one."""
    if lead_for not in LEAD_FOR:
        raise NewsearchError(f"lead_for must be one of {LEAD_FOR}, not {lead_for!r}")
    return lead_sentences > 0 and (lead_for == "all" or (lead_for == "untitled" and not article.title))


def chunk_article(article: Article, count: TokenCounter, max_tokens: int = 200, overlap: int = 1,
                  lead_sentences: int = 0, lead_for: str = "all") -> list[Passage]:
    """The passages of one article, in order, with ids, offsets and token counts.

    With `lead_sentences`, the lead (the first sentences, which a headline sums up) also stands as a
    passage of its own, first, unless the first passage is no longer than it: matched against the
    lead alone, a headline-like query is not diluted by the rest of a long first passage. `lead_for`
    says which articles get it (has_lead_passage).
    """
    body = article.body
    planned = plan_passages(body, count, max_tokens, overlap)
    if planned and has_lead_passage(article, lead_sentences, lead_for):
        lead = lead_span(body, lead_sentences)
        if lead and lead != planned[0][0]:
            lead_tokens = count(body[lead[0] : lead[1]])
            if lead_tokens <= max_tokens:
                planned = [(lead, lead_tokens), *planned]
    # Passage ids have room for so many ordinals; the pipeline reports the article as cut short.
    return [
        Passage(passage_id(article.id, n), article.id, n, body[s:e], s, e, tokens)
        for n, ((s, e), tokens) in enumerate(planned[:MAX_PASSAGES_PER_ARTICLE])
    ]
