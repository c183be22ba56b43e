"""Shared fixtures: the real packaged model and a real index of corpus/, each built once per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from indexer.embed import Embedder
from indexer.pipeline import build
from indexer.settings import Settings
from search_api.settings import ServerSettings

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared"
SEED = CORPUS / "000_36b842df3b26853b.txt"
REUTERS = SHARED / "data" / "reuters21578"
WIKINEWS = SHARED / "data" / "wikinews" / "wikinews_sample.jsonl"


def shared_data(path: Path) -> Path:
    """A file of ../shared/data, or a clear failure saying where it is expected."""
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests expect ../shared beside the checkout")
    return path


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2 from its PyPI package, loaded once."""
    # Pinned: NEWSEARCH_BACKEND=auto picks by timing this machine (tests/indexer/test_doctor.py tests that).
    emb = Embedder.from_settings(Settings(backend="openvino"))
    emb.load()  # now, not inside the first test that embeds
    return emb


@pytest.fixture(scope="session")
def count_tokens(embedder: Embedder):
    """The model's own word-piece counter."""
    return embedder.count_tokens


@pytest.fixture(scope="session")
def corpus_settings(tmp_path_factory) -> ServerSettings:
    """Settings pointing at a session-wide index folder (the server's, which the indexer takes too)."""
    return ServerSettings(index_dir=tmp_path_factory.mktemp("corpus-index"))


@pytest.fixture(scope="session")
def corpus_index(corpus_settings: Settings, embedder: Embedder) -> Path:
    """corpus/ built once with the real model and FAISS; returns the index dir."""
    build([CORPUS], corpus_settings, embedder, progress=False)
    return corpus_settings.index_dir


@pytest.fixture(scope="session")
def searcher(corpus_index: Path, corpus_settings: Settings, embedder: Embedder):
    """An in-process Searcher over the corpus index."""
    from search_api.searcher import Searcher

    s = Searcher.open(corpus_index, corpus_settings, embedder)
    yield s
    s.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen, log) -> None:  # noqa: ANN001 - a temporary file
    """Terminate a test's child process (killing it if it ignores that for 30 s) and close its log file."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@contextmanager
def serve_process(index_dir: Path, **env: str) -> Iterator[str]:
    """A real `news-search serve` on a free 127.0.0.1 port, ready; yields its base URL, stops it after.

    `env` sets NEWSEARCH_<NAME> variables. Output goes to a file, not a pipe: a full pipe would block
    the server's access log and hang it.
    """
    port = free_port()
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "search_api.cli", "serve", "--index-dir", str(index_dir), "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **{f"NEWSEARCH_{k.upper()}": v for k, v in env.items()}})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while not _ready(base):
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"news-search serve exited: {log.read()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("news-search serve did not become ready within 180 s")
            time.sleep(0.3)
        yield base
    finally:
        stop_process(proc, log)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `folder` (root only: otherwise the test is skipped, saying so); unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill the disk needs root")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Write a filler file on `folder`'s file system until about `leave` bytes are free."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(folder / "filler", "wb") as fh:
        fh.write(b"\0" * max(free - leave, 0))
