"""Batch engines: who runs the steps (steps.py) of read+clean, chunk and embed for the jobs above them (build,
update). `local` runs them in this process; `ray` (ray_engine.py, built on EngineBase) runs them as Ray Data
pipelines. Both return the same records and vectors, so the index they write is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from indexer.cache import EmbeddingCache, open_cache
from indexer.embed import Embedder
from indexer.records import Article, Passage
from indexer.settings import Settings
from indexer.steps import Corpus, ProgressFn, chunk_all, embed_all, read_corpus


class Engine(Protocol):
    """The heavy steps of a batch job; used as a context manager that releases its resources."""

    name: str
    received_bytes: int

    def read(self, paths: Sequence[Path], strict: bool) -> Corpus: ...
    def chunk(self, articles: Sequence[Article]) -> dict[str, list[Passage]]: ...
    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]: ...
    def __enter__(self) -> Engine: ...
    def __exit__(self, *exc: object) -> None: ...


class EngineBase:
    """What every engine is given: settings, the driver's embedder, and how to report progress."""

    def __init__(self, settings: Settings, embedder: Embedder, progress: bool = True,
                 on_progress: ProgressFn | None = None):
        self.settings = settings
        self.embedder = embedder
        self.progress = progress
        self.on_progress = on_progress
        self.cache: EmbeddingCache | None = None
        self.received_bytes = 0  # results the driver took from workers while embedding (bench/ray_write.py)

    def __enter__(self) -> EngineBase:
        self.cache = open_cache(self.settings, self.embedder)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cache is not None:
            self.cache.close()
            self.cache = None


class LocalEngine(EngineBase):
    """Everything in this process, the model on this machine's cores."""

    name = "local"

    def read(self, paths: Sequence[Path], strict: bool) -> Corpus:
        """Read and clean the corpus."""
        if self.on_progress:
            self.on_progress("reading", 0, 0)
        return read_corpus(paths, strict, self.progress)

    def chunk(self, articles: Sequence[Article]) -> dict[str, list[Passage]]:
        """Split articles into passages."""
        if self.on_progress:
            self.on_progress("chunking", 0, len(articles))
        return chunk_all(articles, self.settings, self.embedder)

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Vectors of `texts` (cached ones reused), and how many were computed."""
        return embed_all(texts, self.embedder, self.cache, self.progress, self.settings.checkpoint_passages,
                         self.on_progress)

