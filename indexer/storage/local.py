"""The local store (NEWSEARCH_STORE=local, the default): one folder per version holding vectors.faiss (FAISS),
meta.sqlite (SQLite with FTS5 for passages), keyword/ (tantivy, for articles) and manifest.json, beside a
CURRENT file naming the published one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexer.errors import IndexMismatch, IndexNotFound
from indexer.jobs import modified
from indexer.records import Article, Passage
from indexer.settings import Settings
from indexer.storage.base import AbortUnlessCommitted, Filter
from indexer.storage.faiss_vectors import FLAT_LIMIT, HNSW_LIMIT, FaissStore
from indexer.storage.filtering import CatalogFilter
from indexer.storage.folders import (
    CURRENT,
    MANIFEST,
    META,
    VECTORS,
    WRITER,
    commit_file,
    current_version,
    file_entry,
    list_versions,
    new_version_name,
    publish,
    publish_new,
    read_manifest,
    stale_folders,
    verify_files,
    write_manifest,
)
from indexer.storage.manifest import base_manifest, rebuild_hint
from indexer.storage.sqlite_text import MetaWriter, SqliteText
from indexer.storage.tantivy_keyword import FOLDER, KeywordIndex, KeywordWriter, build_missing, usable


@dataclass
class LocalVersion:
    """An opened, verified version folder: its manifest, FAISS vectors and SQLite text."""

    name: str
    path: Path
    manifest: dict[str, Any]
    vectors: FaissStore
    text: SqliteText

    @classmethod
    def open(cls, index_dir: Path, version: str | None = None, verify: bool = True, nprobe: int = 0,
             mmap: bool = False, ef_search: int = 0) -> LocalVersion:
        """Open the published version (or a named one), checking format and checksums; `nprobe`, `mmap`
        and `ef_search` are passed to FaissStore.load."""
        index_dir = Path(index_dir)
        name = version or current_version(index_dir)
        folder = index_dir / name
        try:
            manifest = read_manifest(folder)
            if verify:
                verify_files(folder, manifest)
            vectors = FaissStore.load(folder / VECTORS, nprobe, mmap, ef_search)
            text = SqliteText(folder / META)
            titles = manifest["chunking"].get("fields") == "title+body"
            if not usable(folder / FOLDER, titles):  # written before keyword indexes, or with another stemmer
                build_missing(folder, text.all_articles(), titles, lambda made: record_keyword(folder, made))
                manifest = read_manifest(folder)
            text.keyword = KeywordIndex(folder / FOLDER)
        except (RuntimeError, OSError, ValueError, sqlite3.DatabaseError) as exc:
            raise IndexMismatch(f"cannot read {folder}: {exc}; {rebuild_hint(index_dir)}") from None
        if vectors.dim != manifest["model"]["dim"] or len(vectors) != manifest["counts"]["passages"]:
            raise IndexMismatch(f"{folder / VECTORS} disagrees with {MANIFEST}; {rebuild_hint(index_dir)}")
        opened = cls(name, folder, manifest, vectors, text)
        vectors.resolve = opened.filtered_passages
        return opened

    @property
    def index_dir(self) -> Path:
        """The index folder holding this version, its leases and cache."""
        return self.path.parent

    def filtered_passages(self, filter: Filter) -> np.ndarray:
        """Ids of the passages whose article passes `filter` (for a vector search given a filter alone)."""
        if not hasattr(self, "_filter"):
            self._filter = CatalogFilter(self.text.catalog())
        return self._filter.passages(filter)

    def close(self) -> None:
        """Release the SQLite connections (the keyword index's maps go with the object)."""
        self.text.close()


class LocalWriter(AbortUnlessCommitted):
    """A version folder being written: files under .tmp names, fsynced and renamed, the manifest last, so a
    crash leaves at most an incomplete folder that readers never open and `gc` removes."""

    def __init__(self, index_dir: Path, model: dict[str, Any], chunking: dict[str, Any],
                 flat_limit: int = FLAT_LIMIT, hnsw_limit: int = HNSW_LIMIT):
        index_dir.mkdir(parents=True, exist_ok=True)
        self.name = new_version_name()
        self.folder = index_dir / self.name
        self.model, self.chunking, self.flat_limit, self.hnsw_limit = model, chunking, flat_limit, hnsw_limit
        self._ids: list[np.ndarray] = []
        self._vectors: list[np.ndarray] = []
        self._groups: set[str] = set()
        self._stories: set[str] = set()
        self._meta: MetaWriter | None = None
        self._keyword: KeywordWriter | None = None
        self.folder.mkdir()
        try:
            (self.folder / WRITER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
            titles = chunking["fields"] == "title+body"
            self._meta = MetaWriter(self.folder / (META + ".tmp"), index_titles=titles)
            self._keyword = KeywordWriter(self.folder / (FOLDER + ".tmp"), titles, *keyword_base(index_dir, titles))
        except BaseException:
            self.abort()
            raise

    def add(self, articles: Sequence[Article], passages_of: Mapping[str, Sequence[Passage]], ids: np.ndarray,
            vectors: np.ndarray, dup_groups: Mapping[str, str], stories: Mapping[str, str] | None = None) -> None:
        """Write the articles' rows now; the vectors are indexed at commit (the index type needs them all)."""
        try:
            self._meta.add(articles, passages_of, dup_groups, stories)  # type: ignore[union-attr]
            self._keyword.add(articles)  # type: ignore[union-attr]
        except BaseException:
            self.abort()
            raise
        self._ids.append(np.asarray(ids, dtype=np.int64))
        self._vectors.append(np.asarray(vectors, dtype=np.float32))
        self._groups.update(dup_groups.values())
        self._stories.update((stories or {a.id: a.id for a in articles}).values())

    def commit(self) -> str:
        """meta.sqlite, keyword/, vectors.faiss, then manifest.json; returns the version's name (not published)."""
        try:
            return self._commit()
        except BaseException:
            # A failed writer (full disk, Ctrl-C) gives its space back at once; only a killed one leaves the
            # folder, which gc removes as soon as the writer named in it is gone.
            self.abort()
            raise

    def _commit(self) -> str:
        folder, meta = self.folder, self._meta
        meta.finish()  # type: ignore[union-attr]
        commit_file(folder / (META + ".tmp"), folder / META)
        keyword = self._keyword.finish(folder / FOLDER)  # type: ignore[union-attr]
        dim = self.model["dim"]
        ids = np.concatenate(self._ids) if self._ids else np.zeros(0, dtype=np.int64)
        vectors = np.concatenate(self._vectors) if self._vectors else np.zeros((0, dim), dtype=np.float32)
        store = FaissStore.build(ids, vectors, dim, self.flat_limit, hnsw_limit=self.hnsw_limit)
        vec_tmp = folder / (VECTORS + ".tmp")
        store.save(vec_tmp)
        commit_file(vec_tmp, folder / VECTORS)
        counts = {"articles": meta.articles, "passages": meta.passages,  # type: ignore[union-attr]
                  "duplicate_groups": len(self._groups), "stories": len(self._stories)}
        manifest = base_manifest(self.name, self.model, self.chunking, counts)
        manifest["faiss"] = {"spec": store.spec, "version": faiss.__version__}
        manifest["keyword"] = keyword
        manifest["files"] = {VECTORS: file_entry(folder / VECTORS), META: file_entry(folder / META),
                             **keyword_files(folder)}
        write_manifest(folder, manifest)
        (folder / WRITER).unlink()
        self.committed = True
        return self.name

    def abort(self) -> None:
        """Remove the folder and everything written in it."""
        if self._meta is not None:
            with contextlib.suppress(sqlite3.Error):
                self._meta.close()
        if self._keyword is not None:
            self._keyword.abort()
        shutil.rmtree(self.folder, ignore_errors=True)


def remove_folder(folder: Path, attempts: int = 5) -> None:
    """Delete a folder whose writer may still be running (an unfinished version's keyword index threads can add
    or remove a file while it is walked): a walk that meets a folder changing under it starts again, a few times."""
    for attempt in range(attempts):
        try:
            shutil.rmtree(folder)
            return
        except OSError as exc:
            if not folder.exists():
                return
            if exc.errno not in (errno.ENOTEMPTY, errno.ENOENT) or attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


def keyword_files(folder: Path) -> dict[str, dict[str, Any]]:
    """The manifest's entries (size, checksum) of a version's keyword index files (not tantivy's lock files)."""
    return {f"{FOLDER}/{p.name}": file_entry(p) for p in sorted((folder / FOLDER).iterdir())
            if not p.name.startswith(".tantivy-")}


def record_keyword(folder: Path, made: dict[str, Any]) -> None:
    """Put the keyword index that build_missing just made into the version's manifest, in place of the one it
    replaced (if any), so the checksums verified at the next open are its files'."""
    manifest = read_manifest(folder)
    manifest["keyword"] = made
    manifest["files"] = {**{name: entry for name, entry in manifest.get("files", {}).items()
                            if not name.startswith(f"{FOLDER}/")}, **keyword_files(folder)}
    write_manifest(folder, manifest)


def keyword_base(index_dir: Path, titles: bool) -> tuple[Path | None, dict[str, str] | None]:
    """The published version's keyword index and its articles' content hashes, if a new version can start from
    them (same format and fields): an update then indexes only what changed (docs/storage.md)."""
    try:
        folder = index_dir / current_version(index_dir)
    except (IndexNotFound, IndexMismatch):
        return None, None
    if not usable(folder / FOLDER, titles) or not (folder / META).is_file():
        return None, None
    conn = sqlite3.connect(f"file:{folder / META}?mode=ro", uri=True)
    try:
        return folder / FOLDER, dict(conn.execute("SELECT id, content_hash FROM articles"))
    except sqlite3.Error:
        return None, None
    finally:
        conn.close()


class LocalStore:
    """The versions of one index folder (indexer.storage.base.Store)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.index_dir = Path(settings.index_dir)

    def begin(self, model: dict[str, Any], chunking: dict[str, Any]) -> LocalWriter:
        """A new version folder, written until `commit`."""
        return LocalWriter(self.index_dir, model, chunking, self.settings.flat_limit, self.settings.hnsw_limit)

    def publish(self, name: str) -> None:
        """Replace CURRENT by an atomic rename."""
        publish(self.index_dir, name)

    def publish_new(self, name: str) -> None:
        """Publish a version just written; remove it if that fails."""
        publish_new(self.index_dir, name)

    def current(self) -> str:
        """The version CURRENT names."""
        return current_version(self.index_dir)

    def versions(self) -> list[str]:
        """Complete version folders, oldest first."""
        return list_versions(self.index_dir)

    def manifest(self, name: str) -> dict[str, Any]:
        """The version's manifest.json, checked for format."""
        return read_manifest(self.index_dir / name)

    def open(self, name: str | None = None, verify: bool = True) -> LocalVersion:
        """Open a version read-only with the settings' nprobe, ef_search and mmap."""
        s = self.settings
        return LocalVersion.open(self.index_dir, name, verify, nprobe=s.nprobe, mmap=s.mmap, ef_search=s.ef_search)

    def remove(self, name: str) -> None:
        """Delete a version folder; the manifest first, so a half-removed folder is an incomplete one."""
        try:
            published = current_version(self.index_dir)
        except IndexNotFound:
            published = None
        if name == published:
            raise IndexMismatch(f"{name} is the published version of {self.index_dir}; it cannot be removed")
        (self.index_dir / name / MANIFEST).unlink(missing_ok=True)
        remove_folder(self.index_dir / name)

    def unfinished(self, grace_seconds: float) -> list[str]:
        """Folders without a manifest whose writer is gone or that are older than the grace period."""
        return [p.name for p in stale_folders(self.index_dir, grace_seconds)]

    def remove_temporary(self, grace_seconds: float, dry_run: bool = False) -> int:
        """Remove CURRENT.*.tmp files of killed publishes older than the grace period."""
        now = time.time()
        found = [p for p in self.index_dir.glob(f"{CURRENT}.*.tmp") if now - modified(p, now) > grace_seconds]
        if not dry_run:
            for path in found:
                path.unlink(missing_ok=True)
        return len(found)

    def size(self, name: str) -> int:
        """Bytes of the version folder's files (hard links shared with another version count in both)."""
        return sum(f.stat().st_size for f in (self.index_dir / name).rglob("*") if f.is_file())

