"""The build job: read -> clean -> chunk -> embed -> write a version -> publish."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from indexer.cache import EmbeddingCache, cache_key
from indexer.chunk import chunk_article
from indexer.clean import clean_article
from indexer.dedup import article_vectors, duplicate_groups
from indexer.embed import Embedder, with_context
from indexer.errors import SourceError
from indexer.records import Article, Passage
from indexer.settings import Settings
from indexer.sources import CorpusReader, Problem
from indexer.store import list_versions, publish, write_version

EMBED_BLOCK = 256  # passages per progress update (and, later, per checkpoint)


@dataclass
class Prepared:
    """A corpus read, cleaned and chunked, ready to embed."""

    articles: list[Article]
    passages_of: dict[str, list[Passage]]
    problems: list[Problem] = field(default_factory=list)
    files: int = 0

    @property
    def passages(self) -> list[Passage]:
        """All passages, article by article, in ordinal order."""
        return [p for a in self.articles for p in self.passages_of[a.id]]


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
            lines.append(f"skipped {len(self.problems)}:")
            lines.extend(f"  {p}" for p in self.problems[:50])
            if len(self.problems) > 50:
                lines.append(f"  ... and {len(self.problems) - 50} more")
        return "\n".join(lines)


def prepare(paths: Sequence[Path], settings: Settings, embedder: Embedder, strict: bool = False,
            progress: bool = True) -> Prepared:
    """Read, clean and chunk a corpus; a later record with an id seen before replaces it."""
    reader = CorpusReader(list(paths), strict=strict)
    by_id: dict[str, Article] = {}
    problems = reader.problems
    for raw in tqdm(reader, desc="reading", unit=" articles", disable=not progress, mininterval=1.0):
        article = clean_article(raw)
        if not article.body:
            problem = Problem(raw.origin, "no text left after removing site junk")
            if strict:
                raise SourceError(f"{problem}; fix the file or run without --strict to skip it")
            problems.append(problem)
            continue
        by_id.pop(article.id, None)
        by_id[article.id] = article
    if not by_id:
        raise SourceError(f"no articles found in {', '.join(map(str, paths))} "
                          f"({len(problems)} skipped); supported files: .txt, .jsonl, .jsonl.gz, .html")
    articles = sorted(by_id.values(), key=lambda a: a.id)
    passages_of = {a.id: chunk_article(a, embedder.count_tokens, settings.chunk_tokens, settings.chunk_overlap,
                                       lead_passage_sentences(settings)) for a in articles}
    return Prepared(articles, passages_of, problems, reader.files_read)


def embedding_texts(prepared: Prepared, settings: Settings) -> list[str]:
    """What the model reads for each passage: with the article title as context unless fields=body."""
    titles = {a.id: a.title for a in prepared.articles}
    use_title = settings.fields == "title+body"
    return [with_context(titles[p.article_id], p.text) if use_title else p.text for p in prepared.passages]


def embed_all(texts: list[str], embedder: Embedder, cache: EmbeddingCache | None = None,
              progress: bool = True) -> tuple[np.ndarray, int]:
    """Vectors for `texts` in their order, and how many had to be computed.

    Texts already in the cache are not embedded again; the rest are encoded longest first (so
    each batch pads little) and committed to the cache block by block, which is what makes a
    killed build resume where it stopped.
    """
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    keys = [cache_key(embedder.name, t) for t in texts]
    known = cache.get_many(keys) if cache is not None else {}
    todo = []
    for i, key in enumerate(keys):
        if key in known:
            out[i] = known[key]
        else:
            todo.append(i)
    todo.sort(key=lambda i: -len(texts[i]))
    with tqdm(total=len(todo), desc="embedding", unit=" passages", disable=not progress, mininterval=1.0) as bar:
        for start in range(0, len(todo), EMBED_BLOCK):
            block = todo[start : start + EMBED_BLOCK]
            vectors = embedder.encode([texts[i] for i in block])
            out[block] = vectors
            if cache is not None:
                cache.put([keys[i] for i in block], vectors)
            bar.update(len(block))
    return out, len(todo)


def model_info(embedder: Embedder) -> dict:
    """The manifest's description of the model."""
    return {"name": embedder.name, "dim": embedder.dim, "max_seq_length": embedder.max_tokens}


def chunking_info(settings: Settings) -> dict:
    """The manifest's description of how passages were made."""
    return {"max_tokens": settings.chunk_tokens, "overlap_sentences": settings.chunk_overlap,
            "fields": settings.fields, "splitter": "blingfire", "title_context": settings.fields == "title+body",
            "lead_sentences": lead_passage_sentences(settings)}


def lead_passage_sentences(settings: Settings) -> int:
    """Sentences of the lead passage: only when titles are left out, where the lead stands in for the
    headline; with title+body every passage is already embedded under its title."""
    return settings.lead_sentences if settings.fields == "body" else 0


def build(paths: Sequence[Path], settings: Settings, embedder: Embedder, strict: bool = False,
          progress: bool = True) -> BuildReport:
    """Build a new version of the index from a corpus and publish it."""
    started = time.perf_counter()
    prepared = prepare(paths, settings, embedder, strict, progress)
    passages = prepared.passages
    texts = embedding_texts(prepared, settings)
    t0 = time.perf_counter()
    cache = open_cache(settings, embedder)
    try:
        vectors, embedded = embed_all(texts, embedder, cache, progress)
    finally:
        if cache is not None:
            cache.close()
    embed_seconds = time.perf_counter() - t0
    version = write_prepared(settings.index_dir, prepared, passages, vectors, embedder, settings)
    publish(settings.index_dir, version)
    size = sum(f.stat().st_size for f in (settings.index_dir / version).iterdir())
    return BuildReport(version, len(prepared.articles), len(passages), prepared.problems,
                       time.perf_counter() - started, embed_seconds, embedded, size)


def open_cache(settings: Settings, embedder: Embedder) -> EmbeddingCache | None:
    """The embedding cache the settings name (default: <index_dir>/cache), or None if disabled."""
    if settings.cache_dir == "none":
        return None
    folder = Path(settings.cache_dir) if settings.cache_dir else settings.index_dir / "cache"
    return EmbeddingCache(folder / "embeddings.sqlite", embedder.dim)


def write_prepared(index_dir: Path, prepared: Prepared, passages: list[Passage], vectors: np.ndarray,
                   embedder: Embedder, settings: Settings) -> str:
    """Group near-duplicates and write the version folder; returns its name (unpublished)."""
    row_of = {a.id: i for i, a in enumerate(prepared.articles)}
    owners = np.array([row_of[p.article_id] for p in passages], dtype=np.int64)
    groups = duplicate_groups([a.id for a in prepared.articles], [a.body for a in prepared.articles],
                              article_vectors(vectors, owners, len(prepared.articles)),
                              published=[a.published for a in prepared.articles])
    ids = np.array([p.id for p in passages], dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise SourceError("two articles hash to the same passage ids; give one of them another id")
    return write_version(index_dir, prepared.articles, prepared.passages_of, ids, vectors,
                         model=model_info(embedder), chunking=chunking_info(settings), dup_groups=groups)


__all__ = ["build", "prepare", "BuildReport", "Prepared", "list_versions"]
