"""The build job: run the steps (steps.py) on an engine (engines.py, ray_engine.py), write a version and publish
it. `update.py` is the other job, over the same steps and engines. With `--engine ray` and a Milvus server the
workers write the passage rows themselves (write_on_workers).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.dedup import article_vectors
from indexer.embed import Embedder
from indexer.engines import Engine, LocalEngine
from indexer.leases import writer_lock
from indexer.settings import Settings
from indexer.sources import CorpusReader, Problem
from indexer.steps import (
    Prepared,
    ProgressFn,
    chunking_info,
    cut_short,
    embedding_texts,
    group_articles,
    model_info,
    passage_ids,
    write_prepared,
)
from indexer.storage import open_store
from indexer.storage.base import Store

if TYPE_CHECKING:
    from indexer.ray_engine import RayEngine


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
    received_bytes: int = 0  # embedding results the driver took from workers (ray engine; bench/ray_write.py)

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
        store = open_store(settings)
        t0 = time.perf_counter()
        if on_workers(settings):
            version, embedded, _ = write_on_workers(store, engine, prepared, embedding_texts(prepared, settings),
                                                    embedder, settings)
        else:
            vectors, embedded = engine.embed(embedding_texts(prepared, settings))
            if on_progress:
                on_progress("writing", 0, 1)
            version = write_prepared(store, prepared, passages, vectors, embedder, settings)
        embed_seconds = time.perf_counter() - t0
        store.publish_new(version)
    size = store.size(version)
    return BuildReport(version, len(prepared.articles), len(passages), prepared.problems,
                       time.perf_counter() - started, embed_seconds, embedded, size, engine.received_bytes)


def on_workers(settings: Settings) -> bool:
    """Whether the workers write passage rows themselves: `--engine ray` with a Milvus server. The local store and
    Milvus Lite (a file one process holds) are written by the driver (docs/scaling.md)."""
    if settings.engine != "ray" or settings.store != "milvus":
        return False
    from indexer.storage.milvus_wire import is_remote

    return is_remote(settings.milvus_uri)


def write_on_workers(store: Store, engine: RayEngine, prepared: Prepared, texts: list[str], embedder: Embedder,
                     settings: Settings, carry: Collection[int] = (),
                     previous_stories: Mapping[str, str] | None = None) -> tuple[str, int, int]:
    """write_prepared, the passage rows embedded and inserted by Ray actors (`texts`: what the model reads for each
    passage; `carry`: the passages whose vector is the base version's); only one sum of passage vectors per article
    comes back, for near-duplicates and stories. Returns the version (unpublished), passages embedded and carried."""
    from indexer.ray_engine import ArticleJob

    passages = prepared.passages
    passage_ids(passages)
    with store.begin(model_info(embedder), chunking_info(settings)) as writer:
        jobs, at, carried = [], 0, set(carry)
        for row, article in enumerate(prepared.articles):
            own = prepared.passages_of.get(article.id, [])
            jobs.append(ArticleJob(row, replace(article, body=""), own, texts[at : at + len(own)],
                                   [writer.base_digest(p.id) for p in own],
                                   [i in carried for i in range(at, at + len(own))]))
            at += len(own)
        done = engine.embed_and_write(jobs, writer.worker_job())
        n = len(prepared.articles)
        per_article = article_vectors(done.sums, np.arange(n), n)
        groups, stories = group_articles(prepared.articles, per_article, previous_stories)
        writer.add_written(prepared.articles, prepared.passages_of, done.ids, done.writers, groups, stories)
        return writer.commit(), done.embedded, done.carried



__all__ = ["build", "make_engine", "on_workers", "write_on_workers", "BuildReport"]
