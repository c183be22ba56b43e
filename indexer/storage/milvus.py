"""Milvus as a storage backend (NEWSEARCH_STORE=milvus): each index version is two collections, its passages
(dense and BM25 fields, date and source for filters) and its articles (metadata and a BM25 field); a version is
complete when its manifest is set on the passage collection, and publishing points an alias at it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pymilvus
from pymilvus import MilvusClient

from indexer.errors import IndexMismatch, IndexNotFound, NewsearchError, StorageError
from indexer.records import Article, Passage
from indexer.settings import Settings
from indexer.storage.faiss_vectors import EF_SEARCH
from indexer.storage.folders import new_version_name
from indexer.storage.manifest import FORMAT, FORMAT_VERSION, base_manifest
from indexer.storage.milvus_read import MilvusText, MilvusVectors
from indexer.storage.milvus_schema import (
    ANALYZER,
    ARTICLE_SPARSE,
    ARTICLES,
    MANIFEST_KEY,
    PASSAGES,
    alias_name,
    article_row,
    article_schema,
    check_prefix,
    collection_name,
    dense_index,
    index_params,
    passage_row,
    passage_schema,
)
from indexer.storage.milvus_wire import calls, connect, is_remote, lite_path
from indexer.storage.sqlite_text import lead_of

WRITER_KEY = "newsearch.writer"  # collection property: version name, pid, host and start of the writing job
BATCH = 256  # rows per insert: a few MB of vectors and text, far below gRPC's message limit


def rebuild_hint(store: MilvusStore) -> str:
    """What to run to get a good index again."""
    return f"rebuild it with `news-index build <corpus>` (NEWSEARCH_STORE=milvus, NEWSEARCH_MILVUS_URI={store.uri})"


class MilvusWriter:
    """A version being written into two new collections; invisible to readers until `commit` sets the manifest."""

    def __init__(self, store: MilvusStore, model: dict[str, Any], chunking: dict[str, Any]):
        self.store = store
        self.client = store.client
        self.name = new_version_name()
        self.model = model
        self.chunking = chunking
        self.passages = collection_name(store.prefix, self.name, PASSAGES)
        self.articles = collection_name(store.prefix, self.name, ARTICLES)
        self.counts = {"articles": 0, "passages": 0}
        self.groups: set[str] = set()
        self.committed = False
        self.without_vector = 0
        self.zero = np.zeros(model["dim"], dtype=np.float32)
        # The settings' weights as whole repetitions in the `keyword` field (see keyword_text); others are served
        # by adding the title and lead fields' own BM25 (MilvusText.keyword_articles).
        self.index_titles = chunking.get("fields") == "title+body"
        self.weights = {"title": round(store.settings.title_weight) if self.index_titles else 0,
                        "lead": round(store.settings.lead_weight)}
        writer = json.dumps({"version": self.name, "pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.time()})
        with calls(self.passages):
            # The passage collection first: it is what versions() and unfinished() list.
            self.client.create_collection(self.passages, schema=passage_schema(model["dim"]),
                                          index_params=index_params(self.client, ["sparse"]),
                                          properties={WRITER_KEY: writer})
            self.client.create_collection(self.articles, schema=article_schema(),
                                          index_params=index_params(self.client, ARTICLE_SPARSE),
                                          properties={WRITER_KEY: writer})

    def add(self, articles: Sequence[Article], passages_of: Mapping[str, Sequence[Passage]], ids: np.ndarray,
            vectors: np.ndarray, dup_groups: Mapping[str, str], stories: Mapping[str, str] | None = None) -> None:
        """Insert articles and their passages with the vectors of `ids`; an article not in `stories` is a story
        of its own."""
        row_of = {int(pid): i for i, pid in enumerate(np.asarray(ids, dtype=np.int64).tolist())}
        arts, pas = [], []
        for article in articles:
            self.counts["articles"] += 1
            group = dup_groups.get(article.id)
            if group:
                self.groups.add(group)
            title = article.title if self.index_titles else ""
            arts.append(article_row(article, self.counts["articles"], group, title, lead_of(article.body),
                                    self.weights, (stories or {}).get(article.id)))
            for passage in passages_of.get(article.id, ()):
                row = row_of.get(int(passage.id))
                if row is None:  # a Milvus row needs a vector: a stand-in, and commit refuses the version
                    self.without_vector += 1
                pas.append(passage_row(passage, vectors[row] if row is not None else self.zero, article))
        self.counts["passages"] += len(pas)
        for collection, rows in ((self.articles, arts), (self.passages, pas)):
            with calls(collection):
                for at in range(0, len(rows), BATCH):
                    self.client.insert(collection, rows[at : at + BATCH])

    def commit(self) -> str:
        """Flush, index the dense field (exact or HNSW by size), load, then set the manifest: now complete."""
        if self.without_vector:
            raise StorageError(f"{self.without_vector} passages of version {self.name} were added without a vector; "
                               "every passage needs one (this is a bug of the job writing it)")
        settings = self.store.settings
        dense = dense_index(self.counts["passages"], settings.flat_limit, settings.ef_search or EF_SEARCH)
        with calls(self.passages):
            for collection in (self.articles, self.passages):
                self.client.flush(collection)
            params = self.client.prepare_index_params()
            params.add_index(field_name="dense", index_type=dense["index_type"], metric_type=dense["metric_type"],
                             params=dense["params"])
            self.client.create_index(self.passages, params)
            for collection in (self.articles, self.passages):
                self.client.load_collection(collection)
            manifest = base_manifest(self.name, self.model, self.chunking,
                                     {**self.counts, "duplicate_groups": len(self.groups)})
            manifest["milvus"] = {"dense_index": dense, "analyzer": ANALYZER, "keyword_repeats": self.weights,
                                  "passages": self.passages, "articles": self.articles,
                                  "pymilvus": pymilvus.__version__}
            self.client.alter_collection_properties(self.passages, {MANIFEST_KEY: json.dumps(manifest)})
        self.committed = True
        return self.name

    def abort(self) -> None:
        """Drop both collections."""
        self.store.drop(self.name)

    def __enter__(self) -> MilvusWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.committed:
            self.abort()


class MilvusVersion:
    """One complete version opened read-only: its collections loaded, behind VectorIndex and TextIndex."""

    def __init__(self, store: MilvusStore, name: str, manifest: dict[str, Any]):
        self.name = name
        self.manifest = manifest
        self.index_dir = store.index_dir
        passages = collection_name(store.prefix, name, PASSAGES)
        articles = collection_name(store.prefix, name, ARTICLES)
        dense = manifest["milvus"]["dense_index"]
        self.vectors = MilvusVectors(store.client, passages, manifest["model"]["dim"],
                                     {"metric_type": "IP", "params": dense.get("search", {})})
        self.text = MilvusText(store.client, passages, articles, manifest["milvus"]["keyword_repeats"],
                               manifest["chunking"].get("fields") == "title+body")

    def close(self) -> None:
        """Nothing held: the store's client is shared."""


class MilvusStore:
    """The versions of one index in Milvus: collections named `<prefix>_<version>_p|a`, published through the
    alias `<prefix>_serving`. Leases, jobs and the embedding cache stay in settings.index_dir."""

    def __init__(self, settings: Settings, client: MilvusClient | None = None):
        self.settings = settings
        self.index_dir = Path(settings.index_dir)
        self.uri = settings.milvus_uri or str(self.index_dir / "milvus.db")
        self.prefix = check_prefix(settings.milvus_collection)
        self.alias = alias_name(self.prefix)
        if not is_remote(self.uri):
            self.index_dir.mkdir(parents=True, exist_ok=True)
        self.client = client or connect(self.uri, settings.milvus_token)

    def close(self) -> None:
        """Close the client; for Milvus Lite also stop this process' server of the file, which would otherwise
        outlive the store and hold up the process' exit."""
        self.client.close()
        if not is_remote(self.uri):
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(str(lite_path(self.uri)))

    # -- collections ------------------------------------------------------------------------------

    def _properties(self) -> dict[str, dict[str, str]]:
        """Properties of this index's passage collections, by collection name."""
        with calls(self.uri):
            names = [n for n in self.client.list_collections()
                     if n.startswith(self.prefix + "_") and n.endswith("_" + PASSAGES)]
            return {n: self.client.describe_collection(n).get("properties", {}) for n in names}

    def _version_of(self, properties: dict[str, str]) -> str | None:
        raw = properties.get(MANIFEST_KEY) or properties.get(WRITER_KEY)
        try:
            return json.loads(raw)["version"] if raw else None
        except (json.JSONDecodeError, KeyError, TypeError):
            return None

    def drop(self, name: str) -> None:
        """Drop a version's collections (those that exist). The manifest goes first, then the articles, then
        the passages: a crash part-way leaves an unfinished version that `unfinished` lists and gc drops, never
        a complete one without its articles, nor articles that nothing lists."""
        passages, articles = (collection_name(self.prefix, name, kind) for kind in (PASSAGES, ARTICLES))
        with calls(name):
            existing = set(self.client.list_collections())
            if passages in existing and MANIFEST_KEY in self.client.describe_collection(passages).get("properties", {}):
                self.client.drop_collection_properties(passages, property_keys=[MANIFEST_KEY])
            for collection in (articles, passages):
                if collection in existing:
                    self.client.drop_collection(collection)

    # -- Store ------------------------------------------------------------------------------------

    def begin(self, model: dict[str, Any], chunking: dict[str, Any]) -> MilvusWriter:
        """Start writing a new version into new collections."""
        return MilvusWriter(self, model, chunking)

    def versions(self) -> list[str]:
        """Complete versions (manifest set), oldest first."""
        found = [self._version_of(p) for p in self._properties().values() if MANIFEST_KEY in p]
        return sorted(v for v in found if v)

    def manifest(self, name: str) -> dict[str, Any]:
        """The manifest of a complete version, checked for format."""
        collection = collection_name(self.prefix, name, PASSAGES)
        with calls(collection):
            exists = self.client.has_collection(collection)
            raw = self.client.describe_collection(collection).get("properties", {}).get(MANIFEST_KEY) if exists else None
        if raw is None:
            raise IndexNotFound(f"version {name} is not complete in Milvus at {self.uri} (no collection {collection} "
                                f"with a manifest); {rebuild_hint(self)}")
        try:
            manifest = json.loads(raw)
        except json.JSONDecodeError:
            raise IndexMismatch(f"the manifest of {collection} is damaged; {rebuild_hint(self)}") from None
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise IndexMismatch(f"{collection} is in format {manifest.get('format')} v{manifest.get('format_version')}, "
                                f"this newsearch reads {FORMAT} v{FORMAT_VERSION}; {rebuild_hint(self)}")
        return manifest

    def current(self) -> str:
        """The version the serving alias names; IndexNotFound if there is none."""
        with calls(self.alias):
            aliases = self.client.list_aliases().get("aliases", [])
            target = self.client.describe_alias(self.alias)["collection_name"] if self.alias in aliases else None
        if target is None:
            raise IndexNotFound(f"no index published in Milvus at {self.uri} (no alias {self.alias}); build one with "
                                "`news-index build <corpus>` and NEWSEARCH_STORE=milvus")
        with calls(target):
            version = self._version_of(self.client.describe_collection(target).get("properties", {}))
        if version is None:
            raise IndexMismatch(f"alias {self.alias} names {target}, which has no manifest; {rebuild_hint(self)}")
        return version

    def publish(self, name: str) -> None:
        """Point the serving alias at version `name` (one Milvus call: readers see the old or the new)."""
        self.manifest(name)
        collection = collection_name(self.prefix, name, PASSAGES)
        with calls(self.alias):
            if self.alias in self.client.list_aliases().get("aliases", []):
                self.client.alter_alias(collection, self.alias)
            else:
                self.client.create_alias(collection, self.alias)

    def publish_new(self, name: str) -> None:
        """Publish a version this job has just written; if that fails, drop it."""
        try:
            self.publish(name)
        except BaseException:
            try:
                published = self.current()
            except NewsearchError:
                published = None
            if published != name:
                self.drop(name)
            raise

    def open(self, name: str | None = None, verify: bool = True) -> MilvusVersion:
        """Open the published version (or `name`), loading its collections; `verify` compares the stored counts
        with the manifest (Milvus keeps no file checksums)."""
        name = name or self.current()
        manifest = self.manifest(name)
        version = MilvusVersion(self, name, manifest)
        with calls(name):
            for collection in (version.vectors.collection, version.text.articles_collection):
                if not self.client.has_collection(collection):
                    raise IndexMismatch(f"version {name} lacks its collection {collection}; {rebuild_hint(self)}")
                self.client.load_collection(collection)
        if verify:
            counts = manifest["counts"]
            if (version.text.count_passages(), version.text.count_articles()) != (counts["passages"], counts["articles"]):
                raise IndexMismatch(f"version {name} in Milvus holds other counts than its manifest ({counts}); "
                                    f"{rebuild_hint(self)}")
        return version

    def remove(self, name: str) -> None:
        """Drop a version's collections (never the published one's)."""
        try:
            published = self.current()
        except IndexNotFound:
            published = None
        if name == published:
            raise IndexMismatch(f"{name} is the published version in Milvus at {self.uri}; it cannot be removed")
        if not any(self._version_of(p) == name for p in self._properties().values()):
            raise IndexNotFound(f"no version {name} in Milvus at {self.uri}")
        self.drop(name)

    def unfinished(self, grace_seconds: float) -> list[str]:
        """Versions without a manifest whose writer is gone (this host) or that started over the grace period ago."""
        out = []
        for props in self._properties().values():
            if MANIFEST_KEY in props or WRITER_KEY not in props:
                continue
            try:
                writer = json.loads(props[WRITER_KEY])
            except json.JSONDecodeError:
                continue
            if time.time() - float(writer.get("started", 0)) > grace_seconds or _writer_gone(writer):
                out.append(writer["version"])
        return sorted(out)

    def remove_temporary(self, grace_seconds: float, dry_run: bool = False) -> int:
        """Nothing temporary outlives a publish in Milvus (alter_alias is one call)."""
        return 0

    def size(self, name: str) -> int:
        """0: Milvus does not report a collection's bytes through its client."""
        return 0


def _writer_gone(writer: dict[str, Any]) -> bool:
    """True if the writer ran on this host and its process no longer exists."""
    if writer.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(writer["pid"]), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return False

