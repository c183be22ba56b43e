"""Benchmark: which part of BM25 makes tantivy's keyword ranking differ from FTS5's on a dev-set half. Every
variant's top articles per query (FTS5 in SQL as main scored before tantivy, tantivy as shipped, and BM25 in
numpy from indexer.storage.words' terms with exact or tantivy-quantized lengths, FTS5's or Lucene's idf, one
text or a sum per column) replace the keyword list of the unchanged Searcher, whose dense side and fusion
stay as served; each variant's nDCG@10 is paired per query against FTS5's. Run on an index copy holding both
FTS5's `articles_fts` (meta.sqlite) and a tantivy keyword/ folder:
`PYTHONPATH=. python -m bench.keyword_gap --set topics --half tune --index /work/var-shared/tantivy2-title-body`.
Writes bench/results/keyword-gap-<cpu kind>-<set>-<half>.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tantivy
from scipy import sparse

from bench.common import SETS, commit, dev_set, machine_facts, result_path, write_result
from bench.http_load import dev_queries, summary
from bench.pair_evals import METRIC
from indexer.embed import Embedder
from indexer.settings import Settings
from indexer.storage.base import KeywordWeights
from indexer.storage.fts import match_expression
from indexer.storage.sqlite_text import lead_of
from indexer.storage.tantivy_keyword import KeywordIndex, terms_of
from indexer.storage.words import analyzed
from search_api.evaluation.harness import HALVES, evaluate
from search_api.evaluation.significance import paired
from search_api.ranking.query_words import query_words
from search_api.searcher import Searcher

K1, B = 1.2, 0.75  # both engines' BM25 constants
COLUMNS = ("title", "lead", "body")  # FTS5's articles_fts columns; tantivy's `text` is the three joined
MODES = ("keyword", "hybrid")
# name -> (lengths, idf, fields, rescore): "fts5"/"tantivy" are the engines themselves; rescore n: exact scores
# of tantivy's top n x depth only, as a store keeping exact lengths beside tantivy's could do; lengths "tf1":
# tantivy's scores corrected to exact lengths as if every term occurred once (what the total score and a length
# alone allow), "single": exact for one-term queries only (whose term frequency the score gives), else tantivy's.
VARIANTS = {
    "py-exact-fts5idf": ("exact", "fts5", "one", 0),
    "py-exact-lucene": ("exact", "lucene", "one", 0),
    "py-quant-lucene": ("quantized", "lucene", "one", 0),
    "py-quant-fts5idf": ("quantized", "fts5", "one", 0),
    "py-quant-lucene-lenties": ("quantized-ties", "lucene", "one", 0),
    # coordination (chosen 2026-12-07 evening before any run): articles holding more of the query's terms first
    # ("coordfirst": by the count, then the score), or the score times the share of terms held ("coord", Lucene's
    # classic coord factor); both over tantivy's scores
    "py-quant-lucene-coordfirst": ("quantized-coordfirst", "lucene", "one", 0),
    "py-quant-lucene-coord": ("quantized-coord", "lucene", "one", 0),
    "py-columns-lucene": ("exact", "lucene", "columns", 0),
    "py-rescore1-lucene": ("exact", "lucene", "one", 1),
    "py-rescore2-lucene": ("exact", "lucene", "one", 2),
    "py-rescore2-fts5idf": ("exact", "fts5", "one", 2),
    "py-rescore2-tf1-lucene": ("tf1", "lucene", "one", 2),
    "py-rescore2-single-lucene": ("single", "lucene", "one", 2),
}


def fieldnorm_table() -> np.ndarray:
    """The 256 lengths a 1-byte field norm can hold (Lucene's SmallFloat.byte4ToInt, as tantivy's fieldnorm)."""
    free = 24  # codes below it are exact lengths

    def int4_to_long(code: int) -> int:
        bits, shift = code & 0x07, (code >> 3) - 1
        return bits if shift == -1 else (bits | 0x08) << shift

    return np.array([c if c < free else free + int4_to_long(c - free) for c in range(256)], dtype=np.int64)


def quantized(lengths: np.ndarray) -> np.ndarray:
    """Each length as tantivy stores it: the largest table length not above it."""
    table = fieldnorm_table()
    return table[np.searchsorted(table, lengths, side="right") - 1]


def idf(kind: str, n_docs: int, df: np.ndarray) -> np.ndarray:
    """FTS5's log((N-n+.5)/(n+.5)) floored at 1e-6, or Lucene's (tantivy's) log(1 + (N-n+.5)/(n+.5))."""
    ratio = (n_docs - df + 0.5) / (df + 0.5)
    return np.maximum(np.log(ratio), 1e-6) if kind == "fts5" else np.log1p(ratio)


@dataclass(eq=False)
class Corpus:
    """Term frequencies per column (articles x terms, CSC) of the articles FTS5 and tantivy index."""

    ids: list[str]  # by row
    id_rank: np.ndarray  # row -> place of its id in id order (the tie-break)
    vocab: dict[str, int]
    fields: dict[tuple[str, ...], tuple[sparse.csc_matrix, np.ndarray]]  # columns read as one text -> counts,
    # each article's length in them

    @classmethod
    def read(cls, conn: sqlite3.Connection, index_titles: bool) -> Corpus:
        """Every article of a meta.sqlite, analyzed as the keyword writers analyze them."""
        return cls.of(conn.execute("SELECT id, title, body FROM articles ORDER BY num").fetchall(), index_titles)

    @classmethod
    def of(cls, rows: Sequence[tuple[str, str, str]], index_titles: bool) -> Corpus:
        """Articles given as (id, title, body), analyzed as the keyword writers analyze them."""
        vocab: dict[str, int] = {}
        cells: dict[str, tuple[list[int], list[int]]] = {c: ([], []) for c in COLUMNS}
        for row, (_, title, body) in enumerate(rows):
            texts = (title if index_titles else "", lead_of(body), body)
            for column, text in zip(COLUMNS, texts):
                rows_of, terms_of_ = cells[column]
                for term in analyzed(text).split():
                    rows_of.append(row)
                    terms_of_.append(vocab.setdefault(term, len(vocab)))
        shape = (len(rows), len(vocab))
        tf = {c: sparse.csc_matrix((np.ones(len(r)), (r, t)), shape=shape) for c, (r, t) in cells.items()}
        fields = {}
        for group in [COLUMNS, *((c,) for c in COLUMNS)]:
            counts = functools.reduce(lambda a, b: a + b, (tf[c] for c in group)).tocsc()
            fields[group] = counts, np.asarray(counts.sum(axis=1)).ravel().astype(np.int64)
        ids = [r[0] for r in rows]
        id_rank = np.empty(len(ids), dtype=np.int64)
        id_rank[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))
        return cls(ids, id_rank, vocab, fields)

    def top(self, scores: np.ndarray, matched: np.ndarray, limit: int,
            shorter_first: bool = False) -> list[tuple[str, float]]:
        """The best `limit` matched articles by (-score, id), as the store returns them; with `shorter_first`, by
        (-score, exact length, id): among equal scores the shorter text, which exact lengths would score higher."""
        rows = np.flatnonzero(matched)
        keys = (self.id_rank[rows], self.fields[COLUMNS][1][rows], -scores[rows]) if shorter_first else (
            self.id_rank[rows], -scores[rows])
        order = rows[np.lexsort(keys)][:limit]
        return [(self.ids[r], float(scores[r])) for r in order.tolist()]

    def scores(self, cols: list[int], lengths: str, idf_kind: str, fields: str) -> tuple[np.ndarray, np.ndarray]:
        """Every article's BM25 (K1, B) for some terms (OR), and whether it holds any."""
        n = len(self.ids)
        scores, matched = np.zeros(n), np.zeros(n, dtype=bool)
        for group in [COLUMNS] if fields == "one" else [(c,) for c in COLUMNS]:
            counts, dl = self.fields[group]
            if not dl.any():  # a column no article fills (titles of a body-only index)
                continue
            avgdl = dl.sum() / n  # both engines: total tokens over documents
            norm = K1 * (1 - B + B * (quantized(dl) if lengths == "quantized" else dl) / avgdl)
            tf = counts[:, cols].toarray()
            weight = idf(idf_kind, n, np.count_nonzero(tf, axis=0))
            scores += ((tf * (K1 + 1)) / (tf + norm[:, None]) * weight).sum(axis=1)
            matched |= tf.any(axis=1)
        return scores, matched

    def bm25(self, terms: Sequence[str], lengths: str, idf_kind: str, fields: str, rescore: int,
             limit: int) -> list[tuple[str, float]]:
        """One variant's top articles for the query terms; with `rescore`, among tantivy's (quantized, Lucene
        idf) top rescore x limit only."""
        cols = [self.vocab[t] for t in dict.fromkeys(terms) if t in self.vocab]
        if not cols:
            return []
        if lengths == "tf1":  # tantivy's score, its length corrected as if each term occurred once
            scores, matched = self.scores(cols, "quantized", idf_kind, fields)
            dl = self.fields[COLUMNS][1]
            norm = [K1 * (1 - B + B * x / (dl.sum() / len(dl))) for x in (quantized(dl), dl)]
            scores = scores * (1 + norm[0]) / (1 + norm[1])
        elif lengths in ("quantized-coordfirst", "quantized-coord"):
            scores, matched = self.scores(cols, "quantized", idf_kind, fields)
            held = np.asarray((self.fields[COLUMNS][0][:, cols] > 0).sum(axis=1)).ravel()
            if lengths == "quantized-coord":
                return self.top(scores * held / len(cols), matched, limit)
            rows = np.flatnonzero(matched)
            order = rows[np.lexsort((self.id_rank[rows], -scores[rows], -held[rows]))][:limit]
            # the score handed on orders as the ranking does (RRF reads ranks only)
            return [(self.ids[r], float(held[r] * 1e3 + scores[r])) for r in order.tolist()]
        elif lengths == "quantized-ties":
            scores, matched = self.scores(cols, "quantized", idf_kind, fields)
            return self.top(scores, matched, limit, shorter_first=True)
        elif lengths == "single":
            scores, matched = self.scores(cols, "exact" if len(cols) == 1 else "quantized", idf_kind, fields)
        else:
            scores, matched = self.scores(cols, lengths, idf_kind, fields)
        if rescore:
            first, held = self.scores(cols, "quantized", "lucene", "one")
            rows = np.flatnonzero(held)
            matched = np.zeros_like(held)
            matched[rows[np.lexsort((self.id_rank[rows], -first[rows]))][:rescore * limit]] = True
        return self.top(scores, matched, limit)


def fts5_top(conn: sqlite3.Connection, words: Sequence[str], limit: int,
             weights: Sequence[float]) -> list[tuple[str, float]]:
    """FTS5's bm25() over articles_fts (title, lead, body) as main's keyword side scored it, ties by id."""
    match = match_expression(list(words))
    if match is None:
        return []
    rows = conn.execute(f"SELECT a.id, -bm25(articles_fts, {', '.join('?' * len(weights))}) FROM articles_fts"
                        " JOIN articles a ON a.num = articles_fts.rowid WHERE articles_fts MATCH ?",
                        [*weights, match]).fetchall()
    return sorted(((i, float(s)) for i, s in rows), key=lambda p: (-p[1], p[0]))[:limit]


class Replaced:
    """A text index whose article keyword search answers from fixed rankings (by the query's words); the rest
    is the served index's, so dense retrieval and fusion run unchanged."""

    def __init__(self, text: Any, rankings: dict[tuple[str, ...], list[tuple[str, float]]]):
        self.text, self.rankings = text, rankings

    def keyword_articles(self, words: Sequence[str], limit: int, weights: Any, filter: Any = None) -> list:
        """The fixed ranking of these words, cut at `limit`."""
        return self.rankings[tuple(words)][:limit]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.text, name)


class Remembered:
    """An embedder that encodes each query once: every variant asks the same queries."""

    def __init__(self, embedder: Embedder):
        self.embedder, self.vectors = embedder, {}

    def encode_query(self, query: str) -> np.ndarray:
        """The query's vector, computed on first use."""
        if query not in self.vectors:
            self.vectors[query] = self.embedder.encode_query(query)
        return self.vectors[query]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.embedder, name)


def overlap(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> float:
    """Share of two top lists' articles in common (1.0 for two empty lists)."""
    sa, sb = {k for k, _ in a}, {k for k, _ in b}
    return len(sa & sb) / max(len(sa | sb), 1)


def tied(ranking: list[tuple[str, float]]) -> float:
    """Share of a ranking's places whose score another place has too."""
    _, inverse, counts = np.unique([s for _, s in ranking], return_inverse=True, return_counts=True)
    return float(np.mean(counts[inverse] > 1))


def rankings_of(searcher: Searcher, corpus: Corpus, conn: sqlite3.Connection,
                words_of: list[list[str]]) -> dict[str, dict]:
    """Each variant's keyword list per query (keyed by the words the Searcher passes)."""
    depth, w = searcher.settings.candidates, searcher.settings
    weights = (w.title_weight, w.lead_weight, 1.0)
    out: dict[str, dict] = {"fts5": {}, "tantivy": {}, **{v: {} for v in VARIANTS}}
    has_fts5 = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'articles_fts'").fetchone() is not None
    for words in words_of:
        key = tuple(words)
        terms = [t for word in words for t in terms_of(word)]
        # an index built after FTS5 left the articles' keyword side has no articles_fts: its numpy twin (exact
        # lengths, FTS5's idf) gave FTS5's lists on every topics query and 496 of 500 headlines ones
        out["fts5"][key] = (fts5_top(conn, words, depth, weights) if has_fts5 else
                            corpus.bm25(terms, "exact", "fts5", "one", 0, depth))
        out["tantivy"][key] = searcher.keyword_articles(list(words), depth)
        for name, spec in VARIANTS.items():
            out[name][key] = corpus.bm25(terms, *spec, depth)
    return out


def report(results: dict[str, dict], rankings: dict[str, dict], queries: dict[str, str],
           words: Callable[[str], tuple[str, ...]], metric: str) -> dict[str, Any]:
    """Per variant: means, paired difference against each engine per mode, and how its lists agree with theirs."""
    qids = sorted(results["fts5"]["hybrid"]["per_query"])
    out: dict[str, Any] = {}
    for name, result in results.items():
        row: dict[str, Any] = {"means": {m: result[m]["means"][metric] for m in MODES}}
        for mode in MODES:
            a = [result[mode]["per_query"][q][metric] for q in qids]
            for engine in ("fts5", "tantivy"):
                b = [results[engine][mode]["per_query"][q][metric] for q in qids]
                row[f"{mode}_vs_{engine}"] = paired(a, b).as_dict()
        own = [rankings[name][words(queries[q])] for q in qids]
        # ties are broken by article id, not by relevance: quantized lengths make many more of them
        row["tied_share"] = round(float(np.mean([tied(x) for x in own if x])), 4)
        for engine in ("fts5", "tantivy"):
            lists = [(rankings[name][words(queries[q])], rankings[engine][words(queries[q])]) for q in qids]
            row[f"identical_to_{engine}"] = sum([k for k, _ in x] == [k for k, _ in y] for x, y in lists)
            row[f"overlap_{engine}"] = round(float(np.mean([overlap(x, y) for x, y in lists])), 4)
        out[name] = row
    return out


def term_scores(index: KeywordIndex, terms: Sequence[str], keys: Sequence[int]) -> list[dict[int, float]]:
    """Each term's own BM25 score in each of some articles (by key) holding it: one search per term restricted
    to the keys, the only way tantivy's Python API gives a term's frequency in an article (its score inverted)."""
    t, out = tantivy, []
    among = t.Query.const_score_query(t.Query.boolean_query(
        [(t.Occur.Should, t.Query.term_query(index.schema, "key", k)) for k in keys]), 0.0)
    for term in terms:
        query = t.Query.boolean_query([(t.Occur.Must, t.Query.term_query(index.schema, "text", term)),
                                       (t.Occur.Must, among)])
        hits = index.searcher.search(query, len(keys), count=False).hits
        found = index.searcher.fast_field_values("key", [h[1] for h in hits])
        out.append({int(k): float(h[0]) for k, h in zip(found, hits)})
    return out


def rescore_cost(folder: Path, queries: Sequence[str], depth: int) -> dict[str, Any]:
    """CPU ms per query of the shipped search (top `depth`) and of what an exact-length rescoring of the hits it
    fetches would add: per-term scores restricted to them (none for a one-term query, whose score is its term's)."""
    index = KeywordIndex(folder)
    cpu: dict[str, list[float]] = {"search": [], "term_scores": []}
    terms_per_query = []
    try:
        for i, text in enumerate(queries):
            words = query_words(text)
            terms = list(dict.fromkeys(x for w in words for x in terms_of(w)))
            t0 = time.thread_time()
            hits = index.search(words, depth, KeywordWeights())  # as shipped: every hit it fetched, 2 x depth + 1
            t1 = time.thread_time()
            if len(terms) > 1 and hits:
                term_scores(index, terms, [k for k, _ in hits])
            t2 = time.thread_time()
            if i >= 20:  # after a warm-up
                cpu["search"].append((t1 - t0) * 1000)
                cpu["term_scores"].append((t2 - t1) * 1000)
                terms_per_query.append(len(terms))
    finally:
        index.close()
    return {"queries": len(terms_per_query), "terms_p50": float(np.median(terms_per_query)),
            "cpu_ms": {name: summary(values) for name, values in cpu.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=sorted(SETS), default="topics")
    parser.add_argument("--half", choices=HALVES, default="tune")
    parser.add_argument("--index", type=Path, help="index copy with articles_fts and keyword/")
    parser.add_argument("--cost-keyword-dir", type=Path, help="instead: time exact rescoring's extra searches on a "
                        "bare keyword/ folder (e.g. the 1M synthetic index's) over the dev queries")
    parser.add_argument("--label", default="1m", help="names the cost result file")
    parser.add_argument("--tag", default="", help="suffix of the result file")
    args = parser.parse_args()
    if args.cost_keyword_dir is not None:
        found = {"benchmark": "keyword_gap", "keyword_dir": str(args.cost_keyword_dir), "depth": 200,
                 **rescore_cost(args.cost_keyword_dir, dev_queries()[:320], 200), "commit": commit(),
                 "machine": machine_facts()}
        print(write_result(result_path("keyword-gap-rescore-cost", args.label), found))  # noqa: T201 - CLI
        print(json.dumps(found["cpu_ms"], indent=2))  # noqa: T201 - CLI
        return
    if args.index is None:
        parser.error("give --index (or --cost-keyword-dir)")
    embedder = Embedder.from_settings(Settings.from_env())
    settings = Settings.from_env(index_dir=args.index, fields=SETS[args.set])
    queries, qrels = dev_set(args.set, args.half)
    searcher = Searcher.open(args.index, settings, embedder)
    searcher.embedder = Remembered(embedder)  # type: ignore[assignment]
    try:
        conn = sqlite3.connect(f"file:{searcher.version.path / 'meta.sqlite'}?mode=ro", uri=True)
        try:
            corpus = Corpus.read(conn, SETS[args.set] == "title+body")

            def words(q: str) -> tuple[str, ...]:
                return tuple(query_words(q, settings.keyword_stop_words))

            rankings = rankings_of(searcher, corpus, conn, [list(words(q)) for q in queries.values()])
        finally:
            conn.close()
        served, results = searcher.version.text, {}
        for name, lists in rankings.items():
            searcher.version.text = Replaced(served, lists)
            try:
                results[name] = evaluate(searcher, queries, qrels, list(MODES))["modes"]
            finally:
                searcher.version.text = served
    finally:
        searcher.close()
    found = {"benchmark": "keyword_gap", "set": args.set, "half": args.half, "index_dir": str(args.index),
             "metric": METRIC[args.set], "depth": settings.candidates, "variants": {"fts5": "FTS5 bm25() in SQL (main)",
             "tantivy": "tantivy as shipped", **{k: "/".join(map(str, v)) for k, v in VARIANTS.items()}},
             "results": report(results, rankings, queries, words, METRIC[args.set]), "commit": commit(), "machine": machine_facts()}
    path = write_result(result_path("keyword-gap", "-".join(filter(None, (args.set, args.half, args.tag)))), found)
    for name, row in found["results"].items():
        cells = " | ".join(f"{row[f'{m}_vs_fts5']['diff']:+.4f} [{row[f'{m}_vs_fts5']['low']:+.4f}, "
                           f"{row[f'{m}_vs_fts5']['high']:+.4f}] p {row[f'{m}_vs_fts5']['p']}" for m in MODES)
        vs = row["hybrid_vs_tantivy"]
        print(f"| {name} | {row['means']['hybrid']:.4f} | {cells} | {vs['diff']:+.4f} [{vs['low']:+.4f}, "  # noqa: T201
              f"{vs['high']:+.4f}] p {vs['p']} | {row['identical_to_fts5']} | {row['identical_to_tantivy']} |")
    print(path)  # noqa: T201 - CLI


if __name__ == "__main__":
    main()
