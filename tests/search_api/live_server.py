"""Real HTTP servers for client, page and notebook tests: uvicorn in a thread, or `news-search serve` as a process;
raw sockets to them, for what an HTTP client library would tidy away."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from indexer.embed import Embedder
from search_api.searcher import Searcher
from search_api.server.app import SearcherHolder, create_app
from search_api.server.guard import server_options
from search_api.settings import ServerSettings
from tests.helpers import free_port


def connect(base: str, timeout: float = 15) -> socket.socket:
    """A raw connection to the server at `base` (http://host:port)."""
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket's timeout)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@contextmanager
def serve_index(index_dir: Path, settings: ServerSettings, embedder: Embedder) -> Iterator[str]:
    """Serve `index_dir` over HTTP on a free 127.0.0.1 port from this process; yields the base URL."""
    holder = SearcherHolder(settings, embedder)
    holder.swap(Searcher.open(index_dir, settings, embedder))  # its own searcher: the app closes it on exit
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, holder), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False, **server_options(settings)))
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
