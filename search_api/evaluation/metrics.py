"""Retrieval metrics over ranked ids and graded relevance judgements (BEIR qrels). Pure functions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Qrels = Mapping[str, Mapping[str, int]]  # query id -> doc id -> relevance grade (> 0 is relevant)
Run = Mapping[str, Sequence[str]]  # query id -> ranked doc ids, best first


def ndcg_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain of the top k (linear gains, as trec_eval and BEIR)."""
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    if idcg == 0:
        return 0.0
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    return dcg / idcg


def mrr_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant doc in the top k, else 0."""
    for i, doc in enumerate(ranking[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def precision_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Relevant docs among the top k, divided by k (a short ranking is not given credit for its length)."""
    return sum(relevant.get(doc, 0) > 0 for doc in ranking[:k]) / k


def recall_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 100) -> float:
    """Share of the relevant docs found in the top k."""
    wanted = {doc for doc, g in relevant.items() if g > 0}
    if not wanted:
        return 0.0
    return len(wanted & set(ranking[:k])) / len(wanted)


METRICS = {
    "ndcg@10": lambda r, rel: ndcg_at(r, rel, 10),
    "mrr@10": lambda r, rel: mrr_at(r, rel, 10),
    "p@10": lambda r, rel: precision_at(r, rel, 10),
    "recall@100": lambda r, rel: recall_at(r, rel, 100),
}


def per_query(run: Run, qrels: Qrels) -> dict[str, dict[str, float]]:
    """Every metric for every judged query; a judged query missing from the run scores 0."""
    out = {}
    for qid, relevant in sorted(qrels.items()):
        if not any(g > 0 for g in relevant.values()):
            continue  # as BEIR: a query without relevant docs cannot be scored
        ranking = list(run.get(qid, ()))
        out[qid] = {name: fn(ranking, relevant) for name, fn in METRICS.items()}
    return out


def mean_scores(scores: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each metric averaged over queries (0 for no queries)."""
    n = len(scores)
    return {name: (sum(s[name] for s in scores.values()) / n if n else 0.0) for name in METRICS}


def dedupe(ranking: Sequence[str]) -> list[str]:
    """A ranking with repeated ids dropped after their first place (a doc is credited once)."""
    return list(dict.fromkeys(ranking))
