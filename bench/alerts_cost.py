"""Benchmark: evaluating 1,000 saved searches (alerts) against a 1% update of Reuters-21578.

Copies a published full build of Reuters (title+body; default the base index of main's eval benchmarks) into a
folder of its own, saves N alerts whose queries are Reuters headlines (read at run time, never committed), updates
the copy with 1% of the articles touched (bench.update_reuters: half corrected, half new), then times what the
server does when it swaps to the new version: one batched embedding of the N queries and the ranking of the
batch's articles for each (search_api.alerts.worker.drain), repeated for an interval; for scale, it also times
/search for a sample of the same queries over the whole index. Writes bench/results/alerts-cost-<cpu kind>.json. Run:
`NEWSEARCH_CACHE_DIR=/work/var-shared/cache .venv/bin/python -m bench.alerts_cost [--work DIR]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import ROOT, commit, machine_facts, memory_kb, result_path, write_result
from bench.update_reuters import changed_corpus, reuters_records, write_corpus
from indexer.alerts_store import AlertStore
from indexer.embed import Embedder
from indexer.settings import Settings
from indexer.update import update
from search_api.alerts.batch import batch_of, evaluate
from search_api.alerts.worker import drain
from search_api.searcher import Searcher, SearchRequest

BASE = ROOT / "var" / "bench" / "eval-reuters-title-body"


def headlines(records: list[dict], n: int, seed: int = 17) -> list[str]:
    """N distinct headlines of Reuters articles, drawn with a fixed seed."""
    titles = sorted({r["title"] for r in records if r.get("title")})
    picked = np.random.default_rng(seed).permutation(len(titles))[:n]
    return [titles[i] for i in sorted(picked.tolist())]


def timed(fn, repeats: int) -> tuple[list[float], list[float], object]:  # noqa: ANN001
    """Wall seconds and CPU seconds (this process, every thread) of each of `repeats` calls of fn(), and the last
    result: on a shared machine the CPU time is the steadier figure."""
    wall, cpu, result = [], [], None
    for _ in range(repeats):
        started, used = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
    return wall, cpu, result


def spread(seconds: list[float]) -> dict:
    """Median, min and max in seconds."""
    return {"median": round(statistics.median(seconds), 4), "min": round(min(seconds), 4),
            "max": round(max(seconds), 4), "runs": len(seconds)}


def prepare(base: Path, work: Path, n_alerts: int, share: float) -> tuple[Settings, list[str], dict]:
    """A copy of the base index with N alerts saved, updated with `share` of Reuters touched."""
    index = work / "index"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(base, index, ignore=shutil.ignore_patterns("leases", "jobs", "*.tmp", ".writer.lock",
                                                               "alerts.sqlite*"))
    records = reuters_records()
    settings = Settings.from_env(index_dir=index, fields="title+body", lead_sentences=0)
    embedder = Embedder.from_settings(settings)
    embedder.load()
    # First the corpus as it is, before any alert exists (nothing staged): a base built by older code differs in
    # cleaning, and its refresh must not count as the update measured.
    refresh = update([write_corpus(records, work / "corpus-base")], settings, embedder, progress=False)
    queries = headlines(records, n_alerts)
    store = AlertStore(index)
    for q in queries:
        store.create(q, "bench")
    store.close()
    changed, corrected, added = changed_corpus(records, share)
    corpus = write_corpus(changed, work / "corpus")
    started = time.perf_counter()
    report = update([corpus], settings, embedder, progress=False)
    return settings, queries, {"base_refreshed_articles": refresh.changed, "corrected": corrected, "added": added,
                               "update_seconds":
                               round(time.perf_counter() - started, 1), **report.counts(), "version": report.version}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", type=Path, default=BASE, help="a published full build of Reuters, title+body")
    parser.add_argument("--work", type=Path, default=ROOT.parent / "var-shared" / "alerts-cost",
                        help="folder for the copy (replaced)")
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--share", type=float, default=0.01, help="fraction of the corpus the update touches")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations of the batch")
    parser.add_argument("--search-sample", type=int, default=100, help="alerts also timed as whole-index /search")
    args = parser.parse_args()
    settings, queries, update_facts = prepare(args.base, args.work, args.alerts, args.share)
    embedder = Embedder.from_settings(settings)
    embedder.load(queries=True)  # as a server: queries only
    searcher = Searcher.open(settings.index_dir, settings, embedder)
    store = AlertStore(settings.index_dir)
    try:
        (batch,) = store.pending(searcher.name)
        alerts = store.alerts()
        rss_before = memory_kb()["VmRSS"]
        load_before = os.getloadavg()[0]
        embed_wall, embed_cpu, _ = timed(lambda: embedder.encode_queries(queries), args.repeats)
        eval_wall, eval_cpu, matches = timed(lambda: evaluate(searcher, alerts, batch.article_ids, batch.version),
                                             args.repeats)
        drain_wall, _, _ = timed(lambda: drain(store, searcher), 1)  # as the server runs it: evaluate and record
        sample = alerts[: args.search_sample]
        search_wall, search_cpu, _ = timed(lambda: [searcher.search(SearchRequest(q=a.query)) for a in sample], 1)
        per_alert = {}
        for m in matches:
            per_alert[m.alert_id] = per_alert.get(m.alert_id, 0) + 1
        result = {
            "benchmark": "alerts_cost", "date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit(),
            "machine": machine_facts(), "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
            "index": str(args.base), "alerts": len(alerts),
            "queries": "Reuters headlines, fixed seed (text not recorded)", "update": update_facts,
            "batch_articles": len(batch.article_ids), "batch_passages": len(batch_of(searcher, batch.article_ids).pids),
            "embed_queries_seconds": spread(embed_wall), "embed_queries_cpu_seconds": spread(embed_cpu),
            "evaluate_seconds": spread(eval_wall), "evaluate_cpu_seconds": spread(eval_cpu),
            "evaluate_ms_per_alert": round(1000 * statistics.median(eval_wall) / len(alerts), 3),
            "evaluate_cpu_ms_per_alert": round(1000 * statistics.median(eval_cpu) / len(alerts), 3),
            "drain_and_record_seconds": round(drain_wall[0], 3),
            "matches": len(matches), "alerts_with_a_match": len(per_alert),
            "matches_per_alert_max": max(per_alert.values(), default=0),
            "search_whole_index_ms_per_query": round(1000 * search_wall[0] / max(len(sample), 1), 2),
            "search_whole_index_cpu_ms_per_query": round(1000 * search_cpu[0] / max(len(sample), 1), 2),
            "search_sample": len(sample), "rss_mb_during": round(max(rss_before, memory_kb()["VmRSS"]) / 1024, 1),
            "alerts_file_bytes": (settings.index_dir / "alerts.sqlite").stat().st_size,
        }
    finally:
        store.close()
        searcher.close()
    out = write_result(result_path("alerts-cost", facts=result["machine"]), result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
