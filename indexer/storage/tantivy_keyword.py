"""The local store's keyword index: one tantivy index per version (folder `keyword/`), BM25 over each article's
title, lead and body as one text of indexer.storage.words' terms, date and source indexed for filters. Chosen
over FTS5 and hand-written postings for speed and memory at 1M passages (bench/RESULTS.md, "Keyword engines").
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import tantivy

from indexer.chunk import passage_id
from indexer.errors import IndexDamaged, IndexMismatch
from indexer.files import fsync_dir, fsync_file
from indexer.records import Article
from indexer.storage.base import Filter, KeywordWeights
from indexer.storage.sqlite_text import lead_of
from indexer.storage.words import STEMMER, analyzed

log = logging.getLogger(__name__)

FOLDER = "keyword"  # in a version folder
SPEC = "newsearch.json"  # written last in FOLDER: format, stemmer, whether titles are indexed, tantivy's version
FORMAT = 2  # 1: tantivy's `en_stem` (Snowball English); 2: text stemmed by indexer.storage.words
TOKENIZER = "whitespace"  # tantivy's own: splits the stemmed text, which is lower-case already
TANTIVY = "0.27.0"
HEAP_BYTES = 200_000_000  # the writer's indexing buffer (one thread)
BITS = 20  # words per presence search (KeywordIndex._presence)
DEPTH = 2_000  # candidates per field when weights other than 1 combine fields (see KeywordIndex.search)
_EPOCH = datetime(1970, 1, 1)
_LOCKS = (".tantivy-meta.lock", ".tantivy-writer.lock")
_COPIED = ("meta.json", ".managed.json")  # rewritten by a writer (atomically, but copied to be safe)


def article_key(article_id: str) -> int:
    """An article's number in the keyword index: its passages' id prefix (indexer.chunk.passage_id), which an
    update keeps, unlike the SQLite row number."""
    return passage_id(article_id, 0)


def micros(when: datetime) -> int:
    """Microseconds since 1970 of a naive UTC time: dates as integers, exact and unbounded in range."""
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def schema() -> tantivy.Schema:
    """`text`: title, lead and body (BM25 at weights 1 is FTS5's three columns at 1); `title` and `lead` apart
    for other weights; `key` (article_key), `published` (micros) and `source` for results, deletes and filters."""
    sb = tantivy.SchemaBuilder()
    for name in ("text", "title", "lead"):
        # No positions: queries OR single terms.
        sb.add_text_field(name, tokenizer_name=TOKENIZER, index_option="freq")
    sb.add_integer_field("key", fast=True, indexed=True)
    sb.add_integer_field("published", fast=True, indexed=True)
    sb.add_text_field("source", tokenizer_name="raw", index_option="basic")
    return sb.build()


def terms_of(word: str) -> list[str]:
    """The index terms of a query word: its stems, as the documents' text was stemmed."""
    return analyzed(word).split()


def document(article: Article, index_titles: bool) -> tantivy.Document:
    """An article as the keyword index holds it (no text stored: results come back as keys)."""
    title, lead = (article.title if index_titles else ""), lead_of(article.body)
    fields: dict[str, Any] = {"text": analyzed(f"{title}\n{lead}\n{article.body}"), "title": analyzed(title),
                              "lead": analyzed(lead), "key": article_key(article.id)}
    if article.published is not None:
        fields["published"] = micros(article.published)
    if article.source is not None:
        fields["source"] = article.source
    return tantivy.Document(**fields)


def usable(folder: Path, index_titles: bool) -> bool:
    """Whether `folder` holds a complete keyword index of this format, stemmer and fields (an index written with
    another is rebuilt once on open by build_missing, as one missing)."""
    try:
        spec = json.loads((folder / SPEC).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return spec.get("format") == FORMAT and spec.get("stemmer") == STEMMER and spec.get("titles") == index_titles


class KeywordWriter:
    """Writes a version's keyword index into a temporary folder, starting empty or from the files of a previous
    version's index (tantivy never rewrites a segment file, so hard links are safe), then replacing only the
    articles whose content hash changed and deleting those gone; `finish` renames it into place."""

    def __init__(self, tmp: Path, index_titles: bool, base: Path | None = None,
                 base_hashes: dict[str, str] | None = None):
        self.tmp, self.index_titles = tmp, index_titles
        self.base_hashes = base_hashes if base is not None and base_hashes is not None else {}
        self.seen: set[str] = set()
        self.added = self.deleted = 0
        tmp.mkdir()
        if base is not None and base_hashes is not None:
            for path in base.iterdir():
                if path.name in _COPIED:
                    shutil.copy2(path, tmp / path.name)
                elif path.name not in _LOCKS and path.name != SPEC:
                    _link_or_copy(path, tmp / path.name)
            self.index = tantivy.Index.open(str(tmp))
        else:
            self.index = tantivy.Index(schema(), path=str(tmp))
        self.writer = self.index.writer(heap_size=HEAP_BYTES, num_threads=1)

    def add(self, articles: Iterable[Article]) -> None:
        """Index new or changed articles; an article held with the same content hash is left as it is."""
        for article in articles:
            self.seen.add(article.id)
            held = self.base_hashes.get(article.id)
            if held == article.content_hash:
                continue
            if held is not None:
                self.writer.delete_documents_by_term("key", article_key(article.id))
                self.deleted += 1
            self.writer.add_document(document(article, self.index_titles))
            self.added += 1

    def abort(self) -> None:
        """Roll the writer back and join its threads, so nothing writes into the folder while it is removed."""
        writer, self.writer = self.writer, None
        if writer is not None:
            try:
                writer.rollback()
                writer.wait_merging_threads()
            except (ValueError, RuntimeError, OSError) as exc:  # e.g. a full disk: the folder goes anyway
                log.debug("keyword writer of %s did not stop cleanly: %s", self.tmp, exc)

    def finish(self, final: Path) -> dict[str, Any]:
        """Delete the articles not added, commit, make durable and rename to `final`; returns what it holds."""
        for aid in self.base_hashes.keys() - self.seen:
            self.writer.delete_documents_by_term("key", article_key(aid))
            self.deleted += 1
        self.writer.commit()
        writer, self.writer = self.writer, None  # joining its threads consumes it: nothing left to abort
        writer.wait_merging_threads()
        self.index.reload()
        docs = self.index.searcher().num_docs
        spec = {"format": FORMAT, "stemmer": STEMMER, "tokenizer": TOKENIZER, "titles": self.index_titles,
                "engine": "tantivy", "tantivy": TANTIVY, "docs": docs}
        (self.tmp / SPEC).write_text(json.dumps(spec) + "\n", encoding="utf-8")
        for path in self.tmp.iterdir():
            fsync_file(path)
        fsync_dir(self.tmp)
        os.rename(self.tmp, final)
        fsync_dir(final.parent)
        return {**spec, "added": self.added, "deleted": self.deleted,
                "bytes": sum(p.stat().st_size for p in final.iterdir())}


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(source, target)


def build_missing(version: Path, rows: Iterable[Article], index_titles: bool,
                  record: Callable[[dict[str, Any]], None]) -> None:
    """Give a version written before keyword indexes existed, or before this format or stemmer, its index, once:
    built in a temporary folder under the version's lock (other openers wait, then find it) and renamed into
    place, so readers never see half; `record` gets what was built (KeywordWriter.finish) under the same lock,
    for the version's manifest."""
    final = version / FOLDER
    lock = version / f"{FOLDER}.lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise IndexMismatch(f"{version} has no keyword index of this newsearch (it was written before tantivy, "
                            f"or with another stemmer) and cannot be given one here ({exc.strerror}); open it once with write access, or rebuild it "
                            f"with `news-index build <corpus> --index-dir {version.parent}`") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if usable(final, index_titles):
            return
        for leftover in version.glob(f"{FOLDER}.tmp*"):  # of a builder killed before its rename
            shutil.rmtree(leftover, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        log.warning("building the keyword index of %s (written before tantivy, or with another stemmer); once only",
                    version)
        writer = KeywordWriter(version / f"{FOLDER}.tmp.{os.getpid()}", index_titles)
        writer.add(rows)
        record(writer.finish(final))
    finally:
        os.close(fd)


def _damaged(folder: Path, exc: Exception) -> IndexDamaged:
    """A tantivy error of an index opened before (its files damaged or removed since), which the server answers
    with 503 and a fallback version, as it does SQLite's."""
    return IndexDamaged(f"{folder} cannot be read ({exc}); rebuild the index with `news-index build` or restore "
                        "its files", str(exc))


class KeywordIndex:
    """One version's keyword index, read-only; results are (article key, score), the caller maps keys to ids."""

    def __init__(self, folder: Path):
        self.folder = folder
        # tantivy takes a lock file beside the index to read its meta, which a read-only folder (a mounted
        # snapshot, a read-only volume) refuses: such an index is read from a private copy instead.
        self._copy = None if os.access(folder, os.W_OK) else tempfile.TemporaryDirectory(prefix="newsearch-keyword-")
        if self._copy is not None:
            shutil.copytree(folder, Path(self._copy.name) / folder.name)
        self.index = tantivy.Index.open(str(folder if self._copy is None else Path(self._copy.name) / folder.name))
        self.schema = self.index.schema
        self.searcher = self.index.searcher()

    def __len__(self) -> int:
        return self.searcher.num_docs

    def close(self) -> None:
        """Remove the private copy of a read-only index, if one was made."""
        if self._copy is not None:
            self._copy.cleanup()

    def search(self, words: Sequence[str], limit: int, weights: KeywordWeights,
               filter: Filter | None = None) -> list[tuple[int, float]]:
        """The best `limit` articles matching any word, plus any tied with the last; unordered among ties.

        Weights 1 are BM25 over the `text` field alone; other weights add (weight - 1) x the title's and the
        lead's own BM25 over each field's top DEPTH (as the Milvus store does; docs/ranking.md)."""
        terms = list(dict.fromkeys(t for w in words for t in terms_of(w)))
        if not terms or limit <= 0:
            return []
        try:
            return self._search(terms, limit, weights, filter)
        except (OSError, ValueError) as exc:
            raise _damaged(self.folder, exc) from exc

    def _search(self, terms: list[str], limit: int, weights: KeywordWeights,
                filter: Filter | None) -> list[tuple[int, float]]:
        deltas = {"title": weights.title - 1.0, "lead": weights.lead - 1.0}
        if not any(deltas.values()):
            return self._top("text", terms, limit, filter)
        scores = dict(self._top("text", terms, max(limit, DEPTH), filter))
        for field, delta in deltas.items():
            for key, score in self._top(field, terms, max(limit, DEPTH), filter) if delta else ():
                scores[key] = scores.get(key, 0.0) + delta * score
        return list(scores.items())

    def _top(self, field: str, terms: Sequence[str], limit: int, filter: Filter | None) -> list[tuple[int, float]]:
        t = tantivy
        query = t.Query.boolean_query([(t.Occur.Should, t.Query.term_query(self.schema, field, term))
                                       for term in terms])
        restrict = self._filter(filter)
        if restrict is not None:  # inside the index: scored with the match, adding 0
            query = t.Query.boolean_query([(t.Occur.Must, query), (t.Occur.Must, t.Query.const_score_query(restrict, 0.0))])
        # tantivy cuts ties at the limit by its own order; fetching until the last hit scores below the
        # limit-th keeps every tie, so the caller's tie-break by id is exact.
        fetch = 2 * limit
        while True:
            hits = self.searcher.search(query, fetch + 1, count=False).hits
            if len(hits) <= fetch or hits[-1][0] < hits[limit - 1][0]:
                break
            fetch *= 4
        keys = self.searcher.fast_field_values("key", [h[1] for h in hits])
        return [(int(k), float(h[0])) for k, h in zip(keys, hits)]

    def _filter(self, filter: Filter | None) -> Any:
        if not filter:
            return
        t, parts = tantivy, []
        if filter.since is not None or filter.before is not None:
            lower = micros(filter.since) if filter.since is not None else None
            upper = micros(filter.before) if filter.before is not None else None
            parts.append(t.Query.range_query(self.schema, "published", t.FieldType.Integer, lower, upper, True,
                                             upper is None))
        if filter.sources:
            parts.append(t.Query.term_set_query(self.schema, "source", list(filter.sources)))
        return t.Query.boolean_query([(t.Occur.Must, p) for p in parts])

    def presence(self, words: Sequence[str], keys: Sequence[int]) -> tuple[int, list[int], np.ndarray]:
        """(articles indexed, articles holding each word, bool [words, keys]): a word holds if all its terms do."""
        try:
            return self._presence(words, keys)
        except (OSError, ValueError) as exc:
            raise _damaged(self.folder, exc) from exc

    def _presence(self, words: Sequence[str], keys: Sequence[int]) -> tuple[int, list[int], np.ndarray]:
        t = tantivy
        terms = [terms_of(word) for word in words]
        df = [min((self.searcher.doc_freq("text", term) for term in ts), default=0) for ts in terms]
        present = np.zeros((len(words), len(keys)), dtype=bool)
        at: dict[int, list[int]] = {}  # a key may repeat (passage hits of one article)
        for i, k in enumerate(keys):
            at.setdefault(k, []).append(i)
        asked = [i for i, ts in enumerate(terms) if ts and df[i]]
        if not at or not asked:
            return len(self), df, present
        # One search for up to BITS words: word b scores 2**b where all its terms are, so a hit's score (a sum,
        # exact in f32 below 2**24) says which words it holds; the keys, the costly part, are looked up once, as
        # term queries (a term set query over the keys took ~3x as long at 1M articles: bench/RESULTS.md).
        among = t.Query.const_score_query(t.Query.boolean_query(
            [(t.Occur.Should, t.Query.term_query(self.schema, "key", k)) for k in at]), 0.0)
        for start in range(0, len(asked), BITS):
            group = asked[start:start + BITS]
            any_word = t.Query.boolean_query([(t.Occur.Should, t.Query.const_score_query(t.Query.boolean_query(
                [(t.Occur.Must, t.Query.term_query(self.schema, "text", term)) for term in terms[i]]), float(1 << b)))
                for b, i in enumerate(group)])
            query = t.Query.boolean_query([(t.Occur.Must, any_word), (t.Occur.Must, among)])
            hits = self.searcher.search(query, len(at), count=False).hits
            for (score, _), key in zip(hits, self.searcher.fast_field_values("key", [h[1] for h in hits])):
                held = int(score)
                for b, i in enumerate(group):
                    if held >> b & 1:
                        present[i, at[int(key)]] = True  # every place of the key
        return len(self), df, present

    def check(self) -> None:
        """Raise OSError or ValueError if the index can no longer be read."""
        self.searcher.search(tantivy.Query.all_query(), 1, count=False)
