"""Read a built index's articles and article vectors (mean of passage vectors) for the story benchmarks."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from indexer.dedup import article_vectors
from indexer.settings import Settings
from indexer.storage import open_store


@dataclass
class IndexedArticles:
    """Articles of one index version in `num` order, with their vectors."""

    ids: list[str]
    titles: list[str]
    bodies: list[str]
    published: list[datetime | None]
    sources: list[str | None]
    dup_groups: list[str | None]
    topics: list[list[str]]
    vectors: np.ndarray  # float32 [n, d], normalised mean of each article's passage vectors
    lead_vectors: np.ndarray  # float32 [n, d], each article's first passage vector


def load_indexed(index_dir: Path) -> IndexedArticles:
    """Every article of the published version of `index_dir`, read-only."""
    version = open_store(Settings(index_dir=index_dir)).open(verify=False)
    try:
        conn = open_readonly(index_dir / version.name / "meta.sqlite")  # a benchmark reads the local store's file
        rows = conn.execute("SELECT num, id, title, body, published, source, dup_group, meta FROM articles"
                            " ORDER BY num").fetchall()
        row_of = {r[0]: i for i, r in enumerate(rows)}
        pids, nums, ordinals = zip(*conn.execute("SELECT id, article_num, ordinal FROM passages ORDER BY id"))
        passage_vectors = version.vectors.get(np.array(pids, dtype=np.int64))
        owners = np.array([row_of[n] for n in nums], dtype=np.int64)
        vectors = article_vectors(passage_vectors, owners, len(rows))
        firsts = np.array(ordinals) == 0
        lead_vectors = np.zeros_like(vectors)
        lead_vectors[owners[firsts]] = passage_vectors[firsts]
    finally:
        version.close()
    return IndexedArticles([r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                           [datetime.fromisoformat(r[4]) if r[4] else None for r in rows], [r[5] for r in rows],
                           [r[6] for r in rows], [json.loads(r[7]).get("topics") or [] for r in rows], vectors,
                           lead_vectors)


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only SQLite connection."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


BASE_INDEX = Path("/work/main/var/bench/eval-reuters-title-body")  # full Reuters, title + body (read-only)
STORIES_INDEX = Path("/work/var-shared/stories-reuters-title-body")  # the same, built with stories
