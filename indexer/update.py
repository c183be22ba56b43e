"""Incremental update: compare a corpus with the published version by article id and content hash,
embed only what changed, carry every other vector over, and publish a version that equals a full
build of the same articles (it is written by the same `write_prepared`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.alerts_store import staged_update
from indexer.embed import Embedder, built_kind, built_precision, embedding_text
from indexer.errors import ConfigError
from indexer.leases import leased, writer_lock
from indexer.pipeline import make_engine, on_workers, write_on_workers
from indexer.records import Article, Passage
from indexer.settings import Settings
from indexer.sources import Problem
from indexer.steps import (
    Prepared,
    ProgressFn,
    built_chunking,
    chunking_info,
    cut_short,
    from_cache,
    title_context,
    write_prepared,
)
from indexer.storage import open_store
from indexer.storage.base import Version
from indexer.storage.manifest import check_model


@dataclass
class Diff:
    """How a corpus differs from the published version, by article id."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the index, not in the corpus

    @property
    def to_chunk(self) -> set[str]:
        """Articles whose passages must be made anew."""
        return set(self.added) | set(self.changed)


@dataclass
class UpdateReport:
    """What an update did, for the CLI summary, job status and benchmarks."""

    version: str  # the new version, or the base when nothing changed
    base: str
    published: bool
    added: int
    changed: int
    deleted: int
    unchanged: int
    kept: int  # missing from the corpus but kept (no --delete-missing)
    articles: int
    passages: int
    embedded: int
    carried: int
    problems: list[Problem]
    seconds: float

    def counts(self) -> dict[str, int]:
        """The numbers, for JSON."""
        return {k: getattr(self, k) for k in ("added", "changed", "deleted", "unchanged", "kept", "articles",
                                              "passages", "embedded", "carried")}

    def summary(self) -> str:
        """A few lines for a human."""
        head = (f"published {self.version} (from {self.base})" if self.published
                else f"nothing changed; {self.base} stays published")
        lines = [f"{head}: {self.added} added, {self.changed} changed, {self.deleted} deleted, "
                 f"{self.unchanged} unchanged" + (f", {self.kept} kept (not in the corpus; --delete-missing "
                                                  "removes them)" if self.kept else "") + ";",
                 f"{self.articles} articles, {self.passages} passages"
                 + (f" ({self.embedded} embedded, {self.carried} vectors carried over, "
                    f"{self.passages - self.embedded - self.carried} from the embedding cache or a repeated text)"
                    if self.published else "")
                 + f" in {self.seconds:.1f}s"]
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s) reported on stderr")
        return "\n".join(lines)


def meta_json(article: Article) -> str:
    """An article's metadata as the store keeps it (TextIndex.stored_articles)."""
    return json.dumps(article.meta, ensure_ascii=False, default=str)


def diff(articles: Sequence[Article], stored: dict[str, tuple[str, str]]) -> Diff:
    """Classify corpus articles against the stored (content hash, metadata JSON) of each id."""
    out = Diff()
    seen = set()
    for a in articles:
        seen.add(a.id)
        old = stored.get(a.id)
        if old is None:
            out.added.append(a.id)
        elif old != (a.content_hash, meta_json(a)):
            out.changed.append(a.id)
        else:
            out.unchanged.append(a.id)
    out.missing = sorted(set(stored) - seen)
    return out


class Base:
    """The published version's records, read back for an update."""

    def __init__(self, version: Version):
        self.version = version
        self.stored = version.text.stored_articles()
        self.titles = version.text.titles()
        self.stories = version.text.stories()  # kept articles keep their stories
        self.passages_of: dict[str, list[Passage]] = version.text.passages_by_article()

    def articles(self, ids: Sequence[str]) -> list[Article]:
        """Whole stored articles, for those the update keeps without reading them again."""
        return self.version.text.articles(ids)


def _how_to_match(built_with: str, built: dict) -> str:
    """What setting makes this process embed as a version's build did."""
    if built_with != "openvino":
        return f"set NEWSEARCH_BACKEND={built_with}"
    return (f"set NEWSEARCH_BACKEND=openvino and NEWSEARCH_OPENVINO_PRECISION={built_precision(built)} "
            "(bf16 needs a CPU that has it)")


def check_compatible(version: Version, settings: Settings, embedder: Embedder) -> None:
    """An update can only extend a version built with the same model and chunking."""
    check_model(version.manifest, embedder.name, embedder.dim, settings.index_dir, embedder.fingerprint)
    built = version.manifest.get("model", {})
    kind = built_kind(built)
    if kind != embedder.kind:
        # Carried vectors come from one backend (or precision) and new ones would come from another: the
        # result would no longer equal a rebuild with either.
        raise ConfigError(f"the published version {version.name} was embedded with {kind} and this process "
                          f"embeds with {embedder.kind}; {_how_to_match(built.get('backend', 'torch'), built)} to "
                          f"update it, or run `news-index build` to re-embed everything with {embedder.kind}")
    recorded, wanted = version.manifest.get("chunking", {}), chunking_info(settings)
    built = built_chunking(recorded)
    if built != wanted:
        differs = ", ".join(f"{k}={built.get(k)!r} (now {wanted[k]!r})" for k in wanted if built.get(k) != wanted[k])
        before = ("" if "lead_for" in recorded or wanted["lead_for"] != "untitled" else
                  " (before articles without a title got a lead passage; NEWSEARCH_LEAD_SENTENCES=0 updates it "
                  "without one)")
        raise ConfigError(f"the published version {version.name} was built with {differs}{before}; pass the same "
                          f"settings to update it, or run `news-index build` to re-index everything with the new ones")


def carried_over(passages: list[Passage], titles: dict[str, str], base: Base, settings: Settings,
                 ) -> tuple[list[str], list[int]]:
    """What the model reads for each of `passages`, and the rows whose vector is the published one (its passage
    read the same text)."""
    titled = title_context(settings)
    texts = [embedding_text(titles[p.article_id], p.text, titled) for p in passages]
    old_text = {p.id: embedding_text(base.titles[p.article_id], p.text, titled)
                for ps in base.passages_of.values() for p in ps}
    return texts, [i for i, p in enumerate(passages) if old_text.get(p.id) == texts[i]]


def carry_or_embed(passages: list[Passage], titles: dict[str, str], base: Base, engine, settings: Settings,
                   ) -> tuple[np.ndarray, int, int]:
    """Vectors for `passages`: the published one when its passage read the same text, else embedded."""
    texts, carry = carried_over(passages, titles, base, settings)
    vectors = np.zeros((len(passages), base.version.vectors.dim), dtype=np.float32)
    if carry:
        vectors[carry] = carried_vectors([passages[i].id for i in carry], [texts[i] for i in carry], base, engine)
    fresh = sorted(set(range(len(passages))) - set(carry))
    embedded = 0
    if fresh:
        new_vectors, embedded = engine.embed([texts[i] for i in fresh])
        vectors[fresh] = new_vectors
    return vectors, embedded, len(carry)


def carried_vectors(ids: list[int], texts: list[str], base: Base, engine) -> np.ndarray:
    """The vectors of passages whose text is unchanged: exact float32 from the embedding cache, from the
    published index only for texts the cache lacks.

    The index alone would do on an exact (flat) index, but IVF-SQ8 stores 8-bit codes: decoded vectors
    carried into a new version (coded again after k-means trained on a different sample) would make an
    update differ from a rebuild. With NEWSEARCH_CACHE_DIR=none, or a cache deleted or pruned since the
    base was built, that is what happens to those passages (bench/RESULTS.md, "Index by scale").
    """
    vectors, missing = from_cache(texts, engine.embedder, engine.cache)
    if missing:
        vectors[missing] = base.version.vectors.get(np.array([ids[i] for i in missing], dtype=np.int64))
    return vectors


def update(paths: Sequence[Path], settings: Settings, embedder: Embedder, delete_missing: bool = False,
           strict: bool = False, progress: bool = True, on_progress: ProgressFn | None = None) -> UpdateReport:
    """Bring the published version up to date with a corpus and publish the result."""
    started = time.perf_counter()
    index_dir = settings.index_dir
    store = open_store(settings)
    store.current()  # no index: fail before creating anything
    with writer_lock(index_dir, "update"), make_engine(settings, embedder, progress, on_progress) as engine:
        base_name = store.current()
        with leased(index_dir, base_name, settings.lease_seconds):
            version = store.open(base_name)
            try:
                check_compatible(version, settings, embedder)
                corpus = engine.read(paths, strict)
                base = Base(version)
                changes = diff(corpus.articles, base.stored)
                if delete_missing and changes.missing and corpus.problems:
                    # An article whose file or record could not be read is "missing" too: never delete on a
                    # partial read (nothing already indexed is lost to a typo'd link or a damaged file).
                    raise ConfigError(f"--delete-missing would delete {len(changes.missing)} article(s), but "
                                      f"{len(corpus.problems)} file(s) or record(s) could not be read (first: "
                                      f"{corpus.problems[0]}); fix them, or update without --delete-missing")
                kept = [] if delete_missing else changes.missing
                deleted = changes.missing if delete_missing else []
                if not (changes.added or changes.changed or deleted):
                    return UpdateReport(base_name, base_name, False, 0, 0, 0, len(changes.unchanged), len(kept),
                                        len(base.stored), len(version.vectors), 0, 0, corpus.problems,
                                        time.perf_counter() - started)
                articles = sorted(corpus.articles + base.articles(kept), key=lambda a: a.id)
                to_chunk = changes.to_chunk
                rechunked = [a for a in corpus.articles if a.id in to_chunk]
                fresh = engine.chunk(rechunked)
                passages_of = {a.id: fresh[a.id] if a.id in fresh else base.passages_of.get(a.id, [])
                               for a in articles}
                problems = corpus.problems + cut_short(rechunked, fresh, corpus.origins)
                prepared = Prepared(articles, passages_of, problems, corpus.files)
                passages = prepared.passages
                titles = {a.id: a.title for a in articles}
                if not on_workers(settings):
                    vectors, embedded, carried = carry_or_embed(passages, titles, base, engine, settings)
            finally:
                version.close()
        stories = {a: base.stories[a] for a in changes.unchanged + kept if a in base.stories}
        if on_workers(settings):  # Ray actors carry, embed and insert; the base's rows stay readable in Milvus
            texts, carry = carried_over(passages, titles, base, settings)
            name, embedded, carried = write_on_workers(store, engine, prepared, texts, embedder, settings, carry,
                                                       stories)
        else:
            if on_progress:
                on_progress("writing", 0, 1)
            name = write_prepared(store, prepared, passages, vectors, embedder, settings, stories)
        with staged_update(index_dir, name, base_name, sorted(to_chunk)):  # the alerts' outbox (docs/alerts.md)
            store.publish_new(name)
    return UpdateReport(name, base_name, True, len(changes.added), len(changes.changed), len(deleted),
                        len(changes.unchanged), len(kept), len(articles), len(passages), embedded, carried,
                        prepared.problems, time.perf_counter() - started)

