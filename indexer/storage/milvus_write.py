"""Writing Milvus versions: a version is the rows of its lineage's two collections that it sees (born <= seq < died);
a writer inserts only rows whose content differs from its base version and retires the rows they replace, and the
lineage is trimmed when versions go (docs/milvus.md, "Versions and updates").
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pymilvus
from pymilvus import MilvusClient

from indexer.errors import StorageError
from indexer.records import Article, Passage
from indexer.storage.base import AbortUnlessCommitted
from indexer.storage.faiss_vectors import EF_SEARCH
from indexer.storage.folders import new_version_name
from indexer.storage.manifest import base_manifest
from indexer.storage.milvus_schema import (
    ALIVE,
    ANALYZER,
    ARTICLE_SPARSE,
    ARTICLES,
    LAYOUT,
    MANIFEST_KEY,
    MARKER,
    PASSAGES,
    article_row,
    article_schema,
    collection_name,
    dense_index,
    id_filter,
    index_params,
    marker_schema,
    passage_row,
    passage_schema,
    versioned,
    visible,
)
from indexer.storage.milvus_wire import calls, fetch_all
from indexer.storage.sqlite_text import lead_of
from indexer.storage.words import STEMMER

if TYPE_CHECKING:
    from indexer.storage.milvus import MilvusStore

WRITER_KEY = "newsearch.writer"  # marker property: version, lineage, seq, pid, host and start of the writing job
BATCH = 256  # rows per insert: a few MB of vectors and text, far below gRPC's message limit
GENERATED = ("sparse", "title_sparse", "lead_sparse")  # BM25 outputs: Milvus computes them, a write must omit them


@dataclass(frozen=True)
class Lineage:
    """The shared collections of a chain of versions, and the version a new one starts from (seq 0: none)."""

    name: str  # the version whose full write created the collections
    base_seq: int
    dense: dict[str, Any] | None  # the dense index the collections have (None: chosen at the first commit)
    inserted: dict[str, int] = field(default_factory=dict)  # rows ever inserted into each collection, by kind


def full_rows(client: MilvusClient, collection: str, expr: str) -> list[dict[str, Any]]:
    """Every stored field of the rows matching `expr` (generated BM25 fields left out, so they can be upserted)."""
    with calls(collection):
        fields = [f["name"] for f in client.describe_collection(collection)["fields"] if f["name"] not in GENERATED]
    return fetch_all(client, collection, fields, expr)


def set_died(client: MilvusClient, collection: str, rows: list[dict[str, Any]], died: int) -> int:
    """Upsert `rows` with another `died` (one row is replaced at one timestamp: readers see it before or after)."""
    with calls(collection):
        for at in range(0, len(rows), BATCH):
            client.upsert(collection, [{**r, "died": died} for r in rows[at : at + BATCH]])
    return len(rows)


def trim(client: MilvusClient, collections: Sequence[str], kept: Sequence[int], writing: bool) -> None:
    """Delete the rows no kept version sees; unless a writer is `writing`, also undo what versions after the last
    kept one wrote (their rows deleted, the rows they retired alive again)."""
    tip = max(kept)
    seen = " or ".join(f"({visible(k)})" for k in kept)
    for collection in collections:
        with calls(collection):
            if not writing:
                client.delete(collection, filter=f"born > {tip}")
                set_died(client, collection, full_rows(client, collection, f"died > {tip} and died < {ALIVE}"), ALIVE)
            client.delete(collection, filter=f"died <= {tip} and not ({seen})")


class MilvusWriter(AbortUnlessCommitted):
    """A version being written: a marker collection (listed as unfinished until `commit` sets its manifest) and
    rows in its lineage's collections, which no published version sees."""

    def __init__(self, store: MilvusStore, model: dict[str, Any], chunking: dict[str, Any], lineage: Lineage | None):
        self.store = store
        self.client = store.client
        self.name = new_version_name()
        self.model, self.chunking = model, chunking
        self.lineage = lineage or Lineage(self.name, 0, None)
        self.seq = self.lineage.base_seq + 1
        self.marker = collection_name(store.prefix, self.name, MARKER)
        self.passages = collection_name(store.prefix, self.lineage.name, PASSAGES)
        self.articles = collection_name(store.prefix, self.lineage.name, ARTICLES)
        self.counts = {"articles": 0, "passages": 0}
        self.written = {"articles": 0, "passages": 0, "retired": 0}  # rows inserted, rows given a `died`
        self.groups: set[str] = set()
        self.without_vector = 0
        self.zero = np.zeros(model["dim"], dtype=np.float32)
        # The settings' weights as whole repetitions in the `keyword` field (see keyword_text); others are served
        # by adding the title and lead fields' own BM25 (MilvusText.keyword_articles).
        self.index_titles = chunking.get("fields") == "title+body"
        self.weights = {"title": round(store.settings.title_weight) if self.index_titles else 0,
                        "lead": round(store.settings.lead_weight)}
        writer = json.dumps({"version": self.name, "lineage": self.lineage.name, "seq": self.seq, "pid": os.getpid(),
                             "host": socket.gethostname(), "started": time.time()})
        with calls(self.marker):
            # The marker first: it is what versions() and unfinished() list, so a crash after it is cleaned by gc.
            self.client.create_collection(self.marker, schema=marker_schema(), properties={WRITER_KEY: writer})
            if lineage is None:
                self.client.create_collection(self.passages, schema=passage_schema(model["dim"]),
                                              index_params=index_params(self.client, ["sparse"]),
                                              consistency_level="Strong")
                self.client.create_collection(self.articles, schema=article_schema(),
                                              index_params=index_params(self.client, ARTICLE_SPARSE),
                                              consistency_level="Strong")
        # What the base version holds, by id; what is not given again, or given changed, is retired at commit.
        base = visible(self.lineage.base_seq)
        self.old_articles = {r["id"]: (r["key"], r["digest"], r["num"]) for r in (
            fetch_all(self.client, self.articles, ["key", "id", "digest", "num"], base) if lineage else [])}
        self.old_passages = {int(r["id"]): (r["key"], r["digest"]) for r in (
            fetch_all(self.client, self.passages, ["key", "id", "digest"], base) if lineage else [])}
        self.retired: dict[str, list[str]] = {self.articles: [], self.passages: []}
        self.writer_pids: set[int] = set()  # processes that inserted passage rows (Ray actors), for the manifest
        self.next_num = max((num for _, _, num in self.old_articles.values()), default=0) + 1

    def add(self, articles: Sequence[Article], passages_of: Mapping[str, Sequence[Passage]], ids: np.ndarray,
            vectors: np.ndarray, dup_groups: Mapping[str, str], stories: Mapping[str, str] | None = None) -> None:
        """Insert the rows of articles and passages that differ from the base version's; an article not in
        `stories` is a story of its own."""
        row_of = {int(pid): i for i, pid in enumerate(np.asarray(ids, dtype=np.int64).tolist())}
        self._add_articles(articles, dup_groups, stories)
        pas: list[dict[str, Any]] = []
        for article in articles:
            for passage in passages_of.get(article.id, ()):
                at = row_of.get(int(passage.id))
                if at is None:  # a Milvus row needs a vector: a stand-in, and commit refuses the version
                    self.without_vector += 1
                row = versioned(passage_row(passage, vectors[at] if at is not None else self.zero, article), self.seq)
                self.counts["passages"] += 1
                self._keep_or_write(row, self.old_passages.pop(int(passage.id), None), pas, self.passages)
        self._insert(self.passages, pas)
        self.written["passages"] += len(pas)

    def worker_job(self) -> dict[str, Any]:
        """What a process writing this version's passage rows itself needs (storage/milvus_ray.PassageRows); only
        for a Milvus server, which other processes can reach."""
        return {"uri": self.store.uri, "token": self.store.settings.milvus_token, "collection": self.passages,
                "seq": self.seq, "base_seq": self.lineage.base_seq}

    def base_digest(self, passage_id: int) -> str | None:
        """The digest of the base version's row of a passage (None: the base has none), for PassageRows.insert."""
        old = self.old_passages.get(int(passage_id))
        return old[1] if old else None

    def add_written(self, articles: Sequence[Article], passages_of: Mapping[str, Sequence[Passage]],
                    written: set[int], writers: set[int], dup_groups: Mapping[str, str],
                    stories: Mapping[str, str] | None = None) -> None:
        """Insert the article rows, and take note of the passage rows other processes (`writers`) wrote through
        worker_job: the base rows they replaced are retired at commit, those of unwritten passages kept."""
        self._add_articles(articles, dup_groups, stories)
        for article in articles:
            for passage in passages_of.get(article.id, ()):
                self.counts["passages"] += 1
                old = self.old_passages.pop(int(passage.id), None)
                if old is not None and int(passage.id) in written:
                    self.retired[self.passages].append(old[0])
        self.written["passages"] += len(written)
        self.writer_pids.update(writers)

    def _add_articles(self, articles: Sequence[Article], dup_groups: Mapping[str, str],
                      stories: Mapping[str, str] | None) -> None:
        arts: list[dict[str, Any]] = []
        for article in articles:
            self.counts["articles"] += 1
            group = dup_groups.get(article.id)
            if group:
                self.groups.add(group)
            title = article.title if self.index_titles else ""
            old = self.old_articles.pop(article.id, None)
            num = old[2] if old else self.next_num
            self.next_num += old is None
            row = versioned(article_row(article, num, group, title, lead_of(article.body), self.weights,
                                        (stories or {}).get(article.id)), self.seq)
            self._keep_or_write(row, old, arts, self.articles)
        self._insert(self.articles, arts)
        self.written["articles"] += len(arts)

    def _insert(self, collection: str, rows: list[dict[str, Any]]) -> None:
        with calls(collection):
            for start in range(0, len(rows), BATCH):
                self.client.insert(collection, rows[start : start + BATCH])

    def _keep_or_write(self, row: dict[str, Any], old: tuple | None, rows: list[dict[str, Any]],
                       collection: str) -> None:
        """Keep the base's row if its content is the same, else write `row` and retire the base's."""
        if old is not None and old[1] == row["digest"]:
            return
        rows.append(row)
        if old is not None:
            self.retired[collection].append(old[0])

    def _retire(self) -> None:
        """Give `died` = this version to the base rows it replaced or dropped (dropped: never given again)."""
        self.retired[self.articles] += [key for key, _, _ in self.old_articles.values()]
        self.retired[self.passages] += [key for key, _ in self.old_passages.values()]
        for collection, keys in self.retired.items():
            for at in range(0, len(keys), 1_000):
                rows = full_rows(self.client, collection, id_filter("key", keys[at : at + 1_000]))
                self.written["retired"] += set_died(self.client, collection, rows, self.seq)

    def commit(self) -> str:
        """Retire replaced rows, flush, index and load a new lineage, then set the manifest: now complete."""
        if self.without_vector:
            raise StorageError(f"{self.without_vector} passages of version {self.name} were added without a vector; "
                               "every passage needs one (this is a bug of the job writing it)")
        settings = self.store.settings
        dense = self.lineage.dense or dense_index(self.counts["passages"], settings.flat_limit,
                                                  settings.ef_search or EF_SEARCH)
        with calls(self.passages):
            self._retire()
            for collection in (self.articles, self.passages):
                self.client.flush(collection)
            if self.lineage.dense is None:
                params = self.client.prepare_index_params()
                params.add_index(field_name="dense", index_type=dense["index_type"], metric_type=dense["metric_type"],
                                 params=dense["params"])
                self.client.create_index(self.passages, params)
            for collection in (self.articles, self.passages):
                self.client.load_collection(collection)
            manifest = base_manifest(self.name, self.model, self.chunking,
                                     {**self.counts, "duplicate_groups": len(self.groups)})
            manifest["milvus"] = {"layout": LAYOUT, "lineage": self.lineage.name, "seq": self.seq,
                                  "dense_index": dense, "analyzer": ANALYZER, "stemmer": STEMMER,
                                  "keyword_repeats": self.weights,
                                  "passages": self.passages, "articles": self.articles, "written": self.written,
                                  "inserted": {kind: self.lineage.inserted.get(kind, 0) + self.written[kind]
                                               for kind in ("articles", "passages")},
                                  "passage_writers": sorted(self.writer_pids) or "driver",
                                  "pymilvus": pymilvus.__version__}
            self.client.alter_collection_properties(self.marker, {MANIFEST_KEY: json.dumps(manifest)})
        self.committed = True
        return self.name

    def abort(self) -> None:
        """Drop the marker and undo the rows written."""
        self.store.drop(self.name, self.lineage.name)


