"""The keyword engines bench/keyword_engines.py compares, each as build(corpus, folder) and a class opened on the
built folder whose search(text, limit, since, before) gives (doc, score) best first: FTS5 as the local store asked
it before tantivy (an `articles_fts` table of title, lead and body), tantivy and bm25s. (The hand-written
in-memory postings measured in bench/RESULTS.md were removed with indexer/storage/bm25.py.)
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.vector_data import SEED
from indexer.storage.fts import match_expression
from search_api.ranking.query_words import query_words

# The article keyword table meta.sqlite held until tantivy replaced it.
ARTICLES_FTS = ("CREATE VIRTUAL TABLE articles_fts USING fts5(title, lead, body, content='', "
                "tokenize='porter unicode61 remove_diacritics 2');")


@dataclass
class Corpus:
    """Documents as (title, lead, body) of source rows; doc i is source row rows[i], FTS5 rowid i + 1."""

    titles: list[str]
    leads: list[str]
    bodies: list[str]
    published: np.ndarray  # datetime64[s] per source row
    source: list[str]
    rows: np.ndarray  # source row of each document
    ids: list[str]  # article id of each source row

    def __len__(self) -> int:
        return len(self.rows)

    def text(self, i: int) -> str:
        """Title, lead and body of doc i as one text (the three FTS5 columns at weight 1 add up to this)."""
        r = self.rows[i]
        return f"{self.titles[r]}\n{self.leads[r]}\n{self.bodies[r]}"

    def published_of(self) -> np.ndarray:
        return self.published[self.rows]



# --- engines: build(corpus, folder), open(folder, mmap) -> search(text, limit, since, before) -> [(doc, score)]

def build_fts5(corpus: Corpus, folder: Path) -> None:
    """articles_fts as meta.sqlite declared it, beside the article columns its filters read."""
    conn = sqlite3.connect(folder / "meta.sqlite")
    conn.executescript("CREATE TABLE articles (num INTEGER PRIMARY KEY, id TEXT NOT NULL, published TEXT, source TEXT);"
                       "CREATE INDEX articles_published ON articles(published);" + ARTICLES_FTS)
    pub = corpus.published_of().astype(str)
    with conn:
        for i in range(len(corpus)):
            r = corpus.rows[i]
            conn.execute("INSERT INTO articles VALUES (?,?,?,?)", (i + 1, str(i), pub[i], corpus.source[r]))
            conn.execute("INSERT INTO articles_fts (rowid, title, lead, body) VALUES (?,?,?,?)",
                         (i + 1, corpus.titles[r], corpus.leads[r], corpus.bodies[r]))
    conn.execute("VACUUM")
    conn.close()


class Fts5:
    """bm25(articles_fts, 1, 1, 1) ORDER BY ... LIMIT on a read-only connection, as the store asked it before."""

    def __init__(self, path: Path, **_: Any):
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        # The scaled corpus names doc i "i"; a real index's ids are looked up (19k of them).
        (first,) = self.conn.execute("SELECT id FROM articles LIMIT 1").fetchone()
        self.num = None if first.isdigit() else {a: n for n, a in self.conn.execute("SELECT num, id FROM articles")}

    def search(self, text: str, limit: int, since: datetime | None = None, before: datetime | None = None):
        match = match_expression(query_words(text))
        if match is None:
            return []
        where, args = ("AND a.published >= ? AND a.published < ?", [since.isoformat(), before.isoformat()]) \
            if since is not None else ("", [])
        hits = self.conn.execute(
            "SELECT a.id, -bm25(articles_fts, 1.0, 1.0, 1.0) AS s FROM articles_fts JOIN articles a"
            f" ON a.num = articles_fts.rowid WHERE articles_fts MATCH ? {where} ORDER BY s DESC, a.id LIMIT ?",
            [match, *args, limit]).fetchall()
        return [(int(a) if self.num is None else self.num[a] - 1, s) for a, s in hits]


def ranked(docs: np.ndarray, scores: np.ndarray, limit: int) -> list[tuple[int, float]]:
    """The best `limit` (doc, score) by score, ties by doc."""
    order = np.lexsort((docs, -scores))[:limit]
    return [(int(docs[i]), float(scores[i])) for i in order]


def tantivy_schema(fields: bool):
    import tantivy

    sb = tantivy.SchemaBuilder()
    for name in (("title", "lead", "body") if fields else ("text",)):
        sb.add_text_field(name, tokenizer_name="en_stem", index_option="freq")
    sb.add_integer_field("num", fast=True, indexed=True)  # indexed: deletes by term
    sb.add_date_field("published", fast=True)
    sb.add_text_field("source", tokenizer_name="raw", fast=True)
    return sb.build()


def build_tantivy(corpus: Corpus, folder: Path, fields: bool = False) -> None:
    """One text field (title, lead and body: BM25 over their sum, as FTS5 at weights 1) or three (boostable)."""
    import tantivy

    index = tantivy.Index(tantivy_schema(fields), path=str(folder))
    writer = index.writer(heap_size=512_000_000, num_threads=1)
    for i in range(len(corpus)):
        writer.add_document(tantivy_doc(corpus, i, i, fields))
    writer.commit()
    writer.wait_merging_threads()


def tantivy_doc(corpus: Corpus, i: int, num: int, fields: bool = False):
    """Doc i of the corpus as a tantivy document numbered `num`."""
    import tantivy

    r = corpus.rows[i]
    text = ({"title": corpus.titles[r], "lead": corpus.leads[r], "body": corpus.bodies[r]} if fields
            else {"text": corpus.text(i)})
    published = corpus.published[r].astype(datetime)
    return tantivy.Document(num=num, published=published, source=corpus.source[r], **text)


def tantivy_update(work: Path, corpus: Corpus, changed: int = 1000) -> dict[str, Any]:
    """On a copy of the built tantivy index: replace `changed` documents (delete by num, add anew) and commit;
    the time, the bytes of files the commit wrote, and whether a reader opened before sees it after reload.
    Then two other processes open the published (unchanged) folder and search it at once."""
    import tantivy

    copy = work / ".tantivy-update"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(work / "tantivy", copy)
    before = {p.name for p in copy.iterdir()}
    index = tantivy.Index.open(str(copy))
    docs_before = index.searcher().num_docs
    writer = index.writer(heap_size=100_000_000, num_threads=1)
    t0 = time.perf_counter()
    for k, i in enumerate(np.random.default_rng(SEED).choice(len(corpus), changed, replace=False)):
        writer.delete_documents_by_term("num", int(i))
        writer.add_document(tantivy_doc(corpus, int(i), len(corpus) + k))
    writer.commit()
    commit_s = time.perf_counter() - t0
    writer.wait_merging_threads()
    merged_s = time.perf_counter() - t0
    index.reload()
    searcher = index.searcher()
    new = [p for p in copy.iterdir() if p.name not in before]
    out = {"changed": changed, "commit_s": round(commit_s, 2), "with_merges_s": round(merged_s, 2),
           "new_files_mb": round(sum(p.stat().st_size for p in new) / 2**20, 2), "segments": searcher.num_segments,
           "docs_before": docs_before, "docs_after": searcher.num_docs,
           "last_added_found": searcher.search(tantivy.Query.term_query(index.schema, "num", len(corpus) + changed - 1)).count}
    shutil.rmtree(copy)
    code = ("import sys, tantivy; i = tantivy.Index.open(sys.argv[1]); s = i.searcher();"
            "print(s.search(i.parse_query('oil', ['text']), 10).count)")
    readers = [subprocess.Popen([sys.executable, "-c", code, str(work / "tantivy")], stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    out["concurrent_readers_counts"] = [int(p.communicate()[0].strip()) for p in readers]
    return out


class Tantivy:
    """Terms of the query words (tantivy's en_stem analyzer) OR-ed, each field boosted; doc numbers from a
    fast field."""

    def __init__(self, path: Path, fields: bool = False, weights: Sequence[float] = (1.0, 1.0, 1.0), **_: Any):
        import tantivy

        self.t = tantivy
        self.index = tantivy.Index.open(str(path))
        self.schema = self.index.schema
        self.fields = list(zip(("title", "lead", "body"), weights)) if fields else [("text", 1.0)]
        self.analyzer = (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.remove_long(40))
                         .filter(tantivy.Filter.lowercase()).filter(tantivy.Filter.stemmer("english")).build())
        self.searcher = self.index.searcher()

    def search(self, text: str, limit: int, since: datetime | None = None, before: datetime | None = None):
        t = self.t
        terms = list(dict.fromkeys(tok for w in query_words(text) for tok in self.analyzer.analyze(w)))
        should = [(t.Occur.Should, t.Query.boost_query(t.Query.term_query(self.schema, f, term), w) if w != 1.0
                   else t.Query.term_query(self.schema, f, term)) for term in terms for f, w in self.fields if w > 0]
        if not should:
            return []
        query = t.Query.boolean_query(should)
        if since is not None:  # pre-filter inside the index: a range on the date fast field, scoring nothing
            month = t.Query.range_query(self.schema, "published", t.FieldType.Date, since, before, True, False)
            query = t.Query.boolean_query([(t.Occur.Must, query), (t.Occur.Must, t.Query.const_score_query(month, 0.0))])
        hits = self.searcher.search(query, limit, count=False).hits
        nums = self.searcher.fast_field_values("num", [h[1] for h in hits])
        return [(int(n), float(h[0])) for n, h in zip(nums, hits)]


def bm25s_tokenizer():
    import bm25s
    import Stemmer

    # FTS5's porter stemmer; every word indexed (FTS5 keeps stop words; queries drop them, keyword.query_words).
    return bm25s.tokenization.Tokenizer(stopwords=[], stemmer=Stemmer.Stemmer("porter").stemWord)


def build_bm25s(corpus: Corpus, folder: Path) -> None:
    """Sparse document-term matrix of BM25 scores (k1 1.2, b 0.75 as FTS5; lucene idf)."""
    import bm25s

    tokens = bm25s_tokenizer().tokenize([corpus.text(i) for i in range(len(corpus))], return_as="tuple",
                                         show_progress=False)
    model = bm25s.BM25(k1=1.2, b=0.75)
    model.index(tokens, show_progress=False)
    model.save(str(folder), show_progress=False)
    np.save(folder / "published.npy", corpus.published_of())


class Bm25s:
    """bm25s retrieval of the query words' stems; the date filter as a weight mask over documents."""

    def __init__(self, path: Path, mmap: bool = False, **_: Any):
        import bm25s
        import Stemmer

        self.model = bm25s.BM25.load(str(path), mmap=mmap, show_progress=False)
        self.published = np.load(path / "published.npy", mmap_mode="r" if mmap else None)
        self.stem = Stemmer.Stemmer("porter").stemWords

    def search(self, text: str, limit: int, since: datetime | None = None, before: datetime | None = None):
        vocab = self.model.vocab_dict
        ids = [vocab[s] for s in dict.fromkeys(self.stem(query_words(text))) if s in vocab]
        if not ids:
            return []
        mask = None
        if since is not None:  # computed per query here; a store would cache it per filter
            mask = ((self.published >= np.datetime64(since)) & (self.published < np.datetime64(before))).astype(np.float32)
        docs, scores = self.model.retrieve([ids], k=min(limit, self.model.scores["num_docs"]), show_progress=False,
                                           weight_mask=mask)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


BUILD = {"fts5": build_fts5, "tantivy": build_tantivy, "bm25s": build_bm25s}
OPEN = {"fts5": Fts5, "tantivy": Tantivy, "bm25s": Bm25s}
FOLDER = {"fts5": "fts5", "tantivy": "tantivy", "bm25s": "bm25s"}
