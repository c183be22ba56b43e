"""Real HTTP servers for client, page and notebook tests: uvicorn in a thread, or `news-search serve` as a process."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from indexer.embed import Embedder
from indexer.settings import Settings
from search_api.app import SearcherHolder, create_app
from search_api.searcher import Searcher
from tests.conftest import free_port


@contextmanager
def serve_index(index_dir: Path, settings: Settings, embedder: Embedder) -> Iterator[str]:
    """Serve `index_dir` over HTTP on a free 127.0.0.1 port from this process; yields the base URL."""
    holder = SearcherHolder(settings, embedder)
    holder.swap(Searcher.open(index_dir, settings, embedder))  # its own searcher: the app closes it on exit
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, holder), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the in-process uvicorn server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def serve_process(index_dir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`news-search serve` as a child process on a free 127.0.0.1 port; yields the base URL once healthy."""
    port = free_port()
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would block the server's access log
    proc = subprocess.Popen(
        [sys.executable, "-m", "search_api.cli", "serve", "--index-dir", str(index_dir), "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"news-search serve exited: {log.read()[-3000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("news-search serve did not become ready within 120 s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
