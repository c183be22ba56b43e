"""Reaching Milvus: a client for NEWSEARCH_MILVUS_URI (a server or cluster over gRPC, or Milvus Lite in this
process for a local .db path), Milvus errors as StorageError, and reading a whole collection.
"""

from __future__ import annotations

import fcntl
import logging
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


def _held_elsewhere(path: Path) -> bool:
    """Whether another process holds the Milvus Lite lock of `path`; asked only after opening it failed, so the
    moment's shared lock cannot get in the way of a process starting Milvus Lite."""
    try:
        with open(path / "LOCK") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fh, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


@contextmanager
def _quiet_lite() -> Iterator[None]:
    """Milvus Lite logs a traceback when it cannot open a file, ahead of the one error line that says why."""
    lite = logging.getLogger("milvus_lite.server_manager")  # a record's own logger decides, not its parents
    disabled, lite.disabled = lite.disabled, True
    try:
        yield
    finally:
        lite.disabled = disabled


def connect(uri: str, token: str = "", create: bool = True) -> MilvusClient:
    """A client of the Milvus at `uri`; Milvus Lite (started in this process, once per path) for a local path,
    which is created unless `create` is off (then a missing file is IndexNotFound)."""
    if not is_remote(uri):
        path = lite_path(uri)
        if not create and not path.exists():
            raise IndexNotFound(f"no index published: there is no Milvus Lite database at {path} (build one with "
                                "NEWSEARCH_STORE=milvus news-index build, or check NEWSEARCH_MILVUS_URI)")
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = str(path)
    try:
        with _quiet_lite():
            return MilvusClient(uri=uri, token=token, grpc_options=GRPC_OPTIONS)
    except MilvusException as exc:
        if not is_remote(uri) and _held_elsewhere(Path(uri)):
            raise StorageError(f"{uri} is open in another process (a server or an update): Milvus Lite lets one "
                               "process open a file at a time; run `milvus-lite server` and point "
                               "NEWSEARCH_MILVUS_URI at it (docs/milvus.md)") from None
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
