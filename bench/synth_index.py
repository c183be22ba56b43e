"""Synthesise a full index version (meta.sqlite, keyword/ (tantivy), FAISS vectors, manifest) of N passages from the
real Reuters title+body index, for query benchmarks at 100k and 1M passages.

Copy 0 is the real index itself; each further copy repeats its articles under new ids ("<id>~<copy>") with
the same text, dates and sources, and gives every passage a perturbed real vector (bench/vector_data.py:
median cosine 0.82 to its source, as far as a real passage's nearest neighbour). The last copy takes
articles in a seeded random order until N passages are reached. Near-duplicate groups stay within a copy.
The version is written by indexer.storage.local.LocalWriter (the writer builds use; the vector index is the one
index_spec picks for N) and published, with the manifest's model section describing the default embedder,
so `news-search serve` and Searcher.open accept it. The source is only read.

Keyword side: every copy repeats the source's words, so the keyword index's posting lists grow N/28,805 times
with the same vocabulary; BM25 then scores copies of a text alike (a real archive of that size would spread
more), and every copy ties with its source, which the tie-break by id has to fetch past.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import faiss
import numpy as np

from bench.vector_data import NOISE, SEED, perturb, reuters_index
from indexer.chunk import passage_id
from indexer.embed import Embedder
from indexer.records import Article, Passage
from indexer.settings import Settings
from indexer.steps import chunking_info, model_info
from indexer.storage.folders import META, VECTORS, publish
from indexer.storage.local import LocalWriter

SOURCE = Path(__file__).resolve().parent.parent / "var" / "reuters-src-title-body"


@dataclass
class Source:
    """The real index read back: articles in order, their passages, one vector per passage, groups."""

    articles: list[Article]
    passages_of: dict[str, list[Passage]]
    vectors: np.ndarray  # rows in article order, then passage ordinal order
    dup_groups: dict[str, str]

    def passage_rows(self) -> np.ndarray:
        """The first vector row of each article, and one past the last (len(articles) + 1 values)."""
        counts = [len(self.passages_of[a.id]) for a in self.articles]
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def read_source(index_dir: Path) -> Source:
    """Every article, passage and vector of the published version of a built index."""
    folder = reuters_index(index_dir)
    conn = sqlite3.connect(f"file:{folder / META}?mode=ro", uri=True)
    try:
        articles, groups = [], {}
        for aid, title, body, published, source, url, chash, meta, group in conn.execute(
                "SELECT id, title, body, published, source, url, content_hash, meta, dup_group FROM articles"
                " ORDER BY num"):
            articles.append(Article(aid, title, body, datetime.fromisoformat(published) if published else None,
                                    source, url, chash, json.loads(meta)))
            if group:
                groups[aid] = group
        passages_of: dict[str, list[Passage]] = {a.id: [] for a in articles}
        for pid, aid, ordinal, text, start, end, tokens in conn.execute(
                "SELECT p.id, a.id, p.ordinal, p.text, p.start, p.end, p.tokens FROM passages p"
                " JOIN articles a ON a.num = p.article_num ORDER BY a.num, p.ordinal"):
            passages_of[aid].append(Passage(pid, aid, ordinal, text, start, end, tokens))
    finally:
        conn.close()
    index = faiss.read_index(str(folder / VECTORS))
    ids = np.array([p.id for a in articles for p in passages_of[a.id]], dtype=np.int64)
    return Source(articles, passages_of, index.reconstruct_batch(ids), groups)


def copy_article(article: Article, passages: list[Passage], copy: int) -> tuple[Article, list[Passage]]:
    """An article and its passages under the id of copy `copy` (same text, offsets and metadata)."""
    aid = f"{article.id}~{copy}"
    return replace(article, id=aid), [replace(p, id=passage_id(aid, p.ordinal), article_id=aid) for p in passages]


def replicate(src: Source, n: int, noise: float = NOISE, seed: int = SEED):
    """(articles, passages_of, ids, vectors, dup_groups, copies): the source, then copies of it up to at
    most `n` passages (the last copy partial, whole articles only)."""
    rng = np.random.default_rng(seed)
    rows = src.passage_rows()
    articles, passages_of, groups = list(src.articles), dict(src.passages_of), dict(src.dup_groups)
    vector_parts, made, copy = [src.vectors], int(rows[-1]), 0
    while made < n:
        copy += 1
        order = rng.permutation(len(src.articles))
        sizes = rows[order + 1] - rows[order]
        take = order[: int(np.searchsorted(np.cumsum(sizes), n - made, side="right"))]
        if len(take) == 0:
            break
        for i in take:
            article, passages = copy_article(src.articles[i], src.passages_of[src.articles[i].id], copy)
            articles.append(article)
            passages_of[article.id] = passages
            if src.articles[i].id in src.dup_groups:
                groups[article.id] = f"{src.dup_groups[src.articles[i].id]}~{copy}"
        source_rows = np.concatenate([np.arange(rows[i], rows[i + 1]) for i in take])
        vector_parts.append(perturb(src.vectors[source_rows], src.vectors, noise, rng))
        made += len(source_rows)
    ids = np.array([p.id for a in articles for p in passages_of[a.id]], dtype=np.int64)
    return articles, passages_of, ids, np.vstack(vector_parts), groups, copy + 1


def synthesise(source: Path, out: Path, n: int, settings: Settings, noise: float = NOISE, seed: int = SEED) -> dict:
    """Write and publish a synthetic version of about `n` passages in `out`; returns what was made."""
    t0 = time.perf_counter()
    src = read_source(source)
    articles, passages_of, ids, vectors, groups, copies = replicate(src, n, noise, seed)
    if len(np.unique(ids)) != len(ids):
        raise SystemExit("two synthetic passages share an id; choose another --seed")
    t1 = time.perf_counter()
    embedder = Embedder.from_settings(settings)
    with LocalWriter(out, model_info(embedder), chunking_info(settings), settings.flat_limit,
                     settings.hnsw_limit) as writer:
        writer.add(articles, passages_of, ids, vectors, groups)
        name = writer.commit()
    publish(out, name)
    t2 = time.perf_counter()
    manifest = json.loads((out / name / "manifest.json").read_text())
    info = {"version": name, "source": str(reuters_index(source)), "articles": len(articles), "passages": len(ids),
            "copies": copies, "noise": noise, "seed": seed,
            "faiss_spec": manifest["faiss"]["spec"], "prepare_s": round(t1 - t0, 1), "write_s": round(t2 - t1, 1),
            "bytes": {f: e["bytes"] for f, e in manifest["files"].items()}}
    (out / "synth.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=100_000, help="passages to make (default 100000)")
    parser.add_argument("--out", type=Path, required=True, help="index folder to write (a new version is published)")
    parser.add_argument("--source", type=Path, default=SOURCE, help=f"built Reuters title+body index (default {SOURCE})")
    parser.add_argument("--noise", type=float, default=NOISE)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    info = synthesise(args.source, args.out, args.passages, Settings.from_env(), args.noise, args.seed)
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
