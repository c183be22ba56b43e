"""Milvus as a storage backend (NEWSEARCH_STORE=milvus): versions share a lineage's two collections, passages
(dense and BM25 fields, date and source for filters) and articles (metadata and a BM25 field), each seeing the rows
alive at its number; a version is complete when its manifest is set on its marker collection, and publishing points
an alias at the marker. Writing: indexer/storage/milvus_write.py; reading: milvus_read.py.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from pymilvus import MilvusClient

from indexer.errors import IndexMismatch, IndexNotFound, NewsearchError
from indexer.settings import Settings
from indexer.storage.faiss_vectors import EF_SEARCH
from indexer.storage.manifest import FORMAT, FORMAT_VERSION
from indexer.storage.milvus_read import MilvusText, MilvusVectors
from indexer.storage.milvus_schema import (
    ANALYZER,
    ARTICLES,
    LAYOUT,
    MANIFEST_KEY,
    MARKER,
    PASSAGES,
    alias_name,
    check_prefix,
    collection_name,
    dense_index,
    visible,
)
from indexer.storage.milvus_wire import calls, connect, is_remote, lite_path
from indexer.storage.milvus_write import WRITER_KEY, Lineage, MilvusWriter, trim
from indexer.storage.words import STEMMER

# Milvus' BM25 statistics count every row ever inserted into a collection, deleted ones too (docs/milvus.md,
# "Versions and updates"): a new lineage (a full write) once the rows inserted exceed the live ones by this share.
STALE_SHARE = 0.2
OLD_STEMMER = "english"  # what versions written before the manifest named a stemmer used


def rebuild_hint(store: MilvusStore) -> str:
    """What to run to get a good index again."""
    return f"rebuild it with `news-index build <corpus>` (NEWSEARCH_STORE=milvus, NEWSEARCH_MILVUS_URI={store.uri})"


class MilvusVersion:
    """One complete version opened read-only: the rows of its lineage it sees, behind VectorIndex and TextIndex."""

    def __init__(self, store: MilvusStore, name: str, manifest: dict[str, Any]):
        self.name = name
        self.manifest = manifest
        self.index_dir = store.index_dir
        milvus = manifest["milvus"]
        rows = visible(milvus["seq"])
        dense = milvus["dense_index"]
        self.vectors = MilvusVectors(store.client, milvus["passages"], manifest["model"]["dim"],
                                     {"metric_type": "IP", "params": dense.get("search", {})}, rows)
        self.text = MilvusText(store.client, milvus["passages"], milvus["articles"], milvus["keyword_repeats"],
                               manifest["chunking"].get("fields") == "title+body", rows,
                               milvus.get("stemmer", OLD_STEMMER))

    def close(self) -> None:
        """Nothing held: the store's client is shared."""


class MilvusStore:
    """The versions of one index in Milvus: lineages of collections `<prefix>_<lineage>_p|a`, a marker collection
    `<prefix>_<version>_v` per version, published through the alias `<prefix>_serving`. Leases, jobs and the
    embedding cache stay in settings.index_dir."""

    def __init__(self, settings: Settings, client: MilvusClient | None = None, create: bool = True):
        self.settings = settings
        self.index_dir = Path(settings.index_dir)
        self.uri = settings.milvus_uri or str(self.index_dir / "milvus.db")
        self.prefix = check_prefix(settings.milvus_collection)
        self.alias = alias_name(self.prefix)
        if not is_remote(self.uri) and create:
            self.index_dir.mkdir(parents=True, exist_ok=True)
        self.client = client or connect(self.uri, settings.milvus_token, create)

    def close(self) -> None:
        """Close the client; for Milvus Lite also stop this process' server of the file, which would otherwise
        outlive the store and hold up the process' exit."""
        self.client.close()
        if not is_remote(self.uri):
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(str(lite_path(self.uri)))

    # -- markers and lineages -----------------------------------------------------------------------

    def _markers(self) -> list[dict[str, Any]]:
        """Every version marker of this index: {version, lineage, seq, manifest (or None), writer (or None)}."""
        out = []
        with calls(self.uri):
            names = [n for n in self.client.list_collections()
                     if n.startswith(self.prefix + "_") and n.endswith("_" + MARKER)]
            for name in names:
                props = self.client.describe_collection(name).get("properties", {})
                info = _parse(props.get(MANIFEST_KEY)) or {}
                writer = _parse(props.get(WRITER_KEY))
                manifest = info if "version" in info else None
                source = (manifest or {}).get("milvus") or writer or {}
                version = (manifest or writer or {}).get("version")
                if version:
                    out.append({"version": version, "lineage": source.get("lineage"), "seq": source.get("seq", 0),
                                "manifest": manifest, "writer": writer, "collection": name})
        return out

    def drop(self, name: str, lineage: str | None = None) -> None:
        """Remove version `name`: its manifest first (it is no longer complete), then its marker, then the rows
        only it saw (or everything it wrote, if unfinished); a lineage no version uses any more is dropped. A crash
        part-way leaves rows no complete version sees, which the next writer or gc trims."""
        marker = collection_name(self.prefix, name, MARKER)
        with calls(name):
            if self.client.has_collection(marker):
                props = self.client.describe_collection(marker).get("properties", {})
                info = (_parse(props.get(MANIFEST_KEY)) or {}).get("milvus") or _parse(props.get(WRITER_KEY)) or {}
                lineage = info.get("lineage", lineage)
                if MANIFEST_KEY in props:
                    self.client.drop_collection_properties(marker, property_keys=[MANIFEST_KEY])
                self.client.drop_collection(marker)
        if lineage:
            self._trim_lineage(lineage)

    def _trim_lineage(self, lineage: str) -> None:
        """Trim a lineage to the rows its remaining versions see; drop its collections if none remains."""
        markers = [m for m in self._markers() if m["lineage"] == lineage]
        kept = sorted(m["seq"] for m in markers if m["manifest"])
        collections = [collection_name(self.prefix, lineage, kind) for kind in (PASSAGES, ARTICLES)]
        with calls(lineage):
            existing = [c for c in collections if self.client.has_collection(c)]
            if not markers:
                for collection in reversed(existing):
                    self.client.drop_collection(collection)
            elif kept:
                for collection in existing:  # a Milvus that restarted holds them released
                    self.client.load_collection(collection)
                trim(self.client, existing, kept, writing=len(markers) > len(kept))

    def _lineage_for(self, model: dict[str, Any], chunking: dict[str, Any]) -> Lineage | None:
        """The lineage a new version can extend: the published version's, if it is the lineage's newest complete
        version, was built the same way, and its collections' BM25 statistics are not too stale; else None (a full
        write)."""
        try:
            base = self.manifest(self.current())
        except (IndexNotFound, IndexMismatch):
            return None
        milvus, s = base["milvus"], self.settings
        weights = {"title": round(s.title_weight) if chunking.get("fields") == "title+body" else 0,
                   "lead": round(s.lead_weight)}
        dense = dense_index(base["counts"]["passages"], s.flat_limit, s.ef_search or EF_SEARCH)
        markers = [m for m in self._markers() if m["lineage"] == milvus["lineage"]]
        analysis = (milvus["analyzer"], milvus.get("stemmer", OLD_STEMMER))
        if (base["model"], base["chunking"], milvus["keyword_repeats"]) != (model, chunking, weights) \
                or analysis != (ANALYZER, STEMMER) \
                or dense != milvus["dense_index"] or milvus["seq"] != max(m["seq"] for m in markers if m["manifest"]):
            return None
        with calls(milvus["lineage"]):  # a Milvus that restarted holds them released
            for collection in (milvus["passages"], milvus["articles"]):
                self.client.load_collection(collection)
        for m in markers:  # writers that died (one writer at a time: leases.writer_lock)
            if not m["manifest"]:
                self.drop(m["version"], milvus["lineage"])
        self._trim_lineage(milvus["lineage"])
        inserted = milvus.get("inserted", {})
        if any(inserted.get(kind, 0) > (1 + STALE_SHARE) * base["counts"][kind] for kind in ("articles", "passages")):
            return None
        return Lineage(milvus["lineage"], milvus["seq"], milvus["dense_index"], inserted)

    # -- Store ------------------------------------------------------------------------------------

    def begin(self, model: dict[str, Any], chunking: dict[str, Any]) -> MilvusWriter:
        """Start writing a new version: into the published version's lineage when it can extend it (only rows
        that differ are written), else into new collections."""
        return MilvusWriter(self, model, chunking, self._lineage_for(model, chunking))

    def versions(self) -> list[str]:
        """Complete versions (manifest set), oldest first."""
        return sorted(m["version"] for m in self._markers() if m["manifest"])

    def manifest(self, name: str) -> dict[str, Any]:
        """The manifest of a complete version, checked for format."""
        collection = collection_name(self.prefix, name, MARKER)
        with calls(collection):
            exists = self.client.has_collection(collection)
            raw = self.client.describe_collection(collection).get("properties", {}).get(MANIFEST_KEY) if exists else None
        if raw is None:
            raise IndexNotFound(f"version {name} is not complete in Milvus at {self.uri} (no collection {collection} "
                                f"with a manifest); {rebuild_hint(self)}")
        manifest = _parse(raw)
        if manifest is None:
            raise IndexMismatch(f"the manifest of {collection} is damaged; {rebuild_hint(self)}")
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION \
                or manifest.get("milvus", {}).get("layout") != LAYOUT:
            raise IndexMismatch(f"{collection} is in format {manifest.get('format')} v{manifest.get('format_version')} "
                                f"(Milvus layout {manifest.get('milvus', {}).get('layout', 1)}), this newsearch reads "
                                f"{FORMAT} v{FORMAT_VERSION}, layout {LAYOUT}; {rebuild_hint(self)}")
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
            manifest = _parse(self.client.describe_collection(target).get("properties", {}).get(MANIFEST_KEY))
        if manifest is None or "version" not in manifest:
            raise IndexMismatch(f"alias {self.alias} names {target}, which has no manifest; {rebuild_hint(self)}")
        return manifest["version"]

    def publish(self, name: str) -> None:
        """Point the serving alias at version `name`'s marker (one Milvus call: readers see the old or the new)."""
        self.manifest(name)
        collection = collection_name(self.prefix, name, MARKER)
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
        """Open the published version (or `name`), loading its collections; `verify` compares the counts of rows
        it sees with the manifest (Milvus keeps no file checksums)."""
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
        """Remove a version (never the published one): its marker and the rows no other version sees."""
        try:
            published = self.current()
        except IndexNotFound:
            published = None
        if name == published:
            raise IndexMismatch(f"{name} is the published version in Milvus at {self.uri}; it cannot be removed")
        if not any(m["version"] == name for m in self._markers()):
            raise IndexNotFound(f"no version {name} in Milvus at {self.uri}")
        self.drop(name)

    def unfinished(self, grace_seconds: float) -> list[str]:
        """Versions without a manifest whose writer is gone (this host) or that started over the grace period ago."""
        out = []
        for m in self._markers():
            writer = m["writer"]
            if m["manifest"] or not writer:
                continue
            if time.time() - float(writer.get("started", 0)) > grace_seconds or _writer_gone(writer):
                out.append(m["version"])
        return sorted(out)

    def remove_temporary(self, grace_seconds: float, dry_run: bool = False) -> int:
        """Nothing temporary outlives a publish in Milvus (alter_alias is one call)."""
        return 0

    def size(self, name: str) -> int:
        """0: Milvus does not report a collection's bytes through its client."""
        return 0


def _parse(raw: str | None) -> dict[str, Any] | None:
    """A JSON object property, or None if absent or damaged."""
    try:
        value = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


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
