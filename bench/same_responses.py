"""Check: a speed change changes no response. Runs `Searcher.search` for every dev query in each mode with the
code of two trees (e.g. main unpacked with `git archive`, and this one) over the same index, each in its own
process, and compares the full responses (hits with their keys, scores, passages, highlights, relevance; totals),
everything but the time taken.
Run: `python -m bench.same_responses --index-dir DIR --label L --before /tmp/main-src [--after .]`; writes
bench/results/same-responses-<label>-<cpu kind>[-<variant>].json and exits 1 if any response differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT, commit, machine_facts, result_path, write_result
from bench.http_load import dev_queries

MODES = ("hybrid", "dense", "keyword")


def dump(index_dir: Path, modes: list[str], out: Path, queries: list[str], group: str = "article") -> None:
    """Write one JSON line per (mode, query): the response without its time (run with the tree under test)."""
    from indexer.settings import Settings
    from search_api.searcher import Searcher, SearchRequest

    settings = Settings.from_env(index_dir=index_dir)
    searcher = Searcher.open(index_dir, settings)
    with out.open("w") as fh:
        for mode in modes:
            for q in queries:
                response = dataclasses.asdict(searcher.search(SearchRequest(q=q, mode=mode, group=group)))
                response.pop("took_ms")
                fh.write(json.dumps({"mode": mode, "q": q, "response": response}, default=str) + "\n")
    searcher.close()


def run_tree(source: Path, index_dir: Path, modes: list[str], out: Path, queries: Path,
             group: str = "article") -> subprocess.Popen:
    """`dump` with the code of `source`, started (its packages first on the path; this script run by its path, as
    an older tree may not hold it)."""
    run = f"import runpy, sys; sys.argv[0] = {str(Path(__file__).resolve())!r}; runpy.run_path(sys.argv[0], run_name='__main__')"
    command = [sys.executable, "-c", run, "dump", "--index-dir", str(index_dir.resolve()), "--out", str(out),
               "--queries", str(queries), "--group", group, "--modes", *modes]
    env = {**os.environ, "PYTHONPATH": str(source.resolve())}
    return subprocess.Popen(command, env=env, cwd=source)


def difference(old: dict, new: dict) -> dict:
    """The first field two responses differ in (for a hit: its rank and field), with both values."""
    field = next((k for k in old if old[k] != new.get(k)), "")
    if field != "hits" or len(old["hits"]) != len(new["hits"]):
        return {"field": field, "before": old.get(field), "after": new.get(field)}
    rank, a, b = next((i, a, b) for i, (a, b) in enumerate(zip(old["hits"], new["hits"]), 1) if a != b)
    key = next(k for k in a if a[k] != b.get(k))
    return {"field": f"hits[{rank}].{key}", "before": a[key], "after": b.get(key)}


def compare(before: Path, after: Path) -> dict:
    """Responses per mode, and the (mode, query) pairs whose responses differ, with the first field that does."""
    counts: dict[str, int] = {}
    differ: list[dict] = []
    with before.open() as a, after.open() as b:
        for line_a, line_b in zip(a, b, strict=True):
            old, new = json.loads(line_a), json.loads(line_b)
            counts[old["mode"]] = counts.get(old["mode"], 0) + 1
            if old != new:
                differ.append({"mode": old["mode"], "q": old["q"], **difference(old["response"], new["response"])})
    return {"responses": counts, "differ": differ}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    d = sub.add_parser("dump", help="(internal) write one tree's responses")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--queries", type=Path, required=True, help="a JSON list of queries")
    for p in (parser, d):
        p.add_argument("--index-dir", type=Path, required=p is d)
        p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
        p.add_argument("--group", default="article", choices=("article", "story", "none"))
    parser.add_argument("--limit", type=int, default=0, help="only the first N dev queries (0: all)")
    parser.add_argument("--label", help="the index, in the result file's name (e.g. synth1m)")
    parser.add_argument("--variant", default="", help="what is compared, in the result file's name")
    parser.add_argument("--before", type=Path, help="the tree whose responses are the reference")
    parser.add_argument("--after", type=Path, default=ROOT, help="the tree under test (default: this one)")
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.index_dir, args.modes, args.out, json.loads(args.queries.read_text()), args.group)
        return
    if not (args.index_dir and args.label and args.before):
        parser.error("--index-dir, --label and --before are required")
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp) / "before.jsonl", Path(tmp) / "after.jsonl"
        queries = Path(tmp) / "queries.json"
        queries.write_text(json.dumps(dev_queries()[: args.limit or None]))
        # Both trees at once: each is one thread's work, and the machine has a core for each.
        runs = [run_tree(source, args.index_dir, args.modes, out, queries, args.group)
                for source, out in zip((args.before, args.after), files)]
        if any(run.wait() for run in runs):
            raise SystemExit("a tree's run failed (see above)")
        found = compare(*files)
    result = {"benchmark": "same_responses", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "commit": commit(), "machine": machine_facts(), "index_dir": str(args.index_dir),
              "before": str(args.before), "after": str(args.after), "group": args.group, **found}
    out = write_result(result_path(f"same-responses-{args.label}", args.variant), result)
    print(json.dumps({"responses": found["responses"], "differ": len(found["differ"])}))  # noqa: T201 - CLI
    print(f"wrote {out}")  # noqa: T201 - CLI
    if found["differ"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
