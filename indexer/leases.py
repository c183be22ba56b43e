"""Who is using an index folder: the one-writer lock of build/update/gc, and leases on versions
held by servers and jobs, so `gc` never removes a version that something still reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from indexer.background import BackgroundLoop
from indexer.errors import IndexBusy
from indexer.files import write_whole

log = logging.getLogger(__name__)

LOCK_FILE = ".writer.lock"
LEASES = "leases"


@contextlib.contextmanager
def writer_lock(index_dir: Path, what: str) -> Iterator[None]:
    """Hold the index folder's writer lock for one build, update or gc; IndexBusy if another has it.

    An flock is released by the kernel when its process dies, so a killed job never leaves the
    folder locked; the file's text only says who held it last, for the error message.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise IndexBusy(f"{index_dir} is being written by {holder}; wait for it to finish "
                            f"(a killed job releases the lock at once) and run the {what} again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()} on {socket.gethostname()})".encode(), 0)
        yield
    finally:
        os.close(fd)


def writer_busy(index_dir: Path) -> bool:
    """True while a build, update or gc holds the writer lock."""
    try:
        with writer_lock(index_dir, "check"):
            return False
    except IndexBusy:
        return True


@dataclass(frozen=True)
class Lease:
    """One holder's claim on a version: a file whose mtime is its heartbeat."""

    path: Path
    version: str
    pid: int
    host: str
    heartbeat: float

    def alive(self, ttl: float, now: float | None = None) -> bool:
        """Fresh heartbeat and, on this host, a living process: a crashed holder's lease expires."""
        now = time.time() if now is None else now
        if now - self.heartbeat > ttl:
            return False
        if self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True


def take_lease(index_dir: Path, version: str) -> Path:
    """Register this process as a reader of `version`; renew with `renew_lease`, end with `drop_lease`."""
    folder = index_dir / LEASES
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{version}.{os.getpid()}.{secrets.token_hex(3)}.lease"
    write_whole(path, json.dumps({"version": version, "pid": os.getpid(), "host": socket.gethostname()}))
    return path


def renew_lease(path: Path) -> None:
    """Heartbeat: touch the lease (recreating it if gc removed it as expired)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        version = path.name.split(".", 1)[0]
        write_whole(path, json.dumps({"version": version, "pid": os.getpid(), "host": socket.gethostname()}))


def drop_lease(path: Path) -> None:
    """End a lease."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def read_leases(index_dir: Path) -> list[Lease]:
    """Every lease file under the index folder (alive or not)."""
    folder = index_dir / LEASES
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.lease")):
        try:
            info = json.loads(path.read_text())
            out.append(Lease(path, info["version"], int(info["pid"]), info["host"], path.stat().st_mtime))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # vanished or half-written: its owner is gone or will rewrite it
    return out


def leased_versions(index_dir: Path, ttl: float) -> set[str]:
    """Versions some living process holds a lease on."""
    return {lease.version for lease in read_leases(index_dir) if lease.alive(ttl)}


@contextlib.contextmanager
def leased(index_dir: Path, version: str, ttl: float) -> Iterator[None]:
    """Hold a lease on `version` for the duration of a block, renewed by a heartbeat thread."""
    path = take_lease(index_dir, version)

    def beat() -> float:
        renew_lease(path)
        return ttl / 4

    heartbeat = BackgroundLoop(f"lease-{version}", beat, log, f"cannot renew the lease on {version}",
                               first_wait=ttl / 4, retry=ttl / 4)
    heartbeat.start()
    try:
        yield
    finally:
        heartbeat.stop()
        drop_lease(path)
