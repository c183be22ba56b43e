"""Fixtures of the storage tests."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.errors import StorageError
from indexer.storage.milvus_wire import connect
from tests.helpers import Data, contract_data, free_port, stop_process


@pytest.fixture(scope="module")
def data() -> Data:
    """corpus/ as the storage contract's records (tests.helpers.contract_data), once per module."""
    return contract_data()


@pytest.fixture
def milvus_server(tmp_path: Path) -> Iterator[str]:
    """`milvus-lite server` on a free 127.0.0.1 port with its data in tmp_path; yields its URI, stops it after."""
    port = free_port()
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "milvus"),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                connect(uri).close()
                break
            except StorageError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"milvus-lite server did not start: {log.read()[-2000:]}")
                time.sleep(0.3)
        yield uri
    finally:
        stop_process(proc, log)
