"""Pick the sentences of a passage that best match a query, and the query terms it contains. Pure."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

from indexer.chunk import sentence_spans

_TOKEN = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    "a an and are as at be been but by for from has have he her his i if in into is it its of on or our "
    "she so than that the their them then there these they this to was we were what when where which who "
    "will with would you said says say".split()
)


_local = threading.local()


def _stemmer() -> snowballstemmer.stemmer:
    # One per thread: a snowball stemmer keeps the word being stemmed in itself, so requests served
    # in parallel threads would corrupt each other's words.
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = snowballstemmer.stemmer("english")
    return stemmer


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """Lower-case English stem of one word (cached: news vocabulary repeats)."""
    return _stemmer().stemWord(word.casefold())


def words_of(query: str) -> list[str]:
    """Distinct lower-case words of a query, in order."""
    return list(dict.fromkeys(m.group().casefold() for m in _TOKEN.finditer(query)))


def query_terms(query: str) -> list[str]:
    """Distinct content words of a query, in order (stop words dropped unless nothing else is left)."""
    words = words_of(query)
    content = [w for w in words if w not in STOPWORDS]
    return content or words


@dataclass(frozen=True)
class Highlight:
    """Offsets into the passage text of the best sentences, and the query terms found."""

    spans: list[tuple[int, int]]
    terms: list[str]


def highlight(text: str, query: str, max_sentences: int = 1) -> Highlight:
    """The passage's best-matching sentence(s) by matched query stems (rarer, longer words weigh more).

    With no matching word, the first sentence stands for the passage.
    """
    terms = query_terms(query)
    stems = {stem(t): t for t in terms}
    # Longer words are usually rarer and more telling ("Palmyra" over "army").
    weight = {s: math.log(2 + len(s)) for s in stems}
    spans = sentence_spans(text)
    if not spans:
        return Highlight([], [])
    found: set[str] = set()
    scored: list[tuple[float, int]] = []
    for i, (start, end) in enumerate(spans):
        words = set(map(stem, _TOKEN.findall(text, start, end)))
        hit = words & stems.keys()
        found |= hit
        # Summed smallest first: a set's order follows the process's hash seed and a float sum depends on its order,
        # so sentences holding equally weighted words would tie or not by chance.
        scored.append((sum(sorted(weight[s] for s in hit)), i))
    best = sorted(scored, key=lambda si: (-si[0], si[1]))[:max_sentences]
    chosen = [spans[i] for score, i in best if score > 0] or [spans[0]]
    return Highlight(sorted(chosen), [stems[s] for s in stems if s in found])
