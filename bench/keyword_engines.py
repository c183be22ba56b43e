"""Benchmark: keyword (BM25) engines for the local store's keyword side at scale, and their quality on the
Reuters dev sets. Engines: FTS5 as the local store asked it before tantivy, tantivy (official bindings, mmap'd
index) and bm25s (sparse matrices, optionally memory-mapped); the in-memory postings measured in
bench/RESULTS.md went with indexer/storage/bm25.py.

Scale: the articles of a built Reuters title+body index (read only), repeated under new numbers until their
passages reach --passages, as bench/synth_index.py does (copy 0 the source, then seeded random orders, the
last copy partial, whole articles only): the keyword side of the synthetic 1M index, without its vectors.
Each engine's index is built once into --work and reused; latency and memory are measured in a fresh
process per engine. Quality: each engine's keyword-only article ranking on both halves of both dev sets,
against FTS5's on the base indexes (bench/eval_reuters), paired test per half.
Run: `python -m bench.keyword_engines --passages 1000000 --engines fts5 tantivy bm25s`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    ROOT,
    SETS,
    commit,
    dev_queries,
    dev_set,
    index_dir,
    machine_facts,
    memory_kb,
    result_path,
    size_label,
)
from bench.keyword_indexes import BUILD, FOLDER, OPEN, Corpus, Fts5, Tantivy, build_tantivy, tantivy_update
from bench.vector_data import SEED
from indexer.storage.sqlite_text import lead_of
from search_api.evaluation.metrics import mrr_at, ndcg_at
from search_api.evaluation.significance import paired

WORK = Path("/work/var-shared/kw1m-engines")
ENGINES = ("fts5", "tantivy", "bm25s")
LIMIT = 200  # keyword candidates per query, as the Searcher asks (Settings.candidates)
SINCE, BEFORE = datetime(1987, 4, 1), datetime(1987, 5, 1)  # the date filter timed: one month of 8
PRIMARY = {"headlines": "mrr@10", "topics": "ndcg@10"}
METRIC = {"mrr@10": mrr_at, "ndcg@10": ndcg_at}


def current(folder: Path) -> Path:
    """The published version folder of an index."""
    return folder / (folder / "CURRENT").read_text().strip()


def read_corpus(folder: Path, titles: bool) -> tuple[Corpus, np.ndarray]:
    """The articles of an index version (titles only if it indexes them), and each one's passage count."""
    conn = sqlite3.connect(f"file:{current(folder) / 'meta.sqlite'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT a.id, a.title, a.body, a.published, a.source,"
                            " (SELECT count(*) FROM passages p WHERE p.article_num = a.num)"
                            " FROM articles a ORDER BY a.num").fetchall()
    finally:
        conn.close()
    corpus = Corpus([r[1] if titles else "" for r in rows], [lead_of(r[2]) for r in rows], [r[2] for r in rows],
                    np.array([r[3] or "1970-01-01" for r in rows], dtype="datetime64[s]"), [r[4] or "" for r in rows],
                    np.arange(len(rows)), [r[0] for r in rows])
    return corpus, np.array([r[5] for r in rows], dtype=np.int64)


def scale_rows(passages: np.ndarray, n: int, seed: int = SEED) -> np.ndarray:
    """Source rows repeated until their passages reach at most `n`: all, then seeded random orders."""
    rng = np.random.default_rng(seed)
    parts, made = [np.arange(len(passages))], int(passages.sum())
    while made < n:
        order = rng.permutation(len(passages))
        take = order[: int(np.searchsorted(np.cumsum(passages[order]), n - made, side="right"))]
        if len(take) == 0:
            break
        parts.append(take)
        made += int(passages[take].sum())
    return np.concatenate(parts)


def target(folder: Path, engine: str) -> Path:
    """What an engine opens: the SQLite file for fts5, else its folder."""
    return folder / "fts5" / "meta.sqlite" if FOLDER[engine] == "fts5" else folder / FOLDER[engine]


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(corpus: Corpus, work: Path, engine: str) -> dict[str, Any]:
    """Build one engine's index into work/<engine> (via a temp folder renamed at the end) unless there."""
    folder, done = work / FOLDER[engine], work / f"{FOLDER[engine]}.build.json"
    if done.exists():
        return json.loads(done.read_text())
    tmp = work / f".{FOLDER[engine]}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    load0, t0, peak0 = os.getloadavg()[0], time.perf_counter(), memory_kb()["VmHWM"]
    BUILD[FOLDER[engine]](corpus, tmp)
    info = {"build_s": round(time.perf_counter() - t0, 1), "disk_mb": round(du(tmp) / 2**20, 1),
            "builder_peak_rss_mb_at_end": round(max(peak0, memory_kb()["VmHWM"]) / 1024),
            "load_avg_1m": [load0, os.getloadavg()[0]]}
    tmp.rename(folder)
    done.write_text(json.dumps(info, indent=2) + "\n")
    return info


def timed_queries(engine: str, path: Path, mmap: bool, queries: list[str], filtered: int) -> dict[str, Any]:
    """In this process: open, then time every query (after 20 untimed), then `filtered` with the date filter."""
    before = memory_kb()
    t0 = time.perf_counter()
    searcher = OPEN[engine](path, mmap=mmap)
    open_s = time.perf_counter() - t0
    opened = memory_kb()
    for q in queries[:20]:
        searcher.search(q, LIMIT)
    lat, cpu, found = [], [], []
    for q in queries:
        t, c = time.perf_counter(), time.thread_time()
        hits = searcher.search(q, LIMIT)
        lat.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
        found.append(len(hits))
    flat, flat_cpu = [], []
    for q in queries[:filtered]:
        t, c = time.perf_counter(), time.thread_time()
        searcher.search(q, LIMIT, SINCE, BEFORE)
        flat.append(time.perf_counter() - t)
        flat_cpu.append(time.thread_time() - c)
    after = memory_kb()

    def ms(xs: list[float], cs: list[float]) -> dict[str, float]:
        # CPU time of the query's thread beside wall time: other helpers share the cores (load in the file).
        return {"p50_ms": round(float(np.percentile(xs, 50)) * 1e3, 2), "p99_ms": round(float(np.percentile(xs, 99)) * 1e3, 2),
                "mean_ms": round(float(np.mean(xs)) * 1e3, 2), "cpu_p50_ms": round(float(np.percentile(cs, 50)) * 1e3, 2),
                "cpu_p99_ms": round(float(np.percentile(cs, 99)) * 1e3, 2), "queries": len(xs)}

    def delta(a: dict, b: dict) -> dict[str, int]:
        return {k: round((b.get(k, 0) - a.get(k, 0)) / 1024) for k in ("VmRSS", "RssAnon", "RssFile")}

    return {"engine": engine, "mmap": mmap, "open_s": round(open_s, 2), "unfiltered": ms(lat, cpu),
            "date_filtered": ms(flat, flat_cpu) if flat else None, "mean_hits": round(float(np.mean(found)), 1),
            "rss_mb_after_open": delta(before, opened), "rss_mb_after_queries": delta(before, after),
            "load_avg_1m": os.getloadavg()[0]}


def measure(engine: str, work: Path, passages: int, mmap: bool, n_queries: int, filtered: int) -> dict[str, Any]:
    """timed_queries in a fresh process, so memory deltas are the engine's own."""
    out = subprocess.run([sys.executable, "-m", "bench.keyword_engines", "--measure", engine, "--work", str(work),
                          "--passages", str(passages), "--queries", str(n_queries), "--filtered", str(filtered)]
                         + (["--mmap"] if mmap else []), capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"measuring {engine} failed: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def query_sample(n: int) -> list[str]:
    """n dev query texts of both sets in a fixed shuffled order."""
    queries = dev_queries()
    return [queries[i] for i in np.random.default_rng(SEED).permutation(len(queries))[:n]]


def quality(engines: Sequence[str], work: Path) -> dict[str, Any]:
    """Each engine's keyword-only article ranking (top 10, no collapse) on both halves of both dev sets, paired
    against FTS5 on the base index itself."""
    out: dict[str, Any] = {}
    for name, fields in SETS.items():
        base = index_dir(fields)
        corpus, _ = read_corpus(base, titles=fields == "title+body")  # as indexer/store.py writes it
        metric = PRIMARY[name]
        searchers = {"fts5": Fts5(current(base) / "meta.sqlite")}
        for engine in engines:
            if engine == "fts5":
                continue
            folder = work / f"reuters-{name}-{engine}"
            if not folder.exists():
                tmp = folder.with_name(folder.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                (build_tantivy(corpus, tmp, fields=True) if engine == "tantivy-fields" else BUILD[engine](corpus, tmp))
                tmp.rename(folder)
            searchers[engine] = (Tantivy(folder, fields=True) if engine == "tantivy-fields" else OPEN[engine](folder))
        out[name] = {"metric": metric, "articles": len(corpus)}
        for half in ("tune", "check"):
            queries, qrels = dev_set(name, half)
            qids = sorted(queries)
            scores = {}
            for engine, s in searchers.items():
                runs = [[corpus.ids[corpus.rows[d]] for d, _ in s.search(queries[q], LIMIT)[:10]] for q in qids]
                scores[engine] = [METRIC[metric](run, qrels.get(q, {})) for q, run in zip(qids, runs)]
            out[name][half] = {e: paired(scores[e], scores["fts5"]).as_dict() for e in searchers if e != "fts5"}
            out[name][half]["fts5_mean"] = round(float(np.mean(scores["fts5"])), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=1_000_000, help="passages the scaled corpus reaches")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--quality-engines", nargs="*", default=["tantivy", "tantivy-fields", "bm25s"])
    parser.add_argument("--work", type=Path, default=WORK, help=f"where indexes are built and reused (default {WORK})")
    parser.add_argument("--queries", type=int, default=300, help="dev queries timed per engine")
    parser.add_argument("--filtered", type=int, default=100, help="of which also timed with the date filter")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/keyword-engines-<passages>-<cpu kind>.json)")
    parser.add_argument("--skip-scale", action="store_true", help="quality only")
    parser.add_argument("--measure", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--mmap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work / f"p{args.passages}"
    if args.measure:
        result = timed_queries(args.measure, target(work, args.measure), args.mmap, query_sample(args.queries), args.filtered)
        print(json.dumps(result))  # noqa: T201 - the parent reads it
        return
    machine = machine_facts()
    path = args.out or result_path(f"keyword-engines-{size_label(args.passages)}", facts=machine)
    # Runs of single engines (each bounded in time) add to the file of earlier runs at the same scale.
    earlier = json.loads(path.read_text()) if path.exists() else {}
    result: dict[str, Any] = {"benchmark": "keyword_engines", "commit": commit(), "machine": machine,
                              "started": datetime.now().isoformat(timespec="seconds"), "load_avg_start": os.getloadavg(),
                              "limit": LIMIT, "date_filter": [SINCE.isoformat(), BEFORE.isoformat()],
                              "quality": earlier.get("quality")}
    if args.quality_engines:
        result["quality"] = quality(args.quality_engines, args.work)
    if not args.skip_scale:
        corpus, passages = read_corpus(index_dir("title+body"), titles=True)
        corpus.rows = scale_rows(passages, args.passages)
        result["scale"] = {"passages": int(passages[corpus.rows].sum()), "articles": len(corpus), "engines": {}}
        if earlier.get("scale", {}).get("passages") == result["scale"]["passages"]:
            result["scale"]["engines"] = earlier["scale"]["engines"]
        work.mkdir(parents=True, exist_ok=True)
        for engine in args.engines:
            entry = {"build": build(corpus, work, engine), "runs": []}
            for mmap in ([False, True] if engine == "bm25s" else [False]):
                entry["runs"].append(measure(engine, args.work, args.passages, mmap, args.queries, args.filtered))
            if engine == "tantivy":
                entry["update"] = tantivy_update(work, corpus)
            entry["load_avg_1m"] = os.getloadavg()
            result["scale"]["engines"][engine] = entry
    else:
        result["scale"] = earlier.get("scale")
    result["load_avg_end"] = os.getloadavg()
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201 - CLI


if __name__ == "__main__":
    main()
