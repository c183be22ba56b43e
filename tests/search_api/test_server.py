"""A real `news-search serve` process on a free 127.0.0.1 port, queried over HTTP."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.helpers import free_port, serve_process
from tests.search_api.live_server import answer, connect


@pytest.fixture(scope="module")
def server(corpus_index):
    with serve_process(corpus_index) as base:
        yield base


@pytest.mark.slow
def test_real_server_answers_seed_and_wikinews_queries(server):
    r = httpx.get(f"{server}/search", params={"q": "Syrian army retakes Palmyra with Russian air support"}, timeout=30)
    assert r.status_code == 200
    assert r.json()["hits"][0]["title"] == "Russia-backed Syrian army carry on anti-ISIS push"
    r = httpx.post(f"{server}/search", json={"q": "apartment block in a Ural city collapsed after a gas explosion"},
                   timeout=30)
    assert r.json()["hits"][0]["article_id"] == "wikinews-2019-001"
    assert httpx.get(f"{server}/search", params={"q": ""}, timeout=30).status_code == 422
    assert httpx.get(f"{server}/docs", timeout=30).status_code == 200


@pytest.mark.slow
def test_head_is_answered_as_get_without_a_body(server):
    for path in ("/healthz", "/search?q=oil", "/"):
        with connect(server, timeout=30) as sock:
            sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            reply = answer(sock)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and body == b"", (path, reply[:300])
        assert int(dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])[b"content-length"]) > 0


@pytest.mark.slow
def test_serve_without_an_index_fails_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "search_api.cli", "serve", "--index-dir", str(tmp_path / "none"),
                           "--port", str(free_port())], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("news-search: error: no index published") and "news-index build" in lines[-1]
