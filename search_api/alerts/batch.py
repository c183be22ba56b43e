"""Evaluate alerts against the new and changed articles of one update on the served Searcher: the batch's passage
vectors are read once, the alerts' queries embedded in one batched call, each alert ranked over the batch alone
(search_api.alerts.match) and rated by the Searcher's own relevance signals, as /search rates a hit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime

import numpy as np

from indexer.alerts_store import Alert, Match
from indexer.errors import BadQuery
from indexer.storage.filtering import epoch
from search_api.alerts.match import Batch, Ranking, above, allowed, dense_scores, rank
from search_api.ranking.query_words import query_words
from search_api.ranking.relevance import relevance
from search_api.searcher import Searcher, SearchRequest, as_datetime

log = logging.getLogger("newsearch.alerts")


def batch_of(searcher: Searcher, article_ids: Sequence[str]) -> Batch:
    """The batch's articles that the served version holds, with their passages and vectors."""
    rows = searcher.catalog_rows(article_ids)
    pids, owner = searcher.passages_of(rows.nums)
    return Batch(rows.article_ids, rows.times, rows.sources, rows.dup_groups, pids, owner,
                 searcher.version.vectors.get(pids))


def request_of(alert: Alert) -> SearchRequest:
    """The /search request an alert stands for."""
    return SearchRequest(q=alert.query, mode=alert.mode, since=_when(alert.since), until=_when(alert.until),
                         sources=alert.sources, min_relevance=alert.min_relevance)


def _when(value: str | None) -> datetime | date | None:
    if value is None:
        return None
    return datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)


def keyword_scores(searcher: Searcher, q: str, batch: Batch, keep: np.ndarray, every: int) -> dict[str, float]:
    """BM25 scores of the kept articles of the batch that hold a query word, as /search's keyword side scores them
    (asked for every match: the store ranks the whole index, from memory when its postings are loaded)."""
    if not keep.any():
        return {}
    words = query_words(q, searcher.settings.keyword_stop_words)
    found = dict(searcher.keyword_articles(words, every))
    return {aid: found[aid] for aid, k in zip(batch.article_ids, keep.tolist()) if k and aid in found}


def ranking_of(searcher: Searcher) -> Ranking:
    """The settings that shape /search's ranking on this searcher."""
    s = searcher.settings
    return Ranking(s.pool_temperature, s.rrf_k, s.dense_weight, s.keyword_weight, s.candidates)


def evaluate(searcher: Searcher, alerts: Sequence[Alert], article_ids: Sequence[str], version: str) -> list[Match]:
    """Every alert's matches among `article_ids` (those the served version holds), recorded as brought by `version`."""
    batch = batch_of(searcher, article_ids)
    every = searcher.article_count
    if not alerts or not batch.article_ids:
        return []
    queries = searcher.embedder.encode_queries([a.query for a in alerts])
    cosines = queries @ batch.vectors.T  # the only passages scored: the batch's
    found: list[tuple[Alert, str, int, float, float]] = []
    for alert, qvec, row in zip(alerts, queries, cosines):
        req = request_of(alert)
        try:
            searcher.validate(req)
        except BadQuery as exc:  # valid when saved; the server's limits may have changed since
            log.warning("alert %s skipped: %s", alert.id, exc)
            continue
        mode = req.mode or searcher.settings.default_mode
        since, before = as_datetime(req.since, False), as_datetime(req.until, True)
        keep = allowed(batch, epoch(since) if since else None, epoch(before) if before else None, req.sources)
        dense, best = dense_scores(batch, row, keep, searcher.settings.pool_temperature)
        words = keyword_scores(searcher, req.q, batch, keep, every) if mode != "dense" else {}
        order, scores = rank(batch, mode, dense, words, ranking_of(searcher))
        if not order:
            continue
        floor = searcher.settings.min_relevance if req.min_relevance is None else req.min_relevance
        rated = relevance(searcher.signals(req, order, qvec))
        found += [(alert, aid, best[aid], scores[aid], r) for aid, r in above(order, rated, floor)]
    stored = searcher.version.text.passages([pid for _, _, pid, _, _ in found])
    out = []
    for alert, aid, pid, score, rated in found:
        p = stored[pid]
        out.append(Match(alert.id, aid, version, pid, p.text, p.title, p.published.isoformat() if p.published else None,
                         p.source, p.url, round(float(score), 6), rated))
    return out
