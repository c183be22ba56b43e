"""Pure matching core of alerts: rank one batch's articles for each alert as /search ranks them (pooled passage
cosines, keyword scores, fusion, collapse), then keep those whose relevance clears the floor. No I/O, no model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from search_api.ranking.fusion import best_per_group, ranked, rrf, soft_max_pool


@dataclass(frozen=True)
class Batch:
    """A batch's articles as ranking sees them: per article (id, filter fields, copy group), then its passages."""

    article_ids: list[str]
    times: np.ndarray  # seconds since 1970 (NaN: undated), per article
    sources: np.ndarray  # object array, per article
    dup_groups: list[str | None]  # near-copy group, per article (None: no copies)
    pids: np.ndarray  # int64 passage ids
    owner: np.ndarray  # per passage, the index of its article in article_ids
    vectors: np.ndarray  # float32 (passages x dim)


@dataclass(frozen=True)
class Ranking:
    """The /search settings that shape a ranking."""

    pool_temperature: float
    rrf_k: float
    dense_weight: float
    keyword_weight: float
    candidates: int


def allowed(batch: Batch, since: float | None, before: float | None, sources: Sequence[str]) -> np.ndarray:
    """Mask of the articles published in [since, before) (seconds since 1970) by one of `sources` (any if empty)."""
    keep = np.ones(len(batch.article_ids), dtype=bool)
    with np.errstate(invalid="ignore"):  # undated (NaN) articles fail any date bound, as in /search
        if since is not None:
            keep &= batch.times >= since
        if before is not None:
            keep &= batch.times < before
    if sources:
        keep &= np.isin(batch.sources, list(sources))
    return keep


def dense_scores(batch: Batch, cosines: np.ndarray, keep: np.ndarray, temperature: float
                 ) -> tuple[dict[str, float], dict[str, int]]:
    """Each kept article's pooled score over its passages' cosines, and its best passage id."""
    passages = np.flatnonzero(keep[batch.owner])
    pooled = soft_max_pool(batch.owner[passages], cosines[passages], temperature)
    ids = [batch.article_ids[a] for a in pooled.groups.tolist()]
    return (dict(zip(ids, pooled.scores.tolist())),
            dict(zip(ids, batch.pids[passages[pooled.best]].tolist())))


def rank(batch: Batch, mode: str, dense: Mapping[str, float], keyword: Mapping[str, float], params: Ranking
         ) -> tuple[list[str], dict[str, float]]:
    """The batch's ranked article ids for one alert (copies collapsed into their best, cut at the candidate depth)
    and their scores, fused as /search fuses them."""
    if mode == "dense":
        scores = dict(dense)
    elif mode == "keyword":
        scores = dict(keyword)
    else:
        scores = rrf([ranked(dense), ranked(keyword)], [params.dense_weight, params.keyword_weight], params.rrf_k)
    groups = {aid: g for aid, g in zip(batch.article_ids, batch.dup_groups) if g}
    order, _ = best_per_group(ranked(scores), groups)
    return order[: params.candidates], scores


def above(order: Sequence[str], rated: Sequence[float], floor: float) -> list[tuple[str, float]]:
    """(article id, relevance) of the ranked articles whose relevance, rounded as /search shows it, clears the floor."""
    shown = np.round(np.asarray(rated, dtype=np.float64), 4).tolist()
    return [(aid, r) for aid, r in zip(order, shown) if r >= floor]
