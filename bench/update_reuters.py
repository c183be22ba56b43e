"""Benchmark: an incremental update of 1% of Reuters-21578 against a full build of the whole corpus.

Starts from a published full build of Reuters (by default a copy of var/bench/reuters-title-body, the
index and embedding cache `bench.build_reuters` leaves, or --base DIR), then updates it with the corpus
in which 1% of the articles changed: half corrected (a paragraph appended), half new (new ids, new
titles). Then (unless --no-verify) builds the same corpus from scratch with vectors from the same
embedding cache and checks that both indexes are identical. Writes bench/results/update-reuters-<cpu kind>.json;
the full-build time comes from this CPU's bench/results/build-reuters-title-body-<cpu kind>-torch.json (or
--full-build-json). Run:
`.venv/bin/python -m bench.update_reuters [--base DIR] [--full-build-json FILE]`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import REUTERS, ROOT, commit, machine_facts, result_path, write_result
from indexer.embed import Embedder
from indexer.pipeline import build
from indexer.settings import Settings
from indexer.storage.folders import current_version
from indexer.storage.local import LocalVersion
from indexer.update import update

CORRECTION = "Correction: this story was updated after {source} revised the figures given in paragraph one."
FOLLOW_UP = "Further details were released on the following day, the agency said."


def reuters_records() -> list[dict]:
    """Every Reuters record, in file order."""
    records = []
    for path in sorted(REUTERS.glob("corpus-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            records.extend(json.loads(line) for line in fh if line.strip())
    return records


def changed_corpus(records: list[dict], share: float) -> tuple[list[dict], int, int]:
    """The corpus with `share` of its articles touched: half corrected in place, half added anew."""
    step = round(1 / share)
    picked = list(range(0, len(records), step))
    corrected, added = picked[0::2], picked[1::2]
    out = [dict(r) for r in records]
    for i in corrected:
        out[i]["body"] += "\n\n" + CORRECTION.format(source=out[i].get("source") or "the source")
    for n, i in enumerate(added):
        new = dict(records[i], id=f"reuters-followup-{n}", title=f"{records[i]['title']} - FOLLOW-UP")
        new["body"] += "\n\n" + FOLLOW_UP
        out.append(new)
    return out, len(corrected), len(added)


def write_corpus(records: list[dict], folder: Path) -> Path:
    """One gzipped JSON-lines file under var/ (Reuters is never committed)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "reuters-updated.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    return path


def snapshot(index_dir: Path) -> dict:
    """The published version's records, keyword matches and vectors, for comparing two indexes."""
    version = LocalVersion.open(index_dir)
    try:
        conn = version.text.conn  # the local format itself: tables and FTS5 matches
        tables = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("articles", "passages")}
        fts = [conn.execute("SELECT rowid FROM passages_fts WHERE passages_fts MATCH ? ORDER BY bm25(passages_fts), rowid"
                            " LIMIT 100", (q,)).fetchall() for q in ("cocoa", "oil OR opec", "dividend")]
        vectors = version.vectors.get(np.array([r[0] for r in tables["passages"]], dtype=np.int64))
        return {"tables": tables, "fts": fts, "vectors": vectors, "counts": version.manifest["counts"]}
    finally:
        version.close()


def verify(corpus: Path, updated: Path, embedder: Embedder) -> dict:
    """Build the same corpus from scratch (vectors from the same cache) and compare with the update."""
    folder = updated.parent / "update-reuters-verify"
    if folder.exists():
        shutil.rmtree(folder)
    settings = Settings.from_env(index_dir=folder, fields="title+body", cache_dir=str(updated / "cache"))
    report = build([corpus], settings, embedder, progress=True)
    a, b = snapshot(updated), snapshot(folder)
    diff = np.abs(a["vectors"] - b["vectors"]).max(axis=1)
    same = {"tables": a["tables"] == b["tables"], "keyword_matches": a["fts"] == b["fts"],
            "counts": a["counts"] == b["counts"], "vectors_within_1e-5": bool(diff.max() <= 1e-5)}
    # A base built before repeated texts were embedded once holds slightly different vectors for
    # copies of one text; the update carries those over, a rebuild reads the cache's single one.
    return {"same_as_full_build": all(same.values()), "checks": same,
            "vectors_bit_identical": int((diff == 0).sum()), "vectors_differing": int((diff > 0).sum()),
            "max_abs_vector_difference": float(diff.max()),
            "warm_full_build_seconds": round(report.seconds, 1), "warm_full_build_embedded": report.embedded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", type=Path, default=ROOT / "var" / "bench" / "reuters-title-body",
                        help="a published full build of Reuters (title+body) to copy and update")
    parser.add_argument("--full-build-json", type=Path,
                        help="the cold build to compare with (default: this CPU's torch fp32 title+body build)")
    parser.add_argument("--share", type=float, default=0.01, help="fraction of the corpus touched")
    parser.add_argument("--no-verify", action="store_true", help="skip rebuilding the corpus to compare")
    args = parser.parse_args()
    work = ROOT / "var" / "bench" / "update-reuters"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(args.base, work, ignore=shutil.ignore_patterns("leases", "jobs", "*.tmp", ".writer.lock"))
    base_version = current_version(work)
    records, corrected, added = changed_corpus(reuters_records(), args.share)
    corpus = write_corpus(records, work.parent / "update-reuters-corpus")
    settings = Settings.from_env(index_dir=work, fields="title+body")
    embedder = Embedder.from_settings(settings)
    embedder.load()  # model load is not part of the update's time, as in build_reuters
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    report = update([corpus], settings, embedder, progress=True)
    seconds = time.perf_counter() - t0
    full_build = args.full_build_json or result_path("build-reuters-title-body", "torch")
    full = json.loads(full_build.read_text())
    result = {
        "benchmark": "update_reuters", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(), "machine": machine_facts(),
        "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2),
        "base_version": base_version, "new_version": report.version, "share": args.share,
        "corrected_articles": corrected, "added_articles": added, **report.counts(),
        "update_seconds": round(seconds, 1),
        "full_build_seconds": full["seconds"], "full_build_source": full_build.name,
        "full_build_date": full.get("date"), "ratio": round(seconds / full["seconds"], 4),
    }
    if not args.no_verify:
        result["verification"] = verify(corpus, work, embedder)
    write_result(result_path("update-reuters", facts=result["machine"]), result)
    print(report.summary())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
