"""Crash safety and resume: a build or update killed with SIGKILL mid-embedding leaves the published
version untouched, and the re-run embeds only what the killed one had not checkpointed. A crash at each
file step of writing and publishing leaves a readable published version.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from indexer.gc import collect
from indexer.settings import Settings
from indexer.storage import folders
from indexer.storage.folders import current_version, list_versions, publish
from indexer.storage.local import LocalVersion
from tests.helpers import assert_same_index, short_reuters, tiny_version, write_jsonl

CHECKPOINT = 24  # passages per cache commit in the killed build, so it checkpoints several times


def cached_rows(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0  # created but no table yet


class CurrentWatcher:
    """Records every value CURRENT takes while a job runs."""

    def __init__(self, index_dir: Path):
        self.index_dir, self.seen, self._stop = index_dir, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            name = current_version(self.index_dir)
            if not self.seen or self.seen[-1] != name:
                self.seen.append(name)
            time.sleep(0.02)

    def __enter__(self) -> CurrentWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def news_index_job(command: str, corpus: Path, index_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "NEWSEARCH_CHECKPOINT_PASSAGES": str(CHECKPOINT)}
    return subprocess.Popen([sys.executable, "-m", "indexer.cli", command, str(corpus), "--index-dir", str(index_dir),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["build", "update"])
def test_job_killed_mid_embedding_keeps_published_version_and_resumes(command, tmp_path, embedder):
    from indexer.pipeline import build

    records = short_reuters(204)
    write_jsonl(tmp_path / "first" / "news.jsonl", records[:4])
    corpus = write_jsonl(tmp_path / "corpus" / "news.jsonl", records[4:])
    settings = Settings(index_dir=tmp_path / "idx")
    build([corpus.parent.parent / "first"], settings, embedder, progress=False)
    v0 = current_version(settings.index_dir)
    cache = settings.index_dir / "cache" / "embeddings.sqlite"
    before = cached_rows(cache)

    with CurrentWatcher(settings.index_dir) as watcher:
        proc = news_index_job(command, corpus.parent, settings.index_dir)
        deadline = time.monotonic() + 300
        while cached_rows(cache) < before + 2 * CHECKPOINT and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"the build ended before it could be killed: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        checkpointed = cached_rows(cache) - before
        version = LocalVersion.open(settings.index_dir)  # verifies every checksum
        assert version.name == v0 and list_versions(settings.index_dir) == [v0]
        version.close()
    assert watcher.seen == [v0]
    assert 2 * CHECKPOINT <= checkpointed

    with CurrentWatcher(settings.index_dir) as watcher:
        proc = news_index_job(command, corpus.parent, settings.index_dir)
        out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    embedded = int(re.search(r"\((\d+) embedded[,)]", out).group(1))
    assert watcher.seen == [v0, current_version(settings.index_dir)]

    clean = Settings(index_dir=tmp_path / "clean", cache_dir="none")
    fresh = build([corpus.parent], clean, embedder, progress=False)  # what a run without checkpoints embeds
    assert 0 < embedded <= fresh.embedded - checkpointed
    if command == "update":  # an update keeps the articles it was not given: compare with a build of both
        clean = Settings(index_dir=tmp_path / "clean-all", cache_dir="none")
        build([corpus.parent.parent / "first", corpus.parent], clean, embedder, progress=False)
    assert_same_index(settings.index_dir, clean.index_dir, settings, clean, embedder)


def test_a_crash_at_any_rename_leaves_a_readable_published_version(tmp_path, monkeypatch):
    real_replace = os.replace
    steps = 4  # meta.sqlite, vectors.faiss, manifest.json, CURRENT
    for crash_at in range(steps + 1):
        index_dir = tmp_path / f"idx{crash_at}"
        v0 = tiny_version(index_dir, 1)
        publish(index_dir, v0)
        calls = []

        def replace(src, dst, crash_at=crash_at, calls=calls):
            calls.append(dst)
            if len(calls) > crash_at:
                raise OSError("simulated power loss")
            real_replace(src, dst)

        monkeypatch.setattr(folders.os, "replace", replace)
        try:
            publish(index_dir, tiny_version(index_dir, 2))
        except OSError:
            pass
        finally:
            monkeypatch.setattr(folders.os, "replace", real_replace)
        published = current_version(index_dir)
        assert published == (v0 if crash_at < steps else list_versions(index_dir)[-1])
        LocalVersion.open(index_dir).close()  # complete and matching its checksums
        assert all((index_dir / v / "manifest.json").is_file() for v in list_versions(index_dir))
        collect(Settings(index_dir=index_dir), keep=0, grace_seconds=0)
        leftovers = [p.name for p in index_dir.rglob("*") if p.name.endswith(".tmp")]
        assert leftovers == [] and list_versions(index_dir) == [published]
