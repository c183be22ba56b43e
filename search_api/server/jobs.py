"""Background re-index jobs of the server: each runs `news-index update` in its own process (so a crash or the
model's threads never touch the serving process) and reports progress through the status file the job rewrites
(indexer/jobs.py).
"""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from indexer.errors import BadQuery, IndexBusy, StorageError
from indexer.jobs import JOBS, read_status, update_command
from search_api.settings import ServerSettings


@dataclass
class Job:
    """One re-index job as the admin API reports it."""

    id: str
    paths: list[str]
    delete_missing: bool
    state: str = "running"  # running, succeeded, failed
    created: float = field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None
    status_path: Path | None = None
    log_path: Path | None = None
    final_status: dict[str, Any] | None = None  # kept in memory: gc may remove the files of a finished job
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))  # last lines of its output

    def view(self) -> dict[str, Any]:
        """What GET /admin/jobs/{id} returns."""
        status = self.final_status or (read_status(self.status_path) if self.status_path else {})
        return {"id": self.id, "kind": "update", "state": self.state, "paths": self.paths,
                "delete_missing": self.delete_missing, "created": self.created, "finished": self.finished,
                "progress": {k: status.get(k) for k in ("stage", "done", "total")},
                "result": status.get("result"), "error": self.error}


def tee_output(proc: subprocess.Popen, log: BinaryIO, tail: deque[str]) -> None:
    """Copy a job's output to its log file while keeping its last lines in `tail`; a log the disk refuses
    is dropped (the job's reason for failing stays in `tail`)."""
    with log:
        for line in proc.stdout:
            tail.append(line.decode("utf-8", "replace").rstrip("\n"))
            if not log.closed:
                try:
                    log.write(line)
                except OSError:
                    log.close()  # unbuffered: nothing left to flush, so closing cannot fail too


class JobRunner:
    """Runs one update job at a time and keeps the record of each."""

    def __init__(self, settings: ServerSettings, on_done: Callable[[Job], None] | None = None):
        self.settings = settings
        self.on_done = on_done
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, paths: Sequence[str], delete_missing: bool = False) -> Job:
        """Start an update of `paths` (default: NEWSEARCH_REINDEX_PATHS); IndexBusy while one runs."""
        paths = list(paths) or list(self.settings.reindex_paths)
        if not paths:
            raise BadQuery("paths: name the corpus files or folders to read (or set NEWSEARCH_REINDEX_PATHS)",
                           "paths")
        if any(not p.strip() for p in paths):  # Path("") is the server's working folder: never what was meant
            raise BadQuery("paths: an empty path names no corpus; give files or folders", "paths")
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            raise BadQuery(f"paths: {missing[0]} does not exist on the server", "paths")
        with self._lock:
            running = [j for j in self.jobs.values() if j.state == "running"]
            if running:
                raise IndexBusy(f"re-index job {running[0].id} is still running; "
                                f"follow it at /admin/jobs/{running[0].id} and start another when it is done")
            job = Job(secrets.token_hex(6), paths, delete_missing)
            folder = self.settings.index_dir / JOBS
            job.status_path, job.log_path = folder / f"{job.id}.json", folder / f"{job.id}.log"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                log = open(job.log_path, "wb", buffering=0)  # the tee thread owns and closes it
            except OSError as exc:
                raise StorageError(f"cannot start a re-index job: {exc.filename or folder}: {exc.strerror or exc}; "
                                   f"make {self.settings.index_dir} writable by the server (and free disk space)"
                                   ) from None
            proc = subprocess.Popen(update_command(self.settings, paths, delete_missing, job.status_path),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.jobs[job.id] = job
        tee = threading.Thread(target=tee_output, args=(proc, log, job.tail), name=f"job-{job.id}-log", daemon=True)
        tee.start()
        threading.Thread(target=self._wait, args=(job, proc, tee), name=f"job-{job.id}", daemon=True).start()
        return job

    def _wait(self, job: Job, proc: subprocess.Popen, tee: threading.Thread) -> None:
        code = proc.wait()
        tee.join()
        job.final_status = read_status(job.status_path)
        job.finished = time.time()
        if code == 0:
            job.state = "succeeded"
        else:
            job.state = "failed"
            # From memory, not the log file: on a full disk the log may hold nothing.
            lines = [ln for ln in job.tail if ln.strip()]
            job.error = lines[-1] if lines else f"news-index update exited with code {code}"
        if self.on_done:
            self.on_done(job)

    def get(self, job_id: str) -> Job | None:
        """A job by id."""
        return self.jobs.get(job_id)

    def running(self) -> bool:
        """True while a job runs."""
        return any(j.state == "running" for j in self.jobs.values())
