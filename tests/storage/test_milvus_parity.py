"""corpus/ built into the Milvus store (Milvus Lite) ranks as the local store does: the same Searcher over each gives
the same top-10 articles for at least 90% of hits in dense, keyword and hybrid modes (bench/milvus_parity.py
measures the same on a Reuters sample)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.milvus_parity import MODES, overlap, top_articles, topic_queries
from indexer.pipeline import build
from indexer.storage import open_store
from search_api.searcher import Searcher
from tests.helpers import CORPUS


@pytest.mark.slow
def test_milvus_ranks_corpus_as_the_local_store_does(searcher, corpus_settings, embedder, tmp_path):
    settings = corpus_settings.replace(index_dir=tmp_path / "milvus", store="milvus")
    build([CORPUS], settings, embedder, progress=False)
    milvus = Searcher(open_store(settings).open(), embedder, settings)
    queries = sorted(set(searcher.version.text.titles().values())) + topic_queries()
    for mode in MODES:
        shared = [overlap(top_articles(searcher, q, mode), top_articles(milvus, q, mode)) for q in queries]
        assert np.mean(shared) >= 0.9, (mode, np.mean(shared))
        if mode == "dense":  # the same vectors, exact search in both: the same articles
            assert min(shared) == 1.0
