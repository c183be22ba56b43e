"""What a storage backend provides: index versions (written, published, opened read-only, listed, removed) and,
for an opened version, its vectors and its text (articles, passages, keyword search). Backend-neutral: numpy
arrays, the records of indexer.records and the plain records below; no SQLite, FAISS or Milvus types.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import numpy as np

from indexer.records import Article, Passage


@dataclass(frozen=True)
class Filter:
    """Articles published in [since, before) by one of `sources` (empty: any source); naive UTC datetimes.

    An undated article fails any date bound. A backend turns it into its own terms (SQL, a Milvus `filter`
    expression, a mask); `accepts` is the reference meaning.
    """

    since: datetime | None = None
    before: datetime | None = None
    sources: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        """True if the filter restricts anything."""
        return self.since is not None or self.before is not None or bool(self.sources)

    def accepts(self, published: datetime | None, source: str | None) -> bool:
        """Whether an article with this date and source passes."""
        if (self.since is not None or self.before is not None) and published is None:
            return False
        if self.since is not None and published < self.since:  # type: ignore[operator]
            return False
        if self.before is not None and published >= self.before:  # type: ignore[operator]
            return False
        return not self.sources or source in self.sources


@dataclass(frozen=True)
class KeywordWeights:
    """BM25 weights of an article's title and lead (opening sentences) columns; the body weighs 1."""

    title: float = 1.0
    lead: float = 1.0


@dataclass(frozen=True)
class StoredPassage:
    """A passage joined with its article's fields, as search results need them."""

    id: int
    article_id: str
    ordinal: int
    start: int
    end: int
    text: str
    title: str
    published: datetime | None
    source: str | None
    url: str | None
    dup_group: str | None


@dataclass(frozen=True)
class Catalog:
    """Every article and passage of a version as arrays, so filters, grouping and pooling run in memory.

    Articles are numbered 1..N in an order the backend fixes for the version (number 0 is a placeholder:
    id "", no date, no source); `word_presence` takes these numbers.
    """

    article_ids: list[str]  # article number -> id
    published: list[datetime | None]  # article number -> publication time (naive UTC)
    sources: list[str | None]  # article number -> source
    dup_groups: list[str | None]  # article number -> id of its near-duplicate group's first article, or None
    passage_ids: np.ndarray  # int64, every passage id, ascending
    owners: np.ndarray  # int64, the article number of each passage in passage_ids


class VectorIndex(Protocol):
    """Normalised vectors under inner product (= cosine), keyed by int64 passage id."""

    dim: int

    def __len__(self) -> int:
        """Vectors held."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add float32 vectors [n, dim] under int64 ids."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids; returns how many were present."""
        ...

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of some ids, in their order, float32 [n, dim]."""
        ...

    def ids(self) -> np.ndarray:
        """Every id held, int64 ascending."""
        ...

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
               filter: Filter | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for one query vector, best first; only `allowed` ids when given, and only passages
        whose article passes `filter` when given (a caller holding a Catalog passes both, and a backend may then
        use either one)."""
        ...


class TextIndex(Protocol):
    """The articles and passages of one version, and keyword (BM25) search over them."""

    def count_articles(self) -> int:
        """Articles held."""
        ...

    def count_passages(self) -> int:
        """Passages held."""
        ...

    def sources(self) -> list[tuple[str, int]]:
        """Distinct sources with their article counts, by source."""
        ...

    def date_range(self) -> tuple[datetime | None, datetime | None]:
        """Oldest and newest publication times."""
        ...

    def catalog(self) -> Catalog:
        """Every article's id, date, source and group, and every passage's owner (see Catalog)."""
        ...

    def passages(self, ids: Sequence[int]) -> dict[int, StoredPassage]:
        """Passages by id, joined with their articles (unknown ids are absent)."""
        ...

    def article(self, article_id: str) -> dict[str, Any] | None:
        """One article (id, title, body, published, source, url, content_hash, meta, dup_group and
        passages: [{id, ordinal, start, end}] by ordinal), or None."""
        ...

    def stories(self) -> dict[str, str]:
        """Article id -> story id (indexer/stories.py); empty for a version written before stories were stored."""
        ...

    def story_articles(self, story_id: str) -> list[dict[str, Any]]:
        """The articles of one story (id, title, published, source, url, dup_group) in time order, undated last,
        then by id; empty if there is no such story."""
        ...

    def first_passages(self, article_ids: Sequence[str]) -> dict[str, int]:
        """Each article's first passage id (lowest ordinal); articles without passages are absent."""
        ...

    def stored_articles(self) -> dict[str, tuple[str, str]]:
        """Article id -> (content hash, metadata as JSON text), what an update compares a corpus with."""
        ...

    def articles(self, ids: Sequence[str]) -> list[Article]:
        """Whole stored articles, in the order asked."""
        ...

    def passages_by_article(self) -> dict[str, list[Passage]]:
        """Every article's passages by ordinal (articles without passages are absent)."""
        ...

    def titles(self) -> dict[str, str]:
        """Article id -> title."""
        ...

    def passage_texts(self) -> Iterator[tuple[str, str]]:
        """(article title, passage text) of every passage: what its vector was embedded from."""
        ...

    def keyword_articles(self, words: Sequence[str], limit: int, weights: KeywordWeights,
                         filter: Filter | None = None) -> list[tuple[str, float]]:
        """Top articles matching any of `words` as (article id, BM25 score), best first, ties by id."""
        ...

    def keyword_passages(self, words: Sequence[str], limit: int, title_weight: float,
                         filter: Filter | None = None) -> list[tuple[int, float]]:
        """Top passages matching any of `words` as (passage id, BM25 score), best first, ties by id."""
        ...

    def best_keyword_passages(self, words: Sequence[str], article_ids: Sequence[str]) -> dict[str, int]:
        """Each article's passage with the best BM25 for `words` (articles with no match are absent)."""
        ...

    def word_presence(self, words: Sequence[str], numbers: Sequence[int]) -> tuple[int, list[int], np.ndarray]:
        """(articles indexed, articles holding each word, bool [words, numbers]: whether each article number
        of the catalog holds each word)."""
        ...

    def check(self) -> None:
        """Raise StorageError if the text can no longer be read (readiness probe)."""
        ...


class Version(Protocol):
    """One opened, verified index version, read-only."""

    name: str
    manifest: dict[str, Any]  # format, model, chunking, counts, index parameters (see docs/storage.md)
    index_dir: Path  # folder of leases, jobs and the embedding cache, named in messages
    vectors: VectorIndex
    text: TextIndex

    def close(self) -> None:
        """Release files and connections."""
        ...


class VersionWriter(Protocol):
    """A version being written: invisible to readers until `commit`, and gone if aborted or never committed."""

    name: str

    def add(self, articles: Sequence[Article], passages_of: Mapping[str, Sequence[Passage]], ids: np.ndarray,
            vectors: np.ndarray, dup_groups: Mapping[str, str], stories: Mapping[str, str] | None = None) -> None:
        """Add articles, their passages (by article id), the passages' vectors under `ids`, each article's
        near-duplicate group (article id -> group id) and story (article id -> story id; absent: a story of its
        own); may be called several times."""
        ...

    def commit(self) -> str:
        """Make the version complete (durable, listed, openable; not published); returns its name."""
        ...

    def abort(self) -> None:
        """Remove what was written."""
        ...

    def __enter__(self) -> VersionWriter:
        """The writer itself."""
        ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Abort unless committed."""
        ...


class AbortUnlessCommitted:
    """The context-manager half of a VersionWriter, shared by the stores' writers: leaving the `with` block
    without `commit` aborts the version. The writer sets `committed` in its commit and defines `abort`."""

    committed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.committed:
            self.abort()  # type: ignore[attr-defined]


class Store(Protocol):
    """Where the versions of one index live (local: folders and a CURRENT file; Milvus: collections and an
    alias); one writer at a time (indexer.leases.writer_lock), any number of readers."""

    index_dir: Path  # folder of leases, jobs and the embedding cache, named in messages

    def begin(self, model: dict[str, Any], chunking: dict[str, Any]) -> VersionWriter:
        """Start writing a new version built with this model and chunking (manifest fields)."""
        ...

    def publish(self, name: str) -> None:
        """Make complete version `name` the published one, atomically (readers see the old or the new)."""
        ...

    def publish_new(self, name: str) -> None:
        """Publish a version this job has just written; if that fails, remove it and re-raise."""
        ...

    def current(self) -> str:
        """Name of the published version; IndexNotFound if there is none."""
        ...

    def versions(self) -> list[str]:
        """Complete versions, oldest first."""
        ...

    def manifest(self, name: str) -> dict[str, Any]:
        """The manifest of a complete version, checked for format."""
        ...

    def open(self, name: str | None = None, verify: bool = True) -> Version:
        """Open the published version (or `name`) read-only; `verify` checks every stored checksum."""
        ...

    def remove(self, name: str) -> None:
        """Delete a complete version (never the published one) or an unfinished one."""
        ...

    def unfinished(self, grace_seconds: float) -> list[str]:
        """Versions whose writer died, or that are older than the grace period and still not complete."""
        ...

    def remove_temporary(self, grace_seconds: float, dry_run: bool = False) -> int:
        """Remove leftovers of killed publishes older than the grace period; returns how many (would) go."""
        ...

    def size(self, name: str) -> int:
        """Bytes a complete version takes (0 if the backend cannot tell)."""
        ...
