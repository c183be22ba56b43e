"""Time a fresh clone's first search: git clone, `make serve` (install, index corpus/, serve), poll until
GET /search answers; writes bench/results/fresh-clone-first-search-<cpu kind>[-<variant>].json.

pip's download cache (~/.cache/pip) is kept, so this is faster than a machine that never installed the
packages; the model export folder is a new one (NEWSEARCH_EXPORT_DIR), as on a fresh machine.
Usage: python -m bench.fresh_clone [--repo .] [--branch HEAD] [--port 8765]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import machine_facts, result_path, write_result

QUERY = "Syrian army retakes Palmyra with Russian air support"


def first_answer(url: str, process: subprocess.Popen, limit: float) -> float | None:
    """Seconds from now until `url` answers 200, or None if the process ends or `limit` passes first."""
    started = time.monotonic()
    while time.monotonic() - started < limit and process.poll() is None:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return None


def main() -> None:
    """Clone, serve, time; print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", default=".", help="repository to clone")
    parser.add_argument("--branch", default="HEAD", help="commit or branch to check out")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--limit", type=float, default=900, help="give up after this many seconds")
    parser.add_argument("--variant", default="", help="how this run differs, for the result file's name")
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", args.repo, "rev-parse", args.branch], capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="fresh-clone-") as tmp:
        root = Path(tmp)
        (root / "shared").symlink_to(Path(args.repo).resolve().parent / "shared")
        env = {**os.environ, "NEWSEARCH_EXPORT_DIR": str(root / "export"), "PYTHONPATH": ""}
        env.pop("VIRTUAL_ENV", None)
        load_before = os.getloadavg()
        started, wall = time.monotonic(), time.time()
        subprocess.run(["git", "clone", "--quiet", str(Path(args.repo).resolve()), str(root / "newsearch")], check=True)
        subprocess.run(["git", "-C", str(root / "newsearch"), "checkout", "--quiet", commit], check=True)
        cloned = time.monotonic() - started
        log = (root / "make.log").open("w")
        process = subprocess.Popen(["make", "serve", f"PORT={args.port}"], cwd=root / "newsearch", env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            waited = first_answer(f"http://127.0.0.1:{args.port}/search?q={QUERY}&k=3", process, args.limit)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
        total = None if waited is None else cloned + waited
        load_after = os.getloadavg()
        used = resource.getrusage(resource.RUSAGE_CHILDREN)  # make, pip, news-index, the server: all waited for
        clone = root / "newsearch"
        phases = {name: round(path.stat().st_mtime - wall, 1) if path.exists() else None for name, path in
                  (("installed", clone / ".venv" / ".installed-serve"), ("indexed", clone / "var" / "index" / "CURRENT"))}
        size = subprocess.run(["du", "-sm", str(clone / ".venv")], capture_output=True, text=True).stdout.split()[0]
        if total is None:
            print((root / "make.log").read_text()[-3000:])
    result = {"what": "fresh clone to first answered search (make serve)", "commit": commit,
              "seconds_to_first_search": total, "seconds_clone": cloned, "seconds_since_start_when": phases,
              "cpu_seconds_of_make_serve": round(used.ru_utime + used.ru_stime, 1),
              "load_average_1min_before_after": [load_before[0], load_after[0]],
              "venv_mb": int(size), "pip_cache": "warm (~/.cache/pip kept)", "machine": machine_facts()}
    write_result(result_path("fresh-clone-first-search", args.variant, result["machine"]), result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
