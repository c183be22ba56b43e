"""The files of re-index jobs: a job's status file, rewritten atomically as `news-index update` progresses, the
command line of one job, and which jobs' files are stale for gc. The server runs the jobs (search_api/server/jobs.py).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from indexer.files import write_whole
from indexer.settings import Settings

JOBS = "jobs"
# A job's files: <12 hex>.json and .log (search_api/server/jobs.py names them), and a killed write's
# <name>.<8 hex>.tmp (indexer/files.py); gc touches no other file there.
JOB_FILE = re.compile(r"[0-9a-f]{12}\.(json|log)(\.[0-9a-f]{8}\.tmp)?")


class StatusFile:
    """A job's progress as JSON, replaced whole on each write so a reader never sees half of it."""

    def __init__(self, path: Path):
        self.path = path
        self.state: dict[str, Any] = {"state": "running", "stage": "starting", "done": 0, "total": 0}
        self.write()

    def write(self) -> None:
        """Publish the current state."""
        write_whole(self.path, json.dumps({**self.state, "updated": time.time()}, default=str))

    def progress(self, stage: str, done: int, total: int) -> None:
        """Record the stage and how far it got (used as the pipeline's on_progress)."""
        self.state.update(stage=stage, done=done, total=total)
        self.write()

    def finish(self, report: Any) -> None:
        """Record the update's outcome."""
        self.state.update(state="succeeded", stage="done", result={
            "version": report.version, "base": report.base, "published": report.published, **report.counts()})
        self.write()


def stale_job_files(index_dir: Path, grace_seconds: float) -> list[Path]:
    """Status and log files of jobs that nothing has written for the grace period (finished or dead).

    A running job rewrites its status on every batch and its log as it goes, so a job is only
    collected when both have been quiet longer than the grace period.
    """
    folder = index_dir / JOBS
    if not folder.is_dir():
        return []
    by_job: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        if path.is_file() and JOB_FILE.fullmatch(path.name):
            by_job.setdefault(path.name.split(".", 1)[0], []).append(path)
    now = time.time()
    return [path for files in by_job.values()
            if all(now - modified(f, now) > grace_seconds for f in files) for path in files]


def modified(path: Path, default: float) -> float:
    """A file's mtime, or `default` if it vanished meanwhile (a writer replacing it): then it is fresh."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return default


def read_status(path: Path) -> dict[str, Any]:
    """A job's last published status ({} before its first write)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def update_command(settings: Settings, paths: Sequence[str], delete_missing: bool, status: Path) -> list[str]:
    """The news-index command line of one job, carrying the server's settings as flags.

    The paths come last, after `--`, so a path that looks like a flag is still read as a path.
    """
    cmd = [sys.executable, "-m", "indexer.cli", "update", "--index-dir", str(settings.index_dir),
           "--fields", settings.fields, "--chunk-tokens", str(settings.chunk_tokens),
           "--batch-size", str(settings.batch_size), "--engine", settings.engine, "--quiet",
           "--status-file", str(status)]
    cmd += ["--model", settings.model]
    if settings.ray_address:
        cmd += ["--ray-address", settings.ray_address]
    if delete_missing:
        cmd.append("--delete-missing")
    return [*cmd, "--", *paths]
