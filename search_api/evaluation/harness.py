"""The evaluation harness: BEIR queries and qrels, an index of the corpus (built or reused), every query
through the real Searcher (one hit per article), and the metrics of each retrieval mode.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.adapt import headline_key, read_trained
from indexer.embed import Embedder
from indexer.errors import ConfigError, SourceError
from indexer.pipeline import build
from indexer.settings import Settings
from indexer.sources import supported
from indexer.steps import lead_passage_sentences
from search_api.evaluation.metrics import Qrels, dedupe, mean_scores, per_query
from search_api.evaluation.reading import read_text
from search_api.evaluation.significance import bootstrap_interval
from search_api.searcher import Searcher, SearchRequest

DEPTH = 100  # hits scored per query: Recall@100 needs a hundred
MARKER = "eval-corpus.json"  # beside the index: what it was built from
# on: the ranking as served (near-duplicates collapsed, hits only; the server's default); off: every article
# in its own place; expand: collapsed, then each hit's duplicates credited right after it.
COLLAPSE_CHOICES = ("on", "off", "expand")
HALVES = ("tune", "check")


def load_queries(path: Path) -> dict[str, str]:
    """BEIR queries (JSON lines with `_id` and `text`) as id -> text, in file order."""
    queries: dict[str, str] = {}
    for n, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            queries[str(record["_id"])] = str(record["text"])
        except (json.JSONDecodeError, KeyError, TypeError, RecursionError):
            raise SourceError(f"{path}:{n}: not a BEIR query (a JSON object with _id and text)") from None
    if not queries:
        raise SourceError(f"{path} holds no queries")
    return queries


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR qrels (TSV `query-id corpus-id score`, header optional) as query id -> doc id -> grade."""
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(_lines(path), 1):
        parts = line.rstrip("\n").split("\t")
        if not line.strip() or (n == 1 and parts[0] == "query-id"):
            continue
        try:
            qid, doc, grade = parts[0], parts[1], int(parts[2])
        except (IndexError, ValueError):
            raise SourceError(f"{path}:{n}: expected `query-id<TAB>corpus-id<TAB>score`") from None
        qrels.setdefault(qid, {})[doc] = grade
    if not qrels:
        raise SourceError(f"{path} holds no judgements")
    return qrels


def split_half(queries: dict[str, str], qrels: Qrels, split_file: Path, set_name: str,
               half: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The queries and judgements of one half (tune or check) of a dev set in a split file (bench/dev_split.json)."""
    try:
        sets = json.loads(Path(split_file).read_text(encoding="utf-8"))["sets"]
    except FileNotFoundError:
        raise SourceError(f"{split_file}: no such file; give the split file, e.g. bench/dev_split.json") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise SourceError(f"{split_file}: not a split file (JSON with sets -> name -> tune/check ids)") from None
    if set_name not in sets:
        raise ConfigError(f"{split_file} has no set {set_name!r} (it has {', '.join(sorted(sets))}); "
                          "name it with --split-set")
    if half not in sets[set_name]:
        raise ConfigError(f"{split_file} has no half {half!r} of {set_name} (it has {', '.join(sets[set_name])})")
    chosen = set(sets[set_name][half])
    kept = {qid: text for qid, text in queries.items() if qid in chosen}
    if not kept:
        raise ConfigError(f"none of the queries is in the {half} half of {set_name} in {split_file}; "
                          "check that the queries file is that set's (or name the set with --split-set)")
    return kept, {qid: dict(qrels[qid]) for qid in kept if qid in qrels}


def set_name_of(queries_file: Path) -> str:
    """The dev set a queries file holds, by its name: headlines-queries.jsonl -> headlines."""
    return Path(queries_file).name.split(".")[0].removesuffix("-queries")


def _lines(path: Path) -> list[str]:
    return read_text(path, "an existing BEIR queries/qrels file").splitlines()


def corpus_fingerprint(paths: Sequence[Path], settings: Settings, model: str) -> str:
    """Identity of what an index would be built from: corpus files (path, size, mtime), chunking, model."""
    files = []
    for root in paths:
        root = Path(root)
        found = sorted(p for p in root.rglob("*") if p.is_file() and supported(p)) if root.is_dir() else [root]
        for p in found:
            if not p.exists():
                raise SourceError(f"{p}: no such file or directory; check the corpus path")
            st = p.stat()
            files.append([str(p.resolve()), st.st_size, int(st.st_mtime)])
    described = {"files": files, "model": model, "fields": settings.fields, "chunk_tokens": settings.chunk_tokens,
                 "chunk_overlap": settings.chunk_overlap, "lead_sentences": lead_passage_sentences(settings)}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def ensure_index(paths: Sequence[Path], settings: Settings, embedder: Embedder, rebuild: bool = False,
                 progress: bool = False) -> bool:
    """Build settings.index_dir from the corpus unless it already holds this corpus so chunked; True if built."""
    fingerprint = corpus_fingerprint(paths, settings, f"{embedder.key}@{embedder.fingerprint}")
    marker = settings.index_dir / MARKER
    if not rebuild and (settings.index_dir / "CURRENT").is_file():
        if not marker.is_file():
            raise ConfigError(f"{settings.index_dir} holds an index that news-search eval did not build (a served "
                              "one?); give eval a folder of its own with --index-dir, or --rebuild to build over it")
        if json.loads(marker.read_text()).get("fingerprint") == fingerprint:
            return False
    report = build(list(paths), settings, embedder, progress=progress)
    marker.write_text(json.dumps({"fingerprint": fingerprint, "version": report.version}) + "\n")
    return True


@dataclass(frozen=True)
class ModeResult:
    """One mode's scores: means, per query, and query latency."""

    mode: str
    means: dict[str, float]
    per_query: dict[str, dict[str, float]]
    p50_ms: float
    runs: dict[str, list[str]]


def ranking_of(searcher: Searcher, text: str, mode: str, collapse: str) -> list[str]:
    """The article ids a query ranks, best first; with collapse=expand, each hit's duplicates follow it."""
    ranking = searcher.ranking(SearchRequest(q=text, k=DEPTH, mode=mode, collapse=collapse != "off"))[:DEPTH]
    ids: list[str] = []
    for article_id, duplicates in ranking:
        ids.append(article_id)
        if collapse == "expand":
            ids.extend(sorted(duplicates))
    return dedupe(ids)[:DEPTH]


def run_mode(searcher: Searcher, queries: dict[str, str], qrels: Qrels, mode: str, collapse: str = "on") -> ModeResult:
    """Every judged query through the searcher in one mode."""
    runs: dict[str, list[str]] = {}
    took: list[float] = []
    for qid, text in queries.items():
        if qid not in qrels:
            continue
        t0 = time.perf_counter()
        runs[qid] = ranking_of(searcher, text, mode, collapse)
        took.append((time.perf_counter() - t0) * 1000)
    scores = per_query(runs, {qid: qrels[qid] for qid in runs})  # a judged id the queries file lacks is not scored
    return ModeResult(mode, mean_scores(scores), scores, round(statistics.median(took), 2) if took else 0.0, runs)


def intervals(per_query_scores: dict[str, dict[str, float]]) -> dict[str, list[float]]:
    """Each metric's 95% bootstrap interval of the mean over queries, rounded to four decimals."""
    if not per_query_scores:
        return {}
    names = next(iter(per_query_scores.values()))
    return {name: [round(v, 4) for v in bootstrap_interval([s[name] for s in per_query_scores.values()])]
            for name in names}


def seen_in_training(queries: dict[str, str], qrels: Qrels, trained: dict[str, str]) -> list[str]:
    """Ids of the queries that are the headline of a judged article the model was adapted on (its answer was
    a training pair): score those with a model adapted with the judged articles excluded (docs/adapt.md)."""
    if not trained:
        return []
    return [qid for qid, text in queries.items()
            if (key := headline_key(text)) and any(trained.get(doc) == key for doc in qrels.get(qid, {}))]


def evaluate(searcher: Searcher, queries: dict[str, str], qrels: Qrels, modes: Sequence[str],
             collapse: str = "on") -> dict[str, Any]:
    """Scores of each mode (means, 95% intervals, per query), with what produced them, as one JSON-able dict."""
    s = searcher.settings
    results = [run_mode(searcher, queries, qrels, mode, collapse) for mode in modes]
    judged = [q for q in queries if q in qrels]
    seen = seen_in_training(queries, qrels, read_trained(searcher.embedder.model_path))
    unasked = sorted(set(qrels) - set(queries))
    return {
        "index_version": searcher.name,
        "chunking": searcher.version.manifest["chunking"],
        "articles": searcher.version.manifest["counts"]["articles"],
        "queries": len(judged),
        "judged_not_asked": unasked,  # qrels ids the queries file lacks (a typo, or another set's judgements)
        "collapse": collapse,
        "seen_in_training": len(seen),
        "settings": {k: getattr(s, k) for k in ("rrf_k", "dense_weight", "keyword_weight", "candidates",
                                                "title_weight", "lead_weight", "pool_temperature")},
        "modes": {r.mode: {"means": {k: round(v, 4) for k, v in r.means.items()}, "intervals": intervals(r.per_query),
                           "median_query_ms": r.p50_ms, "per_query": r.per_query} for r in results},
    }


def evaluate_corpus(paths: Sequence[Path], settings: Settings, embedder: Embedder, queries: dict[str, str],
                    qrels: Qrels, modes: Sequence[str], collapse: str = "on", rebuild: bool = False,
                    progress: bool = False) -> tuple[dict[str, Any], bool]:
    """Build (or reuse) the corpus index in settings.index_dir and evaluate it; (result, whether it was built)."""
    built = ensure_index(paths, settings, embedder, rebuild=rebuild, progress=progress)
    searcher = Searcher.open(settings.index_dir, settings, embedder)
    try:
        return evaluate(searcher, queries, qrels, modes, collapse), built
    finally:
        searcher.close()


def table(result: dict[str, Any], title: str = "") -> str:
    """A Markdown table, one row per mode: each metric's mean and its 95% bootstrap interval."""
    names = list(next(iter(result["modes"].values()))["means"])
    half = f", {result['split']['set']} {result['split']['half']} half" if result.get("split") else ""
    lines = [f"{title} ({result['queries']} queries{half}, {result['articles']} articles, fields "
             f"{result['chunking']['fields']}, collapse {result['collapse']}; mean [95% interval])" if title else "",
             "| mode | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for mode, r in result["modes"].items():
        cells = [f"{r['means'][n]:.4f}" + (" [{:.3f}, {:.3f}]".format(*r["intervals"][n]) if n in r.get(
            "intervals", {}) else "") for n in names]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(line for line in lines if line)
