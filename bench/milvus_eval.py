"""Benchmark: dev-set nDCG@10 of the Milvus store against the local store on the full Reuters corpus.

Builds (once) the headlines index (body only) and the topics index (title + body) into Milvus Lite under --root,
scores both dev sets in dense, keyword and hybrid modes through the same Searcher code on the Milvus index and on
a local index (the base indexes of /work/main/var/bench, opened read-only through a folder of symlinks, or with
--build-local one built by this code, so that cleaning and chunking are the same as the Milvus index's), and
compares them per query on each half of bench/dev_split.json (paired sign-flip test, 95% bootstrap interval of
Milvus - local). Writes bench/results/milvus-eval-<cpu kind>[-<tag>].json. Run:
`NEWSEARCH_CACHE_DIR=/work/var-shared/cache .venv/bin/python -m bench.milvus_eval --root /work/var-shared/milvus2`
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.common import EVAL, REUTERS, SETS, SPLIT, commit, machine_facts, result_path, write_result
from indexer.embed import Embedder
from indexer.errors import IndexNotFound
from indexer.pipeline import build
from indexer.settings import Settings
from indexer.storage import open_store
from search_api.evaluation.harness import evaluate, load_qrels, load_queries, split_half
from search_api.evaluation.significance import paired
from search_api.searcher import Searcher

MODES = ("dense", "keyword", "hybrid")
METRIC = "ndcg@10"
LOCAL = Path("/work/main/var/bench")


def built_index(root: Path, fields: str, embedder: Embedder, store: str = "milvus") -> Settings:
    """Settings of the index of these fields in `store` under `root`, built first if it has no published version."""
    tag = "" if store == "milvus" else f"-{store}now"
    settings = Settings.from_env(index_dir=root.parent / f"{root.name}{tag}-{fields.replace('+', '-')}",
                                 fields=fields, store=store)
    store = open_store(settings)
    try:
        store.current()
    except IndexNotFound:
        started = time.perf_counter()
        build(sorted(REUTERS.glob("corpus-*.jsonl.gz")), settings, embedder, progress=True)
        (settings.index_dir / "build-seconds").write_text(f"{time.perf_counter() - started:.0f}\n")
    finally:
        if hasattr(store, "close"):  # a Milvus store holds a client (the local one opens nothing here)
            store.close()
    return settings


def local_view(source: Path, root: Path, fields: str) -> Path:
    """A folder naming the published version of a local index by symlink, so reading it never writes there."""
    view = root.parent / f"{root.name}-local-{fields.replace('+', '-')}"
    view.mkdir(parents=True, exist_ok=True)
    name = (source / "CURRENT").read_text().strip()
    if not (view / name).exists():
        (view / name).symlink_to(source / name)
    (view / "CURRENT").write_text(name + "\n")
    return view


def scores(settings: Settings, embedder: Embedder, set_name: str) -> dict:
    """evaluate() of one dev set (every query) on the published version of settings' store."""
    queries, qrels = load_queries(EVAL / f"{set_name}-queries.jsonl"), load_qrels(EVAL / f"{set_name}-qrels.tsv")
    searcher = Searcher(open_store(settings).open(), embedder, settings)
    try:
        return evaluate(searcher, queries, qrels, MODES)
    finally:
        searcher.close()


def reused(previous: dict) -> dict:
    """The local store's run of a previous result file, in the shape `scores` returns (nDCG@10 only)."""
    return {"index_version": previous["versions"]["local"], "articles": previous["articles"],
            "modes": {m: {"means": previous["means"]["local"][m],
                          "per_query": {q: {METRIC: v} for q, v in previous["per_query"]["local"][m].items()}}
                      for m in MODES}}


def compare(milvus: dict, local: dict, set_name: str) -> dict:
    """Milvus - local nDCG@10 per mode, on the whole set and on each half."""
    queries, qrels = load_queries(EVAL / f"{set_name}-queries.jsonl"), load_qrels(EVAL / f"{set_name}-qrels.tsv")
    halves = {"all": sorted(q for q in queries if q in qrels)}
    for half in ("tune", "check"):
        halves[half] = sorted(split_half(queries, qrels, SPLIT, set_name, half)[1])
    out: dict = {}
    for mode in MODES:
        m, lo = milvus["modes"][mode]["per_query"], local["modes"][mode]["per_query"]
        out[mode] = {}
        for half, ids in halves.items():
            test = paired([m[q][METRIC] for q in ids], [lo[q][METRIC] for q in ids])
            out[mode][half] = test.as_dict()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="prefix of the Milvus index folders")
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--reuse-local", type=Path, help="a previous result file: take the local store's scores "
                        "from it instead of running them again (same local indexes)")
    parser.add_argument("--tag", default="", help="suffix of the result file")
    parser.add_argument("--build-local", action="store_true", help="compare with local indexes built here by this "
                        "code (default: the base indexes under /work/main/var/bench, read through symlinks)")
    args = parser.parse_args()
    previous = json.loads(args.reuse_local.read_text()) if args.reuse_local else None
    embedder = Embedder.from_settings(Settings.from_env())
    result = {"benchmark": "milvus_eval", "commit": commit(), "machine": machine_facts(), "metric": METRIC,
              "sets": {}}
    for set_name in args.sets:
        fields = SETS[set_name]
        milvus_settings = built_index(args.root, fields, embedder)
        if args.build_local:  # with this code's cleaning and chunking, as the Milvus index
            local_settings = built_index(args.root, fields, embedder, "local")
        else:
            local_dir = local_view(LOCAL / f"eval-reuters-{fields.replace('+', '-')}", args.root, fields)
            local_settings = Settings.from_env(index_dir=local_dir, fields=fields, store="local")
        runs = {"milvus": scores(milvus_settings, embedder, set_name)}
        runs["local"] = (reused(previous["sets"][set_name]) if previous
                         else scores(local_settings, embedder, set_name))
        result["sets"][set_name] = {"fields": fields, "articles": runs["milvus"]["articles"],
                                    "versions": {k: v["index_version"] for k, v in runs.items()},
                                    "means": {k: {m: v["modes"][m]["means"] for m in MODES} for k, v in runs.items()},
                                    "paired": compare(runs["milvus"], runs["local"], set_name),
                                    "per_query": {k: {m: {q: s[METRIC] for q, s in v["modes"][m]["per_query"].items()}
                                                      for m in MODES} for k, v in runs.items()}}
        print(json.dumps(result["sets"][set_name]["paired"], indent=1))  # noqa: T201 (a CLI)
    write_result(result_path("milvus-eval", args.tag, result["machine"]), result, indent=1)


if __name__ == "__main__":
    main()
