"""Story clusters: articles that report the same event, across outlets and days. Pure functions over
dates, article vectors and keyword sets; thresholds fitted on judged Reuters pairs (bench/RESULTS.md, "Stories").
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from indexer.chunk import lead_span
from indexer.records import Article
from indexer.storage.filtering import epoch

_WORD = re.compile(r"[^\W_]+")
DAY = 86400.0


@dataclass(frozen=True)
class StoryParams:
    """When an article joins an earlier one's story (fitted in bench/stories_quality.py)."""

    threshold: float = 0.8  # cosine of the two articles' vectors (mean of their passage vectors)
    # idf-weighted overlap of the words of title and lead; 0: not used, dense similarity alone decides (the overlap
    # did not hold up on the checking half of the judged pairs: bench/RESULTS.md, "Stories").
    min_overlap: float = 0.0
    window_days: float = 1.0  # at most this far apart in time
    max_span_days: float = 3.0  # and at most this far from the story's first article: daily reports do not chain


def keywords(title: str, body: str) -> frozenset[str]:
    """The words of an article's title and lead, casefolded (the keyword side of story links)."""
    span = lead_span(body)
    lead = body[span[0] : span[1]] if span else body[:300]
    return frozenset(_WORD.findall(f"{title} {lead}".casefold()))


def idf(word_sets: Sequence[frozenset[str]]) -> dict[str, float]:
    """Inverse document frequency of each word over the articles: rare names weigh, boilerplate does not."""
    df = Counter(w for words in word_sets for w in words)
    n = len(word_sets)
    return {w: math.log((n + 1) / (c + 0.5)) for w, c in df.items()}


def overlap(a: frozenset[str], b: frozenset[str], weights: Mapping[str, float]) -> float:
    """Weighted Jaccard of two word sets: the idf of the shared words over that of all their words."""
    union = sum(weights.get(w, 0.0) for w in a | b)
    return sum(weights.get(w, 0.0) for w in a & b) / union if union else 0.0


def story_order(ids: Sequence[str], published: Sequence[datetime | None]) -> list[int]:
    """Rows in the order stories are built: by publication time, then id; undated articles last."""
    return sorted(range(len(ids)), key=lambda i: (published[i] is None, published[i] or datetime.min, ids[i]))


def neighbours(order: Sequence[int], days: np.ndarray, vectors: np.ndarray, window_days: float, floor: float,
               block: int = 512) -> dict[int, list[tuple[int, float]]]:
    """For each row, the rows within `window_days` of it (either side) whose cosine is at least `floor`,
    computed block by block over the time-sorted rows so cost grows with the articles in a window."""
    dated = [i for i in order if not math.isnan(days[i])]
    times = [days[i] for i in dated]
    rows = np.array(dated, dtype=np.int64)
    out: dict[int, list[tuple[int, float]]] = {}
    for start in range(0, len(dated), block):
        lo = bisect_left(times, times[start] - window_days)
        hi = bisect_right(times, times[min(start + block, len(dated)) - 1] + window_days)
        mine, theirs = rows[start : start + block], rows[lo:hi]
        sims = vectors[mine] @ vectors[theirs].T
        near = np.abs(days[mine][:, None] - days[theirs][None, :]) <= window_days
        for r, c in zip(*np.nonzero((sims >= floor) & near)):
            i, j = int(mine[r]), int(theirs[c])
            if i != j:
                out.setdefault(i, []).append((j, float(sims[r, c])))
    return out


Link = tuple[int, float, float]  # (neighbour row, cosine, keyword overlap)


def candidate_links(ids: Sequence[str], published: Sequence[datetime | None], vectors: np.ndarray,
                    words: Sequence[frozenset[str]] | None, window_days: float, floor: float) -> dict[int, list[Link]]:
    """Each row's neighbours within `window_days` with cosine >= `floor`, with their keyword overlap (1.0
    for all when `words` is None)."""
    days = day_numbers(published)
    near = neighbours(story_order(ids, published), days, np.ascontiguousarray(vectors, dtype=np.float32),
                      window_days, floor)
    if words is None:  # the keyword side unused: every link passes it
        return {i: [(j, cos, 1.0) for j, cos in pairs] for i, pairs in near.items()}
    weights = idf(words)
    return {i: [(j, cos, overlap(words[i], words[j], weights)) for j, cos in pairs] for i, pairs in near.items()}


def day_numbers(published: Sequence[datetime | None]) -> np.ndarray:
    """Publication times (naive UTC, as stored) in days since 1970, NaN when undated. Not `datetime.timestamp`,
    which reads a naive time in the machine's time zone and fails on the first day of year 1."""
    return np.array([epoch(p) / DAY for p in published])


def assign_stories(ids: Sequence[str], published: Sequence[datetime | None], vectors: np.ndarray,
                   words: Sequence[frozenset[str]] | None, dup_groups: Mapping[str, str] | None = None,
                   params: StoryParams = StoryParams(), previous: Mapping[str, str] | None = None,
                   ) -> dict[str, str]:
    """Map every article id to its story id.

    Articles are taken in time order (then id). An article in `previous` (unchanged since the last version)
    keeps its story; any other joins the story of a copy already placed, else of its most similar placed
    neighbour that passes every test of `params`, else starts a story named after itself. Without `previous`
    the result depends only on the articles, so a re-run gives the same stories; with it, stories of the
    earlier version never change and new articles join them or start new ones. `words` (see `keywords`) may
    be None when params.min_overlap is 0.
    """
    links = candidate_links(ids, published, vectors, words, params.window_days, params.threshold)
    return cluster(ids, published, links, params, dup_groups, previous)


def cluster(ids: Sequence[str], published: Sequence[datetime | None], links: Mapping[int, list[Link]],
            params: StoryParams, dup_groups: Mapping[str, str] | None = None,
            previous: Mapping[str, str] | None = None) -> dict[str, str]:
    """The story of each article from precomputed links (see assign_stories); links beyond `params` are ignored,
    so one set of links computed at the loosest parameters serves every stricter setting."""
    previous = previous or {}
    dup_groups = dup_groups or {}
    days = day_numbers(published)
    story: dict[int, str] = {i: previous[ids[i]] for i in range(len(ids)) if ids[i] in previous}
    start: dict[str, float] = {}
    for i, s in story.items():
        if not math.isnan(days[i]):
            start[s] = min(start.get(s, days[i]), days[i])
    by_group: dict[str, str] = {dup_groups[ids[i]]: s for i, s in story.items() if ids[i] in dup_groups}
    taken = set(story.values())
    for i in story_order(ids, published):
        if i not in story:
            story[i] = (by_group.get(dup_groups.get(ids[i], ""))
                        or _best_story(i, links.get(i, ()), story, start, days, params) or _new_name(ids[i], taken))
            taken.add(story[i])
            if not math.isnan(days[i]):
                start[story[i]] = min(start.get(story[i], days[i]), days[i])
        if ids[i] in dup_groups:
            by_group.setdefault(dup_groups[ids[i]], story[i])
    return {ids[i]: s for i, s in story.items()}


def _new_name(article_id: str, taken: set[str]) -> str:
    """A new story's id: its first article's, unless a kept story already has it (that article changed or was
    deleted and added again, and the story it named lives on in its other articles): then the id with ~2, ~3..."""
    name, n = article_id, 1
    while name in taken:
        n += 1
        name = f"{article_id}~{n}"
    return name


def _best_story(i: int, candidates: Sequence[Link], story: Mapping[int, str], start: Mapping[str, float],
                days: np.ndarray, params: StoryParams) -> str | None:
    """The story of the most similar placed neighbour that passes every test of `params`, if any."""
    best: tuple[float, str] | None = None
    for j, cos, shared in candidates:
        s = story.get(j)
        if (s is None or cos < params.threshold or shared < params.min_overlap
                or abs(days[i] - days[j]) > params.window_days
                or abs(days[i] - start.get(s, days[i])) > params.max_span_days):
            continue
        if best is None or cos > best[0]:
            best = (cos, s)
    return best[1] if best else None


def article_stories(articles: Sequence[Article], vectors: np.ndarray, dup_groups: Mapping[str, str],
                    previous: Mapping[str, str] | None = None, params: StoryParams = StoryParams()) -> dict[str, str]:
    """The story of each article of a version being written (rows of `vectors` are the articles' vectors)."""
    words = [keywords(a.title, a.body) for a in articles] if params.min_overlap > 0 else None
    return assign_stories([a.id for a in articles], [a.published for a in articles], vectors, words, dup_groups,
                          params, previous)


def summary(story_id: str, timeline: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A story's size, date span, sources and headline (its first article's title) from its time-ordered
    articles (dicts with title, published and source)."""
    dates = [a["published"] for a in timeline if a["published"] is not None]
    return {"id": story_id, "articles": len(timeline), "first_published": min(dates, default=None),
            "last_published": max(dates, default=None),
            "sources": sorted({a["source"] for a in timeline if a["source"]}),
            "headline": timeline[0]["title"] if timeline else ""}
