"""The side-by-side benchmark's shared inputs: one seeded Reuters subset, the passages every engine embeds
(chunked by the project's own pipeline), the dev queries, and the judgements restricted to the subset.

Everything is written under var/compare (derived from research-only data: never committed).
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Sequence
from pathlib import Path

from bench.common import EVAL, REUTERS
from indexer.embed import Embedder
from indexer.settings import Settings
from indexer.steps import embedding_texts, prepare
from search_api.evaluation.harness import load_qrels, load_queries

Qrels = dict[str, dict[str, int]]


def reuters_files() -> list[Path]:
    """The Reuters-21578 corpus files, in order."""
    return sorted(REUTERS.glob("corpus-*.jsonl.gz"))


def reuters_lines() -> dict[str, bytes]:
    """Every Reuters record as its raw JSON line, by article id."""
    lines: dict[str, bytes] = {}
    for path in reuters_files():
        with gzip.open(path, "rb") as fh:
            for line in fh:
                if line.strip():
                    lines[json.loads(line)["id"]] = line.rstrip(b"\n")
    return lines


def judged(name: str) -> set[str]:
    """Article ids judged relevant for any query of one dev set."""
    return {doc for rels in load_qrels(EVAL / f"{name}-qrels.tsv").values() for doc, g in rels.items() if g > 0}


def select_subset(all_ids: Sequence[str], size: int, seed: int) -> list[str]:
    """Every article the headlines set judges (a known-item query needs its article), then a seeded
    random sample of the rest up to `size`; topic-judged articles come in at their corpus share. A size
    below the judged count (quick trial runs) samples the judged articles too."""
    rng = random.Random(seed)
    must = sorted(judged("headlines") & set(all_ids))
    if size < len(must):
        return sorted(rng.sample(must, size))
    rest = sorted(set(all_ids) - set(must))
    return sorted(must + rng.sample(rest, min(size, len(all_ids)) - len(must)))


def write_subset(size: int, seed: int, out: Path, first: bool = False) -> list[str]:
    """Write the subset (with `first`, the corpus' first `size` articles in file order) as a .jsonl.gz corpus file
    (the records as they stand); returns its ids."""
    lines = reuters_lines()
    ids = list(lines)[:size] if first else select_subset(list(lines), size, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wb") as fh:
        for article_id in ids:
            fh.write(lines[article_id] + b"\n")
    return ids


def write_passages(corpus: Path, fields: str, embedder: Embedder, out: Path) -> dict[str, int]:
    """Chunk the corpus as `news-index build --fields` does and write each passage's id, article id and
    the exact text the model reads (title context included for title+body); returns counts."""
    settings = Settings.from_env(fields=fields)
    prepared = prepare([corpus], settings, embedder, progress=False)
    passages = prepared.passages
    texts = embedding_texts(prepared, settings)
    with open(out, "w", encoding="utf-8") as fh:
        for passage, text in zip(passages, texts):
            fh.write(json.dumps({"id": str(passage.id), "article_id": passage.article_id, "text": text}) + "\n")
    return {"articles": len(prepared.articles), "passages": len(passages), "distinct_texts": len(set(texts)),
            "skipped": len(prepared.problems)}


def write_queries(name: str, qrels: Qrels, out: Path) -> dict[str, str]:
    """A dev set's judged queries as JSON lines ({set, id, text}), in file order; returns them by id."""
    queries = {qid: text for qid, text in load_queries(EVAL / f"{name}-queries.jsonl").items() if qid in qrels}
    with open(out, "w", encoding="utf-8") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"set": name, "id": qid, "text": text}) + "\n")
    return queries


def restricted_qrels(name: str, ids: set[str]) -> Qrels:
    """A dev set's judgements of the subset's articles; queries left without a relevant article drop out."""
    kept: Qrels = {}
    for qid, rels in load_qrels(EVAL / f"{name}-qrels.tsv").items():
        inside = {doc: g for doc, g in rels.items() if doc in ids}
        if any(g > 0 for g in inside.values()):
            kept[qid] = inside
    return kept
