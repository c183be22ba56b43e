"""The read side of a Milvus index version: its vectors (dense search with filters pushed into Milvus) and its
text (articles, passages, BM25 search by Milvus' own function), behind VectorIndex and TextIndex.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from pymilvus import MilvusClient

from indexer.errors import StorageError
from indexer.records import Article, Passage
from indexer.storage.base import Catalog, Filter, KeywordWeights, StoredPassage
from indexer.storage.milvus_schema import both, filter_expr, from_micros, id_filter
from indexer.storage.milvus_wire import calls, fetch_all
from indexer.storage.words import stems

TOP_LIMIT = 16_384  # Milvus answers at most this many hits per search
ID_CHUNK = 1_000  # ids per `in [...]` expression or get
PASSAGE_FIELDS = ["id", "article_id", "ordinal", "start_char", "end_char", "tokens", "text"]
ROW_FIELDS = [*PASSAGE_FIELDS, "key", "born", "died", "digest", "terms", "dense", "published", "source"]
ARTICLE_FIELDS = ["id", "num", "title", "body", "published", "source", "url", "content_hash", "meta", "dup_group"]


def _expr(filter: Filter | None) -> str:
    return filter_expr(filter.since, filter.before, filter.sources) if filter else ""


def _ranked(hits: list[dict[str, Any]], limit: int) -> list[tuple[Any, float]]:
    """(id, score) best first, ties by id. BM25 distances are scores (Milvus Lite reports them negated)."""
    found = sorted(((h["entity"]["id"], abs(float(h["distance"]))) for h in hits), key=lambda p: (-p[1], p[0]))
    return found[:limit]


def _chunks(values: Sequence[Any], size: int = ID_CHUNK) -> Iterator[list[Any]]:
    for at in range(0, len(values), size):
        yield list(values[at : at + size])


class MilvusVectors:
    """The dense field of a version's passage collection, as a VectorIndex."""

    def __init__(self, client: MilvusClient, collection: str, dim: int, search_params: dict[str, Any], rows: str):
        self.client = client
        self.collection = collection
        self.rows = rows  # the filter selecting this version's rows (milvus_schema.visible)
        self.dim = dim
        self.search_params = search_params
        self._ids: np.ndarray | None = None
        self._removed: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.ids())

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Give passages of this version (or removed from it through this object) these vectors; a Milvus row
        needs its text too, so other ids are refused (versions are written by a VersionWriter)."""
        wanted = [int(i) for i in np.asarray(ids, dtype=np.int64)]
        rows = {int(r["id"]): r for r in self._rows(wanted)}
        rows.update({i: self._removed[i] for i in wanted if i not in rows and i in self._removed})
        unknown = [i for i in wanted if i not in rows]
        if unknown:
            raise StorageError(f"{self.collection} holds no passage {unknown[0]}: a Milvus row needs its text and "
                               "article; write a new version (news-index build or update)")
        for i, vector in zip(wanted, np.asarray(vectors, dtype=np.float32)):
            rows[i] = {**rows[i], "dense": vector.tolist()}
        with calls(self.collection):
            for chunk in _chunks(list(rows.values())):
                self.client.upsert(self.collection, chunk)
        self._ids = None

    def remove(self, ids: np.ndarray) -> int:
        """Delete passages by id (kept here, so `add` can give them back); returns how many were present. The
        rows may be shared with other versions of the lineage: this changes them too."""
        rows = self._rows([int(i) for i in np.unique(np.asarray(ids, dtype=np.int64))])
        self._removed.update({int(r["id"]): r for r in rows})
        with calls(self.collection):
            for chunk in _chunks([r["key"] for r in rows]):
                self.client.delete(self.collection, ids=chunk)
        self._ids = None
        return len(rows)

    def _rows(self, ids: list[int]) -> list[dict[str, Any]]:
        """Whole rows (all but the generated BM25 field) of the passages among `ids`."""
        out: list[dict[str, Any]] = []
        with calls(self.collection):
            for chunk in _chunks(ids):
                out.extend({k: v for k, v in row.items() if k != "sparse"}
                           for row in self.client.query(self.collection, filter=both(self.rows, id_filter("id", chunk)),
                                                        output_fields=ROW_FIELDS, limit=TOP_LIMIT))
        return out

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of some ids, in their order."""
        wanted = [int(i) for i in np.asarray(ids, dtype=np.int64)]
        found: dict[int, list[float]] = {}
        with calls(self.collection):
            for chunk in _chunks(sorted(set(wanted))):
                for row in self.client.query(self.collection, filter=both(self.rows, id_filter("id", chunk)),
                                             output_fields=["id", "dense"], limit=TOP_LIMIT):
                    found[int(row["id"])] = row["dense"]
        missing = [i for i in wanted if i not in found]
        if missing:
            raise StorageError(f"{self.collection} holds no passage {missing[0]} ({len(missing)} missing)")
        return np.array([found[i] for i in wanted], dtype=np.float32).reshape(len(wanted), self.dim)

    def ids(self) -> np.ndarray:
        """Every passage id, ascending (read once; the version is read-only)."""
        if self._ids is None:
            rows = fetch_all(self.client, self.collection, ["id"], self.rows)
            self._ids = np.sort(np.array([r["id"] for r in rows], dtype=np.int64))
        return self._ids

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
               filter: Filter | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product; a filter becomes Milvus' `filter` expression, else `allowed` an id list."""
        k = min(k, TOP_LIMIT)
        if k <= 0 or (allowed is not None and len(allowed) == 0):
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        vector = np.asarray(query, dtype=np.float32).reshape(-1).tolist()
        if filter or allowed is None:
            hits = self._search(vector, k, both(self.rows, _expr(filter)))
        else:  # each chunk's top-k holds the chunk's share of the overall top-k
            hits = [h for chunk in _chunks(np.unique(allowed).tolist(), TOP_LIMIT)
                    for h in self._search(vector, min(k, len(chunk)), both(self.rows, id_filter("id", chunk)))]
        top = sorted(((float(h["distance"]), int(h["entity"]["id"])) for h in hits), key=lambda p: (-p[0], p[1]))[:k]
        return (np.array([s for s, _ in top], dtype=np.float32), np.array([i for _, i in top], dtype=np.int64))

    def _search(self, vector: list[float], k: int, expr: str) -> list[dict[str, Any]]:
        with calls(self.collection):
            return self.client.search(self.collection, data=[vector], anns_field="dense", limit=k, filter=expr,
                                      output_fields=["id"], search_params=self.search_params)[0]


class MilvusText:
    """A version's passage and article collections, as a TextIndex."""

    def __init__(self, client: MilvusClient, passages: str, articles: str, repeats: dict[str, int], titles: bool,
                 rows: str, stemmer: str):
        self.client = client
        self.stemmer = stemmer  # the algorithm the version's text was stemmed with: queries are stemmed alike
        self.rows = rows  # the filter selecting this version's rows (milvus_schema.visible)
        self.passages_collection = passages
        self.articles_collection = articles
        self.repeats = repeats  # title and lead repetitions in the `keyword` field (see keyword_articles)
        self.titled = titles  # whether titles were keyword-indexed
        self._catalog: Catalog | None = None
        self._stored_nums = np.zeros(1, dtype=np.int64)  # set with the catalog
        self._stories: dict[str, str] | None = None

    def _get(self, collection: str, ids: Sequence[Any], fields: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        with calls(collection):
            for chunk in _chunks(list(dict.fromkeys(ids))):
                rows.extend(self.client.query(collection, filter=both(self.rows, id_filter("id", chunk)),
                                              output_fields=fields, limit=TOP_LIMIT))
        return rows

    def _query(self, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        with calls(collection):
            return list(self.client.query(collection, filter=both(self.rows, expr), output_fields=fields,
                                          limit=TOP_LIMIT))

    def _all(self, collection: str, fields: list[str]) -> list[dict[str, Any]]:
        return fetch_all(self.client, collection, fields, self.rows)

    def _count(self, collection: str, expr: str = "") -> int:
        with calls(collection):
            return int(self.client.query(collection, filter=both(self.rows, expr),
                                         output_fields=["count(*)"])[0]["count(*)"])

    def check(self) -> None:
        """StorageError if either collection cannot be read."""
        self._count(self.articles_collection)
        self._count(self.passages_collection)

    def count_articles(self) -> int:
        """Articles held."""
        return self._count(self.articles_collection)

    def count_passages(self) -> int:
        """Passages held."""
        return self._count(self.passages_collection)

    def catalog(self) -> Catalog:
        """Articles numbered 1..N in the order of their stored numbers (which keep the gaps of deleted articles:
        `_stored_nums` maps back), passages by id with their article's number (read once)."""
        if self._catalog is None:
            arts = sorted(self._all(self.articles_collection, ["id", "num", "published", "source", "dup_group"]),
                          key=lambda r: r["num"])
            num_of = {r["id"]: i for i, r in enumerate(arts, 1)}
            # Catalog numbers are positions 1..N; the stored numbers keep the gaps deleted articles left.
            self._stored_nums = np.array([0] + [r["num"] for r in arts], dtype=np.int64)
            pairs = sorted((int(r["id"]), num_of[r["article_id"]])
                           for r in self._all(self.passages_collection, ["id", "article_id"]))
            pairs_array = np.array(pairs, dtype=np.int64).reshape(len(pairs), 2)
            self._catalog = Catalog([""] + [r["id"] for r in arts], [None] + [from_micros(r["published"]) for r in arts],
                                    [None] + [r["source"] for r in arts], [None] + [r["dup_group"] for r in arts],
                                    pairs_array[:, 0].copy(), pairs_array[:, 1].copy())
        return self._catalog

    def sources(self) -> list[tuple[str, int]]:
        """Distinct sources with their article counts (from the catalog: Milvus has no GROUP BY)."""
        counts: dict[str, int] = {}
        for source in self.catalog().sources[1:]:
            if source is not None:
                counts[source] = counts.get(source, 0) + 1
        return sorted(counts.items())

    def date_range(self) -> tuple[Any, Any]:
        """Oldest and newest publication times."""
        dates = [d for d in self.catalog().published if d is not None]
        return (min(dates), max(dates)) if dates else (None, None)

    def passages(self, ids: Sequence[int]) -> dict[int, StoredPassage]:
        """Passages by id, joined with their articles."""
        rows = self._get(self.passages_collection, [int(i) for i in ids], PASSAGE_FIELDS)
        arts = {a["id"]: a for a in self._get(self.articles_collection, [r["article_id"] for r in rows],
                                              ["id", "title", "published", "source", "url", "dup_group"])}
        out = {}
        for r in rows:
            a = arts[r["article_id"]]
            out[int(r["id"])] = StoredPassage(int(r["id"]), r["article_id"], r["ordinal"], r["start_char"],
                                              r["end_char"], r["text"], a["title"], from_micros(a["published"]),
                                              a["source"], a["url"], a["dup_group"])
        return out

    def _passage_rows(self, article_ids: Sequence[str], fields: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for chunk in _chunks(list(article_ids)):
            rows.extend(self._query(self.passages_collection, id_filter("article_id", chunk), fields))
        return sorted(rows, key=lambda r: (r["article_id"], r["ordinal"]))

    def article(self, article_id: str) -> dict[str, Any] | None:
        """One article with its passages' ids and offsets, or None."""
        rows = self._get(self.articles_collection, [article_id], ARTICLE_FIELDS)
        if not rows:
            return None
        a = rows[0]
        passages = [{"id": int(r["id"]), "ordinal": r["ordinal"], "start": r["start_char"], "end": r["end_char"]}
                    for r in self._passage_rows([article_id], ["id", "article_id", "ordinal", "start_char", "end_char"])]
        return {"id": a["id"], "title": a["title"], "body": "".join(a["body"]), "published": from_micros(a["published"]),
                "source": a["source"], "url": a["url"], "content_hash": a["content_hash"], "meta": json.loads(a["meta"]),
                "dup_group": a["dup_group"], "passages": passages}

    def stories(self) -> dict[str, str]:
        """Article id -> story id (read once per version)."""
        if self._stories is None:
            self._stories = {r["id"]: r["story"] for r in self._all(self.articles_collection, ["id", "story"])}
        return self._stories

    def story_articles(self, story_id: str) -> list[dict[str, Any]]:
        """The articles of one story in time order (undated last, then by id): a timeline."""
        rows = self._query(self.articles_collection, id_filter("story", [story_id]),
                           ["id", "title", "published", "source", "url", "dup_group"])
        timeline = [{"id": r["id"], "title": r["title"], "published": from_micros(r["published"]),
                     "source": r["source"], "url": r["url"], "dup_group": r["dup_group"]} for r in rows]
        return sorted(timeline, key=lambda a: (a["published"] is None, a["published"] or 0, a["id"]))

    def first_passages(self, article_ids: Sequence[str]) -> dict[str, int]:
        """Each article's passage of the lowest ordinal."""
        out: dict[str, int] = {}
        for r in self._passage_rows(article_ids, ["id", "article_id", "ordinal"]):
            out.setdefault(r["article_id"], int(r["id"]))
        return out

    def stored_articles(self) -> dict[str, tuple[str, str]]:
        """Article id -> (content hash, metadata JSON), for incremental updates."""
        return {r["id"]: (r["content_hash"], r["meta"])
                for r in self._all(self.articles_collection, ["id", "content_hash", "meta"])}

    def articles(self, ids: Sequence[str]) -> list[Article]:
        """Whole stored articles, in the order asked."""
        rows = {r["id"]: r for r in self._get(self.articles_collection, list(ids), ARTICLE_FIELDS)}
        return [Article(r["id"], r["title"], "".join(r["body"]), from_micros(r["published"]), r["source"], r["url"],
                        r["content_hash"], json.loads(r["meta"])) for r in (rows[i] for i in ids)]

    def passages_by_article(self) -> dict[str, list[Passage]]:
        """Every article's passages by ordinal, articles in stored order."""
        rows = self._all(self.passages_collection, PASSAGE_FIELDS)
        by_article: dict[str, list[Passage]] = {}
        for r in sorted(rows, key=lambda r: r["ordinal"]):
            by_article.setdefault(r["article_id"], []).append(
                Passage(int(r["id"]), r["article_id"], r["ordinal"], r["text"], r["start_char"], r["end_char"],
                        r["tokens"]))
        return {aid: by_article[aid] for aid in self.catalog().article_ids[1:] if aid in by_article}

    def titles(self) -> dict[str, str]:
        """Article id -> title."""
        return {r["id"]: r["title"] for r in self._all(self.articles_collection, ["id", "title"])}

    def passage_texts(self) -> Iterator[tuple[str, str]]:
        """(article title, passage text) of every passage."""
        titles = self.titles()
        for r in self._all(self.passages_collection, ["article_id", "text"]):
            yield titles[r["article_id"]], r["text"]

    def keyword_articles(self, words: Sequence[str], limit: int, weights: KeywordWeights,
                         filter: Filter | None = None) -> list[tuple[str, float]]:
        """Top articles by Milvus' BM25 over the `keyword` field (title and lead repeated by the weights it was
        written with); for other weights, plus (weight - repeats) x each of the title and lead fields' BM25."""
        expr = both(self.rows, _expr(filter))
        deltas = {"title": weights.title - self.repeats["title"] if self.titled else 0.0,
                  "lead": weights.lead - self.repeats["lead"]}
        if not any(deltas.values()):
            return self._bm25(self.articles_collection, words, limit, expr)
        scores = dict(self._bm25(self.articles_collection, words, TOP_LIMIT, expr))
        for column, delta in deltas.items():
            for aid, score in self._bm25(self.articles_collection, words, TOP_LIMIT, expr, f"{column}_sparse"):
                scores[aid] = scores.get(aid, 0.0) + delta * score
        return sorted(scores.items(), key=lambda p: (-p[1], p[0]))[:limit]

    def keyword_passages(self, words: Sequence[str], limit: int, title_weight: float,
                         filter: Filter | None = None) -> list[tuple[int, float]]:
        """Top passages by Milvus' BM25 over their text."""
        return [(int(pid), s) for pid, s in self._bm25(self.passages_collection, words, limit,
                                                        both(self.rows, _expr(filter)))]

    def _bm25(self, collection: str, words: Sequence[str], limit: int, expr: str,
              field: str = "sparse") -> list[tuple[Any, float]]:
        if not words or limit <= 0:
            return []
        # Twice as deep as asked, so ties at the cut are broken by id rather than by Milvus' order.
        with calls(collection):
            hits = self.client.search(collection, data=[" ".join(stems(words, self.stemmer))], anns_field=field, filter=expr,
                                      limit=min(2 * limit, TOP_LIMIT), output_fields=["id"])[0]
        return _ranked(hits, limit)

    def best_keyword_passages(self, words: Sequence[str], article_ids: Sequence[str]) -> dict[str, int]:
        """Each article's passage with the best BM25 (a search grouped by article)."""
        out: dict[str, int] = {}
        if not words:
            return out
        words = stems(words, self.stemmer)
        for chunk in _chunks(list(dict.fromkeys(article_ids))):
            with calls(self.passages_collection):
                hits = self.client.search(self.passages_collection, data=[" ".join(words)], anns_field="sparse",
                                          filter=both(self.rows, id_filter("article_id", chunk)), limit=len(chunk),
                                          group_by_field="article_id", output_fields=["id", "article_id"])[0]
            for h in hits:
                out.setdefault(h["entity"]["article_id"], int(h["entity"]["id"]))
        return out

    def word_presence(self, words: Sequence[str], numbers: Sequence[int]) -> tuple[int, list[int], np.ndarray]:
        """Articles indexed, articles holding each word (text_match counts), and which `numbers` hold each."""
        self.catalog()
        stored = self._stored_nums[np.asarray(numbers, dtype=np.int64)]  # a number may come twice (group=none)
        unique = sorted(set(stored.tolist()))
        present = np.zeros((len(words), len(stored)), dtype=bool)
        df = []
        for i, word in enumerate(stems(words, self.stemmer)):
            match = f"text_match(keyword, {json.dumps(word, ensure_ascii=False)})"
            df.append(self._count(self.articles_collection, match))
            holding = [r["num"] for chunk in _chunks(unique)
                       for r in self._query(self.articles_collection, f"{match} and {id_filter('num', chunk)}", ["num"])]
            present[i] = np.isin(stored, holding)
        return self.count_articles(), df, present
