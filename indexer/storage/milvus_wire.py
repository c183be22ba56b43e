"""Reaching Milvus: a client for NEWSEARCH_MILVUS_URI (a server or cluster over gRPC, or Milvus Lite in this
process for a local .db path), Milvus errors as StorageError, and reading a whole collection.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pymilvus import MilvusClient, MilvusException

from indexer.errors import ConfigError, IndexNotFound, StorageError

REMOTE = ("http://", "https://", "tcp://", "unix:")
PAGE = 4_096  # rows per page when reading a whole collection
# pymilvus pings an idle connection every 10 s; gRPC servers with default settings, Milvus Lite's among them, allow
# one ping in 5 minutes and close the connection after a few more ("too_many_pings"). Ping less often than that.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 320_000}


def is_remote(uri: str) -> bool:
    """True for a Milvus server's address, False for a Milvus Lite file."""
    return uri.startswith(REMOTE)


def lite_path(uri: str) -> Path:
    """The Milvus Lite data path of a local URI (pymilvus runs Lite for paths ending in .db)."""
    path = Path(uri).expanduser()
    if path.suffix != ".db":
        raise ConfigError(f"NEWSEARCH_MILVUS_URI={uri!r} is neither http(s)://host:port nor a Milvus Lite path "
                          "ending in .db (for example var/index/milvus.db)")
    return path.resolve()


_OPENED: set[Path] = set()  # Milvus Lite paths this process opened: their lock is ours


def _refuse_if_locked(path: Path) -> None:
    """StorageError when another process holds the Milvus Lite lock of `path` (a server beside an update): Milvus
    Lite would log tracebacks, then fail with a message that does not say so."""
    lock = path / "LOCK"
    if path in _OPENED or not lock.is_file():
        return
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageError(f"{path} is open in another process (a server or an update): Milvus Lite lets one "
                               "process open a file at a time; run `milvus-lite server` and point "
                               "NEWSEARCH_MILVUS_URI at it (docs/milvus.md)") from None
        fcntl.flock(fh, fcntl.LOCK_UN)


def connect(uri: str, token: str = "", create: bool = True) -> MilvusClient:
    """A client of the Milvus at `uri`; Milvus Lite (started in this process, once per path) for a local path,
    which is created unless `create` is off (then a missing file is IndexNotFound)."""
    if not is_remote(uri):
        path = lite_path(uri)
        if not create and not path.exists():
            raise IndexNotFound(f"no index published: there is no Milvus Lite database at {path} (build one with "
                                "NEWSEARCH_STORE=milvus news-index build, or check NEWSEARCH_MILVUS_URI)")
        _refuse_if_locked(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _OPENED.add(path)
        uri = str(path)
    try:
        return MilvusClient(uri=uri, token=token, grpc_options=GRPC_OPTIONS)
    except MilvusException as exc:
        raise StorageError(f"cannot reach Milvus at {uri}: {exc.message}; check NEWSEARCH_MILVUS_URI "
                           "(and NEWSEARCH_MILVUS_TOKEN for a cluster)") from None


@contextmanager
def calls(what: str) -> Iterator[None]:
    """Milvus errors inside as StorageError naming `what` (a collection or an alias)."""
    try:
        yield
    except MilvusException as exc:
        raise StorageError(f"Milvus failed on {what}: {exc.message}; check that Milvus is up "
                           "(NEWSEARCH_MILVUS_URI) and the version exists (news-index versions)") from None


def fetch_all(client: MilvusClient, collection: str, fields: list[str], expr: str = "") -> list[dict[str, Any]]:
    """Every row of a collection matching `expr`, with these fields (a query iterator: Milvus caps one query's
    rows)."""
    rows: list[dict[str, Any]] = []
    with calls(collection):
        pages = client.query_iterator(collection, batch_size=PAGE, filter=expr, output_fields=fields)
        try:
            while page := pages.next():
                rows.extend(page)
        finally:
            pages.close()
    return rows
