"""Helpers shared by test modules: where the data is, corpora written to files, servers and CLIs run as
subprocesses, indexes compared. Fixtures live in conftest.py; test modules import helpers from here only."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from indexer.chunk import passage_id
from indexer.pipeline import build
from indexer.records import Article, Passage
from indexer.settings import Settings
from indexer.steps import read_corpus
from indexer.storage.base import Store
from indexer.storage.folders import current_version
from indexer.storage.local import LocalVersion, LocalWriter
from indexer.update import update
from search_api.holder import SearcherHolder
from search_api.searcher import Searcher, SearchRequest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared"
SEED = CORPUS / "000_36b842df3b26853b.txt"
REUTERS = SHARED / "data" / "reuters21578"
WIKINEWS = SHARED / "data" / "wikinews" / "wikinews_sample.jsonl"
# Queries whose keyword and dense results two indexes of Wikinews must agree on (assert_same_index).
INDEX_QUERIES = ["apartment building collapsed after a gas explosion", "election results", "wildfire evacuation",
                 "football match", "court ruling on appeal"]
LOAD_QUERIES = ["apartment building collapsed after a gas explosion", "election", "storm damage", "court ruling"]


def shared_data(path: Path) -> Path:
    """A file of ../shared/data, or a clear failure saying where it is expected."""
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests expect ../shared beside the checkout")
    return path


def wikinews(n: int | None = None, start: int = 0) -> list[dict]:
    """Records of the Wikinews sample: `n` of them from `start`, or all."""
    lines = shared_data(WIKINEWS).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[start : None if n is None else start + n]]


def short_reuters(n: int) -> list[dict]:
    """The first `n` Reuters articles of one or two passages: a build of a few hundred takes a minute."""
    out = []
    with gzip.open(shared_data(REUTERS / "corpus-00.jsonl.gz"), "rt", encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if 200 < len(record["body"]) < 700:
                out.append(record)
                if len(out) == n:
                    break
    return out


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """Write records as a .jsonl corpus file (its folder made); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def tiny_version(index_dir: Path, seed: int) -> str:
    """A small real version (records and FAISS) with random unit vectors, no model needed."""
    rng = np.random.default_rng(seed)
    articles = [Article(f"a{seed}-{i}", f"Title {i}", f"Body number {i}.", None, None, None, f"h{i}") for i in range(3)]
    passages = {a.id: [Passage(1000 * seed + i, a.id, 0, a.body, 0, len(a.body), 4)] for i, a in enumerate(articles)}
    vectors = rng.normal(size=(3, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.array([p[0].id for p in passages.values()], dtype=np.int64)
    with LocalWriter(index_dir, {"name": "m", "dim": 8, "max_seq_length": 8}, {"fields": "title+body"}) as writer:
        writer.add(articles, passages, ids, vectors, {})
        return writer.commit()


def dump(index_dir: Path) -> dict:
    """Everything a reader sees of the published version except its name and creation time."""
    version = LocalVersion.open(index_dir)
    conn = sqlite3.connect(version.path / "meta.sqlite")
    try:
        tables = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("articles", "passages")}
        fts = {q: conn.execute("SELECT rowid, bm25(passages_fts) FROM passages_fts WHERE passages_fts MATCH ?"
                               " ORDER BY 2, 1", (" OR ".join(q.split()),)).fetchall() for q in INDEX_QUERIES}
        ids = np.array([r[0] for r in tables["passages"]], dtype=np.int64)
        vectors = version.vectors.get(ids)
        manifest = {k: version.manifest[k] for k in ("counts", "model", "chunking")}
    finally:
        conn.close()
        version.close()
    return {"tables": tables, "fts": fts, "vectors": vectors, "manifest": manifest}


def search_results(index_dir: Path, settings: Settings, embedder) -> list:
    searcher = Searcher.open(index_dir, settings, embedder)
    try:
        return [[(h.article_id, h.passage_id) for h in searcher.search(SearchRequest(q=q, k=10, mode=mode)).hits]
                for q in INDEX_QUERIES for mode in ("hybrid", "dense", "keyword")]
    finally:
        searcher.close()


def assert_same_index(a: Path, b: Path, settings_a: Settings, settings_b: Settings, embedder) -> None:
    """Two index folders hold the same records, keyword scores, vectors and search results."""
    da, db = dump(a), dump(b)
    assert da["tables"] == db["tables"] and da["fts"] == db["fts"] and da["manifest"] == db["manifest"]
    np.testing.assert_allclose(da["vectors"], db["vectors"], atol=1e-5)
    assert search_results(a, settings_a, embedder) == search_results(b, settings_b, embedder)


def news_index(*args, env=None):
    """Run `news-index` with these arguments in a subprocess; its CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "indexer.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)


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


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus exposition text -> {(sample name, sorted labels): value}."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class WordOverlap:
    """A tiny lexical reranker: how many query words a text contains."""

    name = "word-overlap"

    def score(self, query, texts):
        words = set(query.lower().split())
        return [len(words & set(t.lower().split())) for t in texts]


class SearchLoad:
    """A few threads searching in a bounded loop; records (status, version) per thread."""

    def __init__(self, base: str, threads: int = 4, max_requests: int = 2000, max_seconds: float = 240):
        self.base, self.max_requests, self.deadline = base, max_requests, time.monotonic() + max_seconds
        self.results: dict[int, list[tuple[int, str | None]]] = defaultdict(list)
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as client:
            n = 0
            while not self.stop.is_set() and n < self.max_requests and time.monotonic() < self.deadline:
                try:
                    r = client.get("/search", params={"q": LOAD_QUERIES[n % len(LOAD_QUERIES)], "k": 5})
                    self.results[i].append((r.status_code, r.json().get("index_version")))
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                n += 1

    def __enter__(self) -> SearchLoad:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def wait_for(self, version: str, timeout: float = 120) -> None:
        """Until every thread has been answered by `version` at least once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(any(v == version for _, v in self.results[i]) for i in range(len(self.threads))):
                return
            time.sleep(0.1)
        pytest.fail(f"not every thread saw {version} within {timeout} s")

    def versions_per_thread(self) -> list[list[str]]:
        """Each thread's sequence of answering versions, with repeats collapsed."""
        out = []
        for i in range(len(self.threads)):
            seq: list[str] = []
            for _, v in self.results[i]:
                if not seq or seq[-1] != v:
                    seq.append(v)
            out.append(seq)
        return out


def served_v0_with_v1_published(tmp_path, settings, embedder) -> tuple[SearcherHolder, str, str]:
    """A holder serving a first version v0 after an update has published v1."""
    write_jsonl(tmp_path / "a" / "news.jsonl", wikinews(2))
    build([tmp_path / "a"], settings, embedder, progress=False)
    v0 = current_version(settings.index_dir)
    holder = SearcherHolder(settings, embedder)
    holder.load()
    write_jsonl(tmp_path / "b" / "news.jsonl", wikinews(1, start=40))
    return holder, v0, update([tmp_path / "b"], settings, embedder, progress=False).version


class FakeEmbedder:
    """A deterministic stand-in for the model in pure tests (fusion, grouping, highlighting): a text's vector is the
    normalised sum of one hash-seeded random vector per word, so equal texts get equal vectors in every process and
    texts sharing words point alike. Tokens are whitespace words. End-to-end tests use the real model."""

    name = "fake-hash-embedder"
    key = name
    kind = backend = query_backend = "fake"
    precision = openvino_precision = "fp32"
    fingerprint = "fake-0001"
    dim = 32
    max_tokens = 256
    export_dir = None
    on_query = None

    def count_tokens(self, text: str) -> int:
        """Whitespace-separated words in `text`."""
        return len(text.split())

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(word.casefold().encode(), digest_size=8).digest(), "little")
        return np.random.default_rng(seed).standard_normal(self.dim)

    def encode(self, texts) -> np.ndarray:  # noqa: ANN001 - a sequence of str
        """Normalised float32 vectors, shape (len(texts), dim)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.split() or [""]:
                out[row] += self._word(word)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def encode_queries(self, queries) -> np.ndarray:  # noqa: ANN001 - a sequence of str
        """As `encode`."""
        return self.encode(queries)

    def encode_query(self, query: str) -> np.ndarray:
        """One query vector, shape (dim,)."""
        return self.encode([query])[0]

    def load(self, queries: bool = False) -> None:
        """Nothing to load."""


# The storage contract's records (tests/storage): corpus/ split at paragraphs, bag-of-words vectors.
DIM = 64
WIRES = ("Wire A", "Wire B", "Wire C")
MODEL = {"name": "contract/bag-of-words", "dim": DIM, "max_seq_length": 256}
CHUNKING = {"fields": "title+body", "max_tokens": 200}


def embed(text: str) -> np.ndarray:
    """A unit vector of hashed lower-case words: texts sharing words are close."""
    vector = np.zeros(DIM, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        vector[int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little") % DIM] += 1.0
    norm = np.linalg.norm(vector)
    return vector / norm if norm else np.eye(DIM, dtype=np.float32)[0]


class Data:
    """corpus/ as records, passages and vectors."""

    def __init__(self, articles: list[Article]):
        self.articles = articles
        self.by_id = {a.id: a for a in articles}
        self.passages_of = {a.id: paragraphs(a) for a in articles}
        self.passages = [p for a in articles for p in self.passages_of[a.id]]
        self.ids = np.array([p.id for p in self.passages], dtype=np.int64)
        self.vectors = np.stack([embed(p.text) for p in self.passages])
        self.owner = {p.id: p.article_id for p in self.passages}
        # Every third article shares a group with the first of its source, so groups are stored and read back.
        first_of: dict[str | None, str] = {}
        self.groups = {a.id: first_of.setdefault(a.source, a.id) for i, a in enumerate(articles) if i % 3 == 0}
        # Stories of five articles in file order, named after their first; every seventh article is left out of
        # the mapping, so it must come back as a story of its own.
        self.stories = {a.id: articles[i - i % 5].id for i, a in enumerate(articles) if i % 7}


def paragraphs(article: Article) -> list[Passage]:
    """One passage per paragraph of the body, with its offsets."""
    spans = [m.span() for m in re.finditer(r"\S[^\n]*(?:\n(?!\n)[^\n]*)*", article.body)][:50]
    return [Passage(passage_id(article.id, i), article.id, i, article.body[s:e], s, e, len(article.body[s:e].split()))
            for i, (s, e) in enumerate(spans)]


def contract_data() -> Data:
    """The real articles of corpus/ (cleaned as builds clean them); corpus/ has one source, so the articles are
    spread over three wires for the source filters to have something to choose, and every tenth has none."""
    articles = [replace(a, source=None if i % 10 == 9 else WIRES[i % 3])
                for i, a in enumerate(read_corpus([CORPUS], progress=False).articles)]
    assert len(articles) > 40 and any(a.published for a in articles) and any(a.source is None for a in articles)
    return Data(articles)


def write(store: Store, data: Data, articles: list[Article] | None = None, batches: int = 2) -> str:
    """Write a version of `articles` (default all) in a few `add` calls; returns its name, unpublished."""
    articles = data.articles if articles is None else articles
    with store.begin(MODEL, CHUNKING) as writer:
        step = max(1, -(-len(articles) // batches))
        for start in range(0, len(articles), step):
            part = articles[start : start + step]
            passages = [p for a in part for p in data.passages_of[a.id]]
            ids = np.array([p.id for p in passages], dtype=np.int64)
            vectors = np.stack([embed(p.text) for p in passages]) if passages else np.zeros((0, DIM), np.float32)
            writer.add(part, {a.id: data.passages_of[a.id] for a in part}, ids, vectors,
                       {a.id: data.groups[a.id] for a in part if a.id in data.groups},
                       {a.id: data.stories[a.id] for a in part if a.id in data.stories})
        return writer.commit()
