"""The words of a query that keyword (BM25) search looks for; the search itself is the storage layer's
(indexer.storage.base.TextIndex.keyword_articles and keyword_passages), and the idf the relevance signals
weigh them by. Pure.
"""

from __future__ import annotations

import math

from search_api.ranking.highlight import query_terms, words_of


def query_words(text: str, drop_stop_words: bool = True) -> list[str]:
    """The distinct words of a query that keyword search looks for (at most 64).

    With `drop_stop_words` (settings.keyword_stop_words) stop words are left out unless nothing else is
    left: they add little to BM25 but make FTS5 score nearly every row.
    """
    return (query_terms(text) if drop_stop_words else words_of(text))[:64]


def idf(n_rows: int, hits: int) -> float:
    """FTS5's idf of a word that `hits` of `n_rows` articles hold (at least 1e-6), as the relevance calibration
    was fitted with (docs/relevance.md). `hits` may exceed `n_rows`: after an update tantivy's document
    frequencies still count the replaced copies of changed articles until its segments merge."""
    hits = min(hits, n_rows)
    value = math.log((n_rows - hits + 0.5) / (hits + 0.5))
    return value if value > 0.0 else 1e-6
