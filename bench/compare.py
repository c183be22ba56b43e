"""Benchmark: newsearch side by side with txtai (Faiss), Chroma (PersistentClient) and LanceDB in one run,
on one seeded Reuters subset, with one model folder, on this machine.

Each dev set is scored on the index its data README asks for: headlines on bodies only, topics on title +
body, so every engine builds both. newsearch is built by `news-index build` (the real CLI, in this venv,
NEWSEARCH_* variables passed through, e.g. NEWSEARCH_BACKEND) and searched through the real Searcher
(dense and hybrid); the competitors run in var/compare-venv (bench/compare_engines.py) on exactly the
passages newsearch's chunker made, with the text the model reads. Indexing is timed as the wall time of
the process that indexes (imports and model load included); queries are timed in-process after a warm-up.
Writes bench/results/compare-<articles>[-first]-<cpu kind>.json and prints Markdown tables. Run: `make bench-compare`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT, SETS, commit, percentile, result_path
from bench.compare_data import restricted_qrels, write_passages, write_queries, write_subset
from indexer.doctor import cpu_facts
from indexer.embed import Embedder
from indexer.settings import Settings
from search_api.evaluation.harness import DEPTH, ranking_of
from search_api.evaluation.metrics import mean_scores, per_query
from search_api.searcher import Searcher, SearchRequest

VAR = ROOT / "var" / "compare"
COMPARE_PYTHON = ROOT / "var" / "compare-venv" / "bin" / "python"
RUNNER = ROOT / "bench" / "compare_engines.py"
ENGINES = ("newsearch", "txtai", "chroma", "lancedb")
WARMUP = 10  # as bench/compare_engines.py
PAGE = 10  # hits of a results page
SUMMARY = re.compile(r"(\d+) articles, (\d+) passages \((\d+) embedded\) in ([\d.]+)s .*?([\d.]+) passages/s embedding")


def run_process(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a command to its end: (wall seconds, peak RSS in MB, stdout); its stderr passes through."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} {' '.join(cmd[1:3])} failed (exit {proc.returncode}); see the output above")
    return seconds, usage.ru_maxrss / 1024, out


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under a folder."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def latency(millis: list[float]) -> dict[str, float]:
    """p50, p99 and mean of per-query milliseconds."""
    return {"p50_ms": round(percentile(millis, 50), 2), "p99_ms": round(percentile(millis, 99), 2),
            "mean_ms": round(statistics.fmean(millis), 2)}


def scores(runs: dict[str, list[str]], qrels: dict) -> dict[str, float]:
    """Mean metrics of a run over the judged queries (search_api.evaluation.metrics, as news-search eval)."""
    return {k: round(v, 4) for k, v in mean_scores(per_query(runs, qrels)).items()}


def build_ours(corpus: Path, fields: str, folder: Path, env: dict[str, str]) -> dict:
    """A cold `news-index build` of the subset; the process's wall time and the build's own report."""
    cli = Path(sys.executable).with_name("news-index")
    cmd = [str(cli), "build", str(corpus), "--index-dir", str(folder), "--fields", fields, "--quiet"]
    seconds, rss, out = run_process(cmd, {**env, "NEWSEARCH_CACHE_DIR": ""})
    match = SUMMARY.search(out)
    if not match:
        raise SystemExit(f"news-index build printed no summary I can read: {out[:300]!r}")
    articles, passages, embedded, build_seconds, rate = match.groups()
    version = folder / (folder / "CURRENT").read_text().strip()
    return {"process_seconds": round(seconds, 2), "build_seconds": float(build_seconds),
            "embed_seconds": round(int(embedded) / float(rate), 2), "articles": int(articles),
            "passages": int(passages), "embedded": int(embedded), "disk_bytes": folder_bytes(version),
            "cache_bytes": folder_bytes(folder / "cache") if (folder / "cache").is_dir() else 0,
            "peak_rss_mb": round(rss, 1), "summary": out.strip().splitlines()[0]}


def query_ours(folder: Path, fields: str, queries: dict[str, str], qrels: dict, threads: int) -> dict:
    """Every judged query through the real Searcher, dense and hybrid, one hit per article, 100 deep."""
    settings = Settings.from_env(index_dir=folder, fields=fields, threads=threads)
    searcher = Searcher.open(folder, settings, Embedder.from_settings(settings))
    judged = [(qid, text) for qid, text in queries.items() if qid in qrels]
    modes = {}
    try:
        for mode in ("dense", "hybrid"):
            for _, text in judged[:WARMUP]:
                ranking_of(searcher, text, mode, "off")
            runs, millis = {}, []
            for qid, text in judged:
                t0 = time.perf_counter()
                runs[qid] = ranking_of(searcher, text, mode, "off")
                millis.append((time.perf_counter() - t0) * 1000)
            page = []
            for _, text in judged:  # a results page as a user asks for it (k=10, the Searcher's defaults)
                t0 = time.perf_counter()
                searcher.search(SearchRequest(q=text, k=PAGE, mode=mode))
                page.append((time.perf_counter() - t0) * 1000)
            modes[mode] = {"scores": scores(runs, qrels), "deep": latency(millis), **latency(page)}
    finally:
        searcher.close()
    return modes


def run_competitor(engine: str, model: str, passages: Path, queries: Path, qrels: dict, folder: Path,
                   env: dict[str, str], threads: int) -> dict:
    """Index in one process of the competitor venv (timed whole), then query in another."""
    common = [str(COMPARE_PYTHON), str(RUNNER), "--engine", engine, "--model", model, "--folder", str(folder),
              "--threads", str(threads)]
    seconds, rss, _ = run_process([*common[:2], "index", *common[2:], "--passages", str(passages),
                                   "--out", str(folder.with_suffix(".index.json"))], env)
    indexed = json.loads(folder.with_suffix(".index.json").read_text())
    run_process([*common[:2], "query", *common[2:], "--queries", str(queries), "--depth", str(DEPTH),
                 "--out", str(folder.with_suffix(".query.json"))], env)
    queried = json.loads(folder.with_suffix(".query.json").read_text())
    runs = {qid: ranking for set_runs in queried["runs"].values() for qid, ranking in set_runs.items() if qid in qrels}
    millis = [ms for set_ms in queried["query_ms"].values() for ms in set_ms]
    page = queried["page_ms"]
    return {"process_seconds": round(seconds, 2), "build_seconds": indexed["index_seconds"],
            "passages": indexed["passages"], "disk_bytes": indexed["disk_bytes"], "peak_rss_mb": round(rss, 1),
            "version": indexed.get("version"), "info": indexed["info"], "open_seconds": queried["open_seconds"],
            "dense": {"scores": scores(runs, qrels), "deep": latency(millis), **latency(page)}}


def prepare(size: int, seed: int, embedder: Embedder, names: list[str], first: bool = False) -> dict:
    """The subset, each named set's passages (chunked for its fields) and judged queries, under var/compare."""
    VAR.mkdir(parents=True, exist_ok=True)
    corpus = VAR / "subset.jsonl.gz"
    ids = set(write_subset(size, seed, corpus, first))
    sets = {}
    for name in names:
        fields = SETS[name]
        qrels = restricted_qrels(name, ids)
        queries = write_queries(name, qrels, VAR / f"queries-{name}.jsonl")
        passages = VAR / f"passages-{name}.jsonl"
        sets[name] = {"fields": fields, "queries": queries, "qrels": qrels, "passages_file": passages,
                      "queries_file": VAR / f"queries-{name}.jsonl",
                      **write_passages(corpus, fields, embedder, passages)}
    return {"corpus": corpus, "articles": len(ids), "sets": sets}


def run_set(name: str, data: dict, order: tuple[str, ...], corpus: Path, model: str, env: dict[str, str],
            threads: int) -> dict:
    """Every engine, in `order`, builds the set's index and answers its judged queries."""
    results = {}
    for engine in order:
        folder = VAR / "run" / f"{engine}-{name}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        print(f"{name}: {engine} ...", file=sys.stderr, flush=True)
        if engine == "newsearch":
            built = build_ours(corpus, data["fields"], folder, env)
            results[engine] = {**built, **query_ours(folder, data["fields"], data["queries"], data["qrels"], threads)}
        else:
            results[engine] = run_competitor(engine, model, data["passages_file"], data["queries_file"],
                                             data["qrels"], folder, env, threads)
        print(f"{name}: {engine} indexed in {results[engine]['process_seconds']} s", file=sys.stderr, flush=True)
    return results


def ratios(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """newsearch against each competitor: indexing throughput (x faster), query p50 and size (ours / theirs)."""
    ours = results["newsearch"]
    out = {}
    for engine, theirs in results.items():
        if engine == "newsearch":
            continue
        out[engine] = {
            "indexing_throughput": round(theirs["process_seconds"] / ours["process_seconds"], 2),
            "query_p50_dense": round(ours["dense"]["p50_ms"] / theirs["dense"]["p50_ms"], 2),
            "query_p50_hybrid": round(ours["hybrid"]["p50_ms"] / theirs["dense"]["p50_ms"], 2),
            "query_p50_dense_100_deep": round(ours["dense"]["deep"]["p50_ms"] / theirs["dense"]["deep"]["p50_ms"], 2),
            "disk_size": round(ours["disk_bytes"] / theirs["disk_bytes"], 2),
        }
    return out


def overall(sets: dict[str, dict], engines: tuple[str, ...] = ENGINES) -> dict[str, dict[str, float]]:
    """Every build of each engine together: seconds, passages/s, and newsearch's throughput ratio."""
    totals = {}
    for engine in engines:
        seconds = sum(s["engines"][engine]["process_seconds"] for s in sets.values())
        passages = sum(s["engines"][engine]["passages"] for s in sets.values())
        totals[engine] = {"seconds": round(seconds, 1), "passages": passages,
                          "passages_per_second": round(passages / seconds, 2)}
    for engine in engines[1:]:
        totals[engine]["newsearch_throughput_ratio"] = round(totals[engine]["seconds"] / totals["newsearch"]["seconds"], 2)
    return totals


def machine(threads: int) -> dict:
    """What this ran on."""
    import torch

    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in cpu.splitlines() if line.startswith("flags")), []))
    return {"cpu": name, "arch": platform.machine(), "cores": len(os.sched_getaffinity(0)), "threads": threads,
            "avx2": "avx2" in flags, "avx512f": "avx512f" in flags, "simd": cpu_facts()["simd"], "torch": torch.__version__,
            "python": platform.python_version(), "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def table(name: str, data: dict, results: dict[str, dict]) -> str:
    """One Markdown table per dev set: an engine (and newsearch mode) a row."""
    lines = [f"{name} ({len(data['qrels'])} judged queries, {data['passages']} passages, fields {data['fields']})",
             "| engine | index s | passages/s | on disk MB | p50 ms (k=10) | p99 ms (k=10) | p50 ms (100 deep) "
             "| nDCG@10 | MRR@10 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for engine, r in results.items():
        for mode in ("dense", "hybrid") if engine == "newsearch" else ("dense",):
            m = r[mode]
            label = f"{engine} ({mode})" if engine == "newsearch" else engine
            lines.append(f"| {label} | {r['process_seconds']:.1f} | {r['passages'] / r['process_seconds']:.1f} | "
                         f"{r['disk_bytes'] / 1e6:.1f} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} | {m['deep']['p50_ms']:.1f} | "
                         f"{m['scores']['ndcg@10']:.4f} | {m['scores']['mrr@10']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=1000, help="subset size (the headline-judged articles first)")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads of every engine")
    parser.add_argument("--out", type=Path, help="default bench/results/compare-<articles>[-first]-<cpu kind>.json")
    parser.add_argument("--engines", nargs="+", choices=ENGINES[1:], default=list(ENGINES[1:]),
                        help="competitors to run beside newsearch (default all)")
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS), help="dev sets (default both)")
    parser.add_argument("--first", action="store_true",
                        help="the corpus' first --articles articles instead of the judged ones plus a seeded sample")
    args = parser.parse_args()
    engines = ("newsearch", *args.engines)
    args.out = args.out or result_path(f"compare-{args.articles}{'-first' if args.first else ''}")
    if not COMPARE_PYTHON.exists():
        raise SystemExit(f"{COMPARE_PYTHON} is missing; create it with `make bench-compare`")
    env = {**os.environ, "NEWSEARCH_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "ANONYMIZED_TELEMETRY": "False"}
    env.pop("NEWSEARCH_INDEX_DIR", None)
    embedder = Embedder.from_settings(Settings.from_env(threads=args.threads))
    # NEWSEARCH_BACKEND=auto measures once per machine and settings: here, not inside the timed build process.
    _ = embedder.choice
    started = datetime.now(UTC)
    facts = machine(args.threads)
    data = prepare(args.articles, args.seed, embedder, args.sets, args.first)
    sets = {}
    for i, name in enumerate(args.sets):
        order = engines if i % 2 == 0 else engines[::-1]  # reversed for the second set: drift in load falls on all
        results = run_set(name, data["sets"][name], order, data["corpus"], str(embedder.model_path), env, args.threads)
        sets[name] = {"order": list(order), "engines": results, "ratios": ratios(results)}
    facts["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {
        "benchmark": "compare", "date": started.isoformat(timespec="seconds"), "commit": commit(), "machine": facts,
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "backend": os.environ.get("NEWSEARCH_BACKEND", "(unset: the project default)"),
        "backend_used": {"backend": embedder.backend, "precision": embedder.precision,
                         "query_backend": embedder.query_backend},
        "model": {"path": str(embedder.model_path), "name": embedder.name, "fingerprint": embedder.fingerprint},
        "subset": {"articles": data["articles"], "seed": args.seed,
                   "rule": "the corpus' first articles in file order" if args.first else
                   "every headlines-judged article, then a seeded random sample of the rest"},
        "sets": {name: {"fields": d["fields"], "passages": d["passages"], "distinct_texts": d["distinct_texts"],
                        "judged_queries": len(d["qrels"]), **sets[name]} for name, d in data["sets"].items()},
        "overall": overall(sets, engines),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    for name, d in data["sets"].items():
        print(table(name, d, sets[name]["engines"]), end="\n\n")
    print(json.dumps({"ratios": {n: s["ratios"] for n, s in sets.items()}, "overall": report["overall"]}, indent=2))


if __name__ == "__main__":
    main()
