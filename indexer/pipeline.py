"""The build job: run the steps (steps.py) on an engine (engines.py, ray_engine.py), write a version and publish
it. `update.py` is the other job, over the same steps and engines.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from indexer.embed import Embedder
from indexer.engines import Engine, LocalEngine
from indexer.leases import writer_lock
from indexer.settings import Settings
from indexer.sources import CorpusReader, Problem
from indexer.steps import Prepared, ProgressFn, cut_short, embedding_texts, write_prepared
from indexer.storage import open_store


@dataclass
class BuildReport:
    """What a build did, for the CLI summary and benchmarks."""

    version: str
    articles: int
    passages: int
    problems: list[Problem]
    seconds: float
    embed_seconds: float
    embedded: int
    index_bytes: int

    def summary(self) -> str:
        """A few lines for a human."""
        lines = [
            f"published {self.version}: {self.articles} articles, {self.passages} passages "
            f"({self.embedded} embedded) in {self.seconds:.1f}s "
            f"({self.articles / max(self.seconds, 1e-9):.1f} articles/s, "
            f"{self.embedded / max(self.embed_seconds, 1e-9):.1f} passages/s embedding), "
            f"index {self.index_bytes / 1e6:.1f} MB",
        ]
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s) reported on stderr")
        return "\n".join(lines)



def make_engine(settings: Settings, embedder: Embedder, progress: bool = True,
                on_progress: ProgressFn | None = None) -> Engine:
    """The engine the settings name (NEWSEARCH_ENGINE / --engine)."""
    if settings.engine == "ray":
        from indexer.ray_engine import RayEngine

        return RayEngine(settings, embedder, progress, on_progress)
    return LocalEngine(settings, embedder, progress, on_progress)


def build(paths: Sequence[Path], settings: Settings, embedder: Embedder, strict: bool = False,
          progress: bool = True, on_progress: ProgressFn | None = None) -> BuildReport:
    """Build a new version of the index from a corpus and publish it (one writer at a time)."""
    started = time.perf_counter()
    CorpusReader(list(paths))  # a missing path fails here, before the index folder is created
    with writer_lock(settings.index_dir, "build"), make_engine(settings, embedder, progress, on_progress) as engine:
        corpus = engine.read(paths, strict)
        passages_of = engine.chunk(corpus.articles)
        problems = corpus.problems + cut_short(corpus.articles, passages_of, corpus.origins)
        prepared = Prepared(corpus.articles, passages_of, problems, corpus.files)
        passages = prepared.passages
        t0 = time.perf_counter()
        vectors, embedded = engine.embed(embedding_texts(prepared, settings))
        embed_seconds = time.perf_counter() - t0
        if on_progress:
            on_progress("writing", 0, 1)
        store = open_store(settings)
        version = write_prepared(store, prepared, passages, vectors, embedder, settings)
        store.publish_new(version)
    size = store.size(version)
    return BuildReport(version, len(prepared.articles), len(passages), prepared.problems,
                       time.perf_counter() - started, embed_seconds, embedded, size)



__all__ = ["build", "make_engine", "BuildReport"]
