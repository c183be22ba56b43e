"""Answer a search: embed the query, retrieve dense and keyword candidates, fuse, filter, decay,
group by article, collapse near-duplicates, rate relevance, highlight. In-process: Searcher.open(index_dir).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, get_args

import numpy as np

from indexer.embed import Embedder
from indexer.errors import ArticleNotFound, BadQuery, StoryNotFound
from indexer.settings import Settings
from indexer.sources import control_as_spaces, lone_surrogate
from indexer.storage import open_store
from indexer.storage.base import Filter, KeywordWeights, StoredPassage, Version
from indexer.storage.filtering import CatalogFilter
from indexer.storage.manifest import check_model
from indexer.stories import summary
from search_api.ranking.fusion import best_per_group, decay, ranked, rrf, soft_max_pool
from search_api.ranking.highlight import Highlight, highlight
from search_api.ranking.query_words import idf, query_words
from search_api.ranking.relevance import Signals, background, coverage, relevance
from search_api.ranking.rerank import Reranker, rerank
from search_api.records import Group, Hit, Mode, SearchRequest, SearchResponse
from search_api.sorted_ids import SortedIds

BACKGROUND_PASSAGES = 512  # a fixed random sample: the scale of each query's cosines (search_api/ranking/relevance.py)
KEYWORD_THREADS = 4  # keyword index searches run beside the query's embedding and cosines (tantivy releases the GIL)
BY_ARTICLE = ("article", "story")  # groupings whose keys are article ids
T = TypeVar("T")


@dataclass(frozen=True)
class CatalogRows:
    """Some articles of the served version as its catalog holds them: ids, numbers, dates, sources, copy groups."""

    article_ids: list[str]
    nums: np.ndarray  # int64 article numbers
    times: np.ndarray  # seconds since 1970 (NaN: undated)
    sources: np.ndarray  # object array
    dup_groups: list[str | None]  # near-copy group (None: no copies)


def _one_of(choices: Any) -> str:
    """The values of a Literal as text: "a, b or c"."""
    *rest, last = get_args(choices)
    return f"{', '.join(rest)} or {last}"


def as_datetime(value: datetime | date | None, end: bool) -> datetime | None:
    """A filter bound as a naive UTC datetime, as dates are stored.

    With `end`, the bound is exclusive and includes `value`: a date means its whole day, a
    datetime that very instant. Bounds beyond what datetime can hold are clamped, not errors.
    """
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
            return naive + timedelta(microseconds=1) if end else naive
        return datetime(value.year, value.month, value.day) + (timedelta(days=1) if end else timedelta(0))
    except OverflowError:
        return datetime.max if value.year > 5000 else datetime.min


class Searcher:
    """Search over one opened index version with one embedder."""

    def __init__(self, version: Version, embedder: Embedder, settings: Settings,
                 reranker: Reranker | None = None):
        check_model(version.manifest, embedder.name, embedder.dim, version.index_dir, embedder.fingerprint)
        self.version = version
        self.embedder = embedder
        self.settings = settings
        self.reranker = reranker
        catalog = version.text.catalog()
        self._article_ids = catalog.article_ids  # indexed by article number (from 1)
        self._num_of = {aid: num for num, aid in enumerate(self._article_ids) if num}
        self._id_rank = np.zeros(len(self._article_ids), dtype=np.int64)  # article num -> place of its id in id order
        self._id_rank[sorted(range(len(self._article_ids)), key=self._article_ids.__getitem__)] = np.arange(
            len(self._article_ids))
        self._published = catalog.published
        self._dup_group = {aid: group for aid, group in zip(self._article_ids, catalog.dup_groups) if group}
        self._pid_at = SortedIds(catalog.passage_ids)  # passage id -> its place in _pids and _owner
        self._pids, self._owner = self._pid_at.ids, catalog.owners
        self._story = version.text.stories() or {a: a for a in self._article_ids[1:]}  # older versions: one story per article
        self.newest = max((d for d in self._published if d), default=None)
        # Filters are masks over per-article arrays, not a query per request.
        self._filter = CatalogFilter(catalog)
        self._weights = KeywordWeights(settings.title_weight, settings.lead_weight)
        # Article num -> where its passages sit in _pids (through _by_article), for the cosine of any ranked article.
        self._by_article = np.argsort(self._owner, kind="stable")
        self._article_start = np.searchsorted(self._owner[self._by_article], np.arange(len(self._article_ids) + 1))
        sample = np.random.default_rng(0).permutation(len(self._pids))[:BACKGROUND_PASSAGES]
        self._background = version.vectors.get(np.sort(self._pids[sample])) if len(sample) else np.zeros((0, 1))
        self._keyword_pool = ThreadPoolExecutor(KEYWORD_THREADS, thread_name_prefix="keyword")

    @classmethod
    def open(cls, index_dir: str | Path | None = None, settings: Settings | None = None,
             embedder: Embedder | None = None, version: str | None = None,
             reranker: Reranker | None = None) -> Searcher:
        """Open the published index (model loaded unless an embedder is given)."""
        settings = settings or Settings.from_env()
        index_dir = Path(index_dir) if index_dir else settings.index_dir
        embedder = embedder or Embedder.from_settings(settings)
        store = open_store(dataclasses.replace(settings, index_dir=index_dir), create=False)
        return cls(store.open(version), embedder, settings, reranker)

    @property
    def name(self) -> str:
        """The index version this searcher answers from."""
        return self.version.name

    def close(self) -> None:
        """Release the index files."""
        self._keyword_pool.shutdown(wait=True)
        self.version.close()

    # -- validation -------------------------------------------------------------------------------

    def validate(self, req: SearchRequest) -> None:
        """Raise BadQuery, naming the field, for a request that cannot be answered."""
        s = self.settings
        if not req.q or not control_as_spaces(req.q).strip():  # as over HTTP, where they are read as spaces
            raise BadQuery("q must not be empty or blank", "q")
        if len(req.q) > s.max_query_chars:
            raise BadQuery(f"q is {len(req.q)} characters; the limit is {s.max_query_chars}", "q")
        if lone_surrogate(req.q):  # e.g. a shell argument in bytes that are not UTF-8
            raise BadQuery("q holds a lone UTF-16 surrogate (text that is not valid UTF-8); give it as UTF-8 text", "q")
        if not 1 <= req.k <= s.max_k:
            raise BadQuery(f"k must be between 1 and {s.max_k}", "k")
        if req.offset < 0:
            raise BadQuery("offset must be 0 or more", "offset")
        if req.offset + req.k > s.candidates:
            raise BadQuery(f"offset + k must be at most {s.candidates} (results are ranked that deep)", "offset")
        if req.mode is not None and req.mode not in get_args(Mode):
            raise BadQuery(f"mode must be {_one_of(Mode)}", "mode")
        if req.group not in get_args(Group):
            raise BadQuery(f"group must be {_one_of(Group)}", "group")
        since, before = as_datetime(req.since, False), as_datetime(req.until, True)
        clamped = since == before and since in (datetime.min, datetime.max)  # both past the calendar's edge
        if since and before and since >= before and not clamped:
            raise BadQuery("since must be before until", "since")
        half_life = req.recency_half_life_days
        if half_life is not None and not (half_life > 0 and math.isfinite(half_life)):
            raise BadQuery("recency_half_life_days must be a positive, finite number of days", "recency_half_life_days")
        floor = req.min_relevance
        if floor is not None and not (0.0 <= floor <= 1.0):
            raise BadQuery("min_relevance must be between 0 and 1 (a calibrated probability; see docs/relevance.md)",
                           "min_relevance")
        if req.rerank and self.reranker is None:
            raise BadQuery("rerank needs a reranker and none is configured (no cross-encoder is packaged to load "
                           "offline; see docs/ranking.md, Re-ranking)", "rerank")

    # -- search -----------------------------------------------------------------------------------

    def search(self, req: SearchRequest) -> SearchResponse:
        """Rank, group and page the results of one request."""
        started = time.perf_counter()
        mode, order, scores, best, matches, duplicates, qvec = self._order(req)
        page = order[req.offset : req.offset + req.k]
        # The page's passages and highlights are read while the presence search runs: only the spans of a hit
        # below the floor depend on its relevance (bench/RESULTS.md, "Hybrid at 1M passages").
        signals, shown = self._signals(req, order, qvec, lambda: self._shown(req, page, best))
        # Rounded as shown, so a hit's shown relevance and the floor agree on which side of it the hit is.
        rated = dict(zip(order, np.round(relevance(signals), 4).tolist()))
        floor = self.settings.min_relevance if req.min_relevance is None else req.min_relevance
        total = sum(r >= floor for r in rated.values())
        hits = self._hits(req, page, shown, scores, matches, duplicates, rated, floor)
        took = (time.perf_counter() - started) * 1000
        return SearchResponse(req.q, self.name, round(took, 2), mode, hits, total, len(order), total == 0, floor)

    def ranking(self, req: SearchRequest) -> list[tuple[Any, list[Any]]]:
        """Every result `search` pages through for this request, in order, each key (article id, or passage
        id with group=none) with the keys collapsed into it; no hits are built (the evaluation's fast path)."""
        _, order, _, _, _, duplicates, _ = self._order(req, rated=False)
        return [(key, duplicates.get(key, [])) for key in order]

    def _order(self, req: SearchRequest, rated: bool = True):
        """(mode, ranked keys, scores, best passages, matches, duplicates, query vector) of a validated request;
        the query vector is None when nothing needs it (keyword mode, not `rated` for relevance)."""
        self.validate(req)
        mode = req.mode or self.settings.default_mode
        where = Filter(as_datetime(req.since, False), as_datetime(req.until, True), tuple(req.sources))
        allowed = self._filter.passages(where) if where else None
        # Relevance needs the query's meaning in keyword mode too; a bare ranking there does not.
        embed = rated or mode != "keyword"
        rank = self._rank_articles if req.group in BY_ARTICLE else self._rank_passages
        scores, best, matches, qvec = rank(req, mode, embed, allowed, where)
        if req.recency_half_life_days:
            dates = dict(zip(scores, (self._published[n] for n in self._key_nums(list(scores), req.group).tolist())))
            now = as_datetime(req.now, False) or self.newest or datetime.now()
            scores = decay(scores, dates, req.recency_half_life_days, now)
        order = ranked(scores)
        duplicates: dict[Any, list[Any]] = {key: [] for key in order}
        if req.group in BY_ARTICLE and req.collapse:
            order, duplicates = best_per_group(order, self._dup_group)
        if req.group == "story":  # one hit per story, its best article: the hit's `story` describes the rest
            order = best_per_group(order, self._story)[0]
        if req.rerank:
            order, new = self._rerank(req, order, best)
            scores = {**scores, **new}
        return mode, order[: self.settings.candidates], scores, best, matches, duplicates, qvec

    def signals(self, req: SearchRequest, keys: list, qvec: np.ndarray) -> Signals:
        """What the relevance of each ranked key (article id, or passage id with group=none) is computed from."""
        return self._signals(req, keys, qvec, lambda: None)[0]

    def _signals(self, req: SearchRequest, keys: list, qvec: np.ndarray, meanwhile: Callable[[], T]) -> tuple[Signals, T]:
        """`signals`, and what `meanwhile` returns: run on this thread, as the cosines are, while the keyword
        index's presence search (native, GIL released) runs in the pool."""
        nums = self._key_nums(keys, req.group)
        presence = self._keyword_pool.submit(self.version.text.word_presence, query_words(req.q), nums.tolist())
        if req.group in BY_ARTICLE:
            cosine = self._article_cosines(nums, qvec)
        else:
            cosine = self.version.vectors.get(np.array(keys, dtype=np.int64)) @ qvec if keys else np.zeros(0)
        mean, sd = background(qvec, self._background)
        done = meanwhile()
        n_rows, df, present = presence.result()
        return Signals(cosine, coverage([idf(n_rows, int(d)) for d in df], present), mean, sd), done

    def _article_cosines(self, nums: np.ndarray, qvec: np.ndarray) -> np.ndarray:
        """Each article's best passage cosine to the query (-1 for an article without passages)."""
        pids, owner = self.passages_of(nums)
        cosines = self.version.vectors.get(pids) @ qvec
        best = np.full(len(nums), -1.0)
        np.maximum.at(best, owner, cosines)
        return best

    def passages_of(self, nums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The passage ids of some articles (by number), article by article in `nums` order, and each passage's
        place in `nums`."""
        starts, ends = self._article_start[nums], self._article_start[nums + 1]
        owner = np.repeat(np.arange(len(nums)), ends - starts)
        # Each passage's place in its article's run, added to the run's start: the runs of every article at once.
        first = np.cumsum(ends - starts) - (ends - starts)
        positions = starts[owner] + np.arange(len(owner)) - first[owner]
        return self._pids[self._by_article[positions]], owner

    # -- a batch of articles, as alerts read it -----------------------------------------------------

    @property
    def article_count(self) -> int:
        """Articles in the served version."""
        return len(self._article_ids) - 1  # number 0 is no article

    @property
    def article_ids(self) -> list[str]:
        """The ids of the served version's articles (a copy), by article number."""
        return self._article_ids[1:]

    def catalog_rows(self, article_ids: Iterable[str]) -> CatalogRows:
        """The given articles this version holds (sorted), with their numbers, dates, sources and copy groups."""
        present = sorted(a for a in set(article_ids) if a in self._num_of)
        nums = np.array([self._num_of[a] for a in present], dtype=np.int64)
        return CatalogRows(present, nums, self._filter.times[nums], self._filter.sources[nums],
                           [self._dup_group.get(a) for a in present])

    def keyword_articles(self, words: list[str], depth: int) -> list[tuple[str, float]]:
        """The `depth` best articles holding the words, BM25-scored with the column weights /search uses."""
        return self.version.text.keyword_articles(words, depth, self._weights)

    def _key_nums(self, keys: list, group: str) -> np.ndarray:
        """The article number of each key (an article id, or a passage id with group=none)."""
        if group in BY_ARTICLE:
            return np.array([self._num_of[key] for key in keys], dtype=np.int64)
        return self._owner[self._pid_at.positions(np.array(keys, dtype=np.int64))].astype(np.int64)

    def _dense_passages(self, qvec: np.ndarray, n: int, allowed: np.ndarray | None,
                        where: Filter) -> tuple[np.ndarray, np.ndarray]:
        return self.version.vectors.search(qvec, n, allowed, where if where else None)

    def _dense_articles(self, qvec: np.ndarray, depth: int, allowed: np.ndarray | None, where: Filter):
        """Top `depth` articles by their pooled passage scores: (ranking, best pid, score, passages per article)."""
        total = len(allowed) if allowed is not None else len(self._pids)
        n = min(depth * 4, total)
        while True:
            scores, pids = self._dense_passages(qvec, n, allowed, where)
            pooled = soft_max_pool(self._owner[self._pid_at.positions(pids)], scores,
                                   self.settings.pool_temperature)
            if len(pooled.groups) >= depth or n >= total:
                break
            n = min(n * 2, total)
        # Ties go to the smaller article id, as `ranked` breaks them.
        order = np.lexsort((self._id_rank[pooled.groups], -pooled.scores))[:depth]
        ids = self._article_ids
        top = [ids[num] for num in pooled.groups[order].tolist()]
        matches = dict(zip([ids[num] for num in pooled.groups.tolist()], pooled.counts.tolist()))
        return (top, dict(zip(top, pids[pooled.best[order]].tolist())), dict(zip(top, pooled.scores[order].tolist())),
                matches)

    def _rank_articles(self, req, mode, embed: bool, allowed, where: Filter):
        """(scores, best passages, matches, query vector or None) of articles; the query is embedded if `embed`."""
        depth = self.settings.candidates
        # The article keyword search runs while the query is embedded and the vectors searched: at 1M passages
        # each is a few ms of native code that releases the GIL (bench/RESULTS.md, "Hybrid at 1M passages").
        keyword = self._keyword_pool.submit(
            self.version.text.keyword_articles, query_words(req.q, self.settings.keyword_stop_words), depth,
            self._weights, where or None) if mode != "dense" else None
        qvec = self.embedder.encode_query(req.q) if embed else None
        if mode == "keyword":
            return dict(keyword.result()), {}, {}, qvec
        dense_rank, best, scores, matches = self._dense_articles(qvec, depth, allowed, where)
        if keyword is None:
            return scores, best, matches, qvec
        kw = keyword.result()
        scores = rrf([dense_rank, [aid for aid, _ in kw]], [self.settings.dense_weight, self.settings.keyword_weight],
                     self.settings.rrf_k)
        return scores, best, matches, qvec

    def _rank_passages(self, req, mode, embed: bool, allowed, where: Filter):
        """(scores, {}, {}, query vector or None) of passages; the query is embedded if `embed`."""
        depth = self.settings.candidates
        qvec = self.embedder.encode_query(req.q) if embed else None
        dense: dict[int, float] = {}
        if mode != "keyword":
            s, p = self._dense_passages(qvec, depth, allowed, where)
            dense = dict(zip(p.tolist(), s.tolist()))
        if mode == "dense":
            return dense, {}, {}, qvec
        kw = dict(self.version.text.keyword_passages(query_words(req.q), depth, self.settings.title_weight,
                                                     where or None))
        if mode == "keyword":
            return kw, {}, {}, qvec
        return rrf([ranked(dense), ranked(kw)], [self.settings.dense_weight, self.settings.keyword_weight],
                   self.settings.rrf_k), {}, {}, qvec

    def _passage_ids(self, req, keys: list, best: dict[str, int]) -> list[int]:
        """The passage shown for each key: itself, or the article's best dense, keyword or first passage."""
        if req.group not in BY_ARTICLE:
            return list(keys)
        missing = [aid for aid in keys if aid not in best]
        best = {**best, **self.version.text.best_keyword_passages(query_words(req.q), missing)}
        still = [aid for aid in keys if aid not in best]
        if still:
            best.update(self.version.text.first_passages(still))
        return [best[aid] for aid in keys]

    def _rerank(self, req, order: list, best: dict[str, int]) -> tuple[list, dict]:
        top = order[: self.settings.rerank_depth]
        pids = self._passage_ids(req, top, best)
        stored = self.version.text.passages(pids)
        texts = {key: stored[pid].text for key, pid in zip(top, pids)}
        return rerank(order, texts, req.q, self.reranker, len(top))

    def _shown(self, req, page: list, best: dict[str, int]) -> list[tuple[StoredPassage, Highlight]]:
        """The passage shown for each key of the page, with its highlight."""
        pids = self._passage_ids(req, page, best)
        stored = self.version.text.passages(pids)
        return [(stored[pid], highlight(stored[pid].text, req.q)) for pid in pids]

    def _hits(self, req, page, shown, scores, matches, duplicates, rated, floor) -> list[Hit]:
        hits = []
        for rank, (key, (p, light)) in enumerate(zip(page, shown, strict=True), req.offset + 1):
            # A sentence marked on a hit below the floor would claim a match the hit does not have.
            spans = light.spans if rated[key] >= floor else []
            hits.append(Hit(
                rank=rank, score=round(float(scores[key]), 6), passage_id=p.id, text=p.text, start=p.start, end=p.end,
                article_id=p.article_id, title=p.title, published=p.published, source=p.source, url=p.url,
                matched_passages=max(matches.get(key, 1) - 1, 0) if req.group in BY_ARTICLE else 0,
                duplicates=sorted(duplicates.get(key, [])) if req.group in BY_ARTICLE else [],
                highlights=spans, matched_terms=light.terms, relevance=rated[key],
                story=self.story(self._story[key], summary_only=True) if req.group == "story" else None,
            ))
        return hits

    # -- articles and stats -----------------------------------------------------------------------

    def article(self, article_id: str) -> dict[str, Any]:
        """One article with its body and passages; ArticleNotFound if the id is unknown."""
        found = self.version.text.article(article_id)
        if found is None:
            raise ArticleNotFound(f"no article with id {article_id!r} in index version {self.name}")
        found["duplicates"] = sorted(a for a, g in self._dup_group.items()
                                     if found["dup_group"] and g == found["dup_group"] and a != article_id)
        return found

    def story(self, story_id: str, summary_only: bool = False) -> dict[str, Any]:
        """One story's summary and (unless `summary_only`) its articles in time order; StoryNotFound if unknown."""
        timeline = self.version.text.story_articles(story_id)
        if not timeline:
            raise StoryNotFound(f"no story with id {story_id!r} in index version {self.name}; story ids come from "
                                "search hits (group=story) or an article's story_id")
        return summary(story_id, timeline) if summary_only else {**summary(story_id, timeline), "timeline": timeline}

    def story_of(self, article_id: str) -> str:
        """The story id of an article; ArticleNotFound if the id is unknown."""
        if article_id not in self._num_of:
            raise ArticleNotFound(f"no article with id {article_id!r} in index version {self.name}")
        return self._story[article_id]

    def stats(self) -> dict[str, Any]:
        """Index version, counts, model and date range."""
        m = self.version.manifest
        oldest, newest = self.version.text.date_range()
        return {"index_version": self.name, "created": m["created"], "articles": m["counts"]["articles"],
                "passages": m["counts"]["passages"], "duplicate_groups": m["counts"].get("duplicate_groups", 0),
                "model": m["model"], "chunking": m["chunking"], "faiss": m.get("faiss", {}),
                "oldest": oldest, "newest": newest, "sources": dict(self.version.text.sources()),
                "limits": {"max_k": self.settings.max_k, "candidates": self.settings.candidates,
                           "max_query_chars": self.settings.max_query_chars}}
