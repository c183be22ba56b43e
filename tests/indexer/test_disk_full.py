"""A full disk (issue 15, defect 6): a failed build or update gives its space back, says why in one line,
and leaves the published version intact; gc removes a killed writer's folder at once. Runs on a small
tmpfs, so only as root (skipped otherwise, saying so)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from indexer.errors import StorageError
from indexer.gc import collect
from indexer.pipeline import build
from indexer.settings import Settings
from indexer.storage.faiss_vectors import FaissStore
from indexer.storage.folders import current_version, list_versions
from indexer.storage.local import LocalVersion
from tests.helpers import CORPUS, fill, small_disk


def used(folder) -> int:
    stat = os.statvfs(folder)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


@pytest.fixture()
def disk(tmp_path, corpus_index):
    """A 4 MB disk holding a published corpus index; its embedding cache is elsewhere (a copy)."""
    cache = tmp_path / "cache"
    shutil.copytree(corpus_index / "cache", cache)
    with small_disk(tmp_path / "disk", "4m") as folder:
        yield Settings(index_dir=folder / "idx", cache_dir=str(cache))


@pytest.mark.slow
@pytest.mark.parametrize("leave", [150_000, 1_080_000])  # the database does not fit; it does but the vectors not
def test_a_build_on_a_full_disk_fails_and_gives_its_space_back(disk, embedder, leave):
    build([CORPUS], disk, embedder, progress=False)
    published = current_version(disk.index_dir)
    fill(disk.index_dir.parent, leave)
    before = used(disk.index_dir)
    with pytest.raises((StorageError, sqlite3.Error, OSError)) as failure:
        build([CORPUS], disk, embedder, progress=False)
    if isinstance(failure.value, StorageError):
        assert "No space left on device" in str(failure.value) and "\n" not in str(failure.value)
    assert list_versions(disk.index_dir) == [published] and current_version(disk.index_dir) == published
    assert [p.name for p in disk.index_dir.iterdir() if p.name.startswith("v")] == [published]
    assert used(disk.index_dir) <= before  # nothing of the failed build holds space
    LocalVersion.open(disk.index_dir).close()  # the published version is intact (checksums verified)


def test_faiss_on_a_full_disk_is_one_line(tmp_path):
    store = FaissStore.build(np.arange(2000, dtype=np.int64), np.ones((2000, 64), dtype=np.float32), 64, 10_000)
    with small_disk(tmp_path / "disk", "64k") as folder, pytest.raises(StorageError) as err:
        store.save(folder / "v.faiss")
    assert str(err.value).startswith(f"{folder / 'v.faiss'}: cannot write the vector index (No space left on device)")
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_the_cli_says_a_full_disk_in_one_line(disk, embedder):
    build([CORPUS], disk, embedder, progress=False)
    fill(disk.index_dir.parent, 1_080_000)
    run = subprocess.run([sys.executable, "-m", "indexer.cli", "build", str(CORPUS), "--index-dir", str(disk.index_dir),
                          "--quiet"], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "NEWSEARCH_CACHE_DIR": disk.cache_dir})
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("news-index: error: ") and "No space left on device" in run.stderr


def test_gc_removes_a_killed_writers_folder_at_once_but_not_an_unknown_young_one(tmp_path):
    index = tmp_path / "idx"
    dead, unknown = index / "v20260101T000000000000Z-dead", index / "v20260101T000000000000Z-c0de"
    for folder in (dead, unknown):
        folder.mkdir(parents=True)
        (folder / "meta.sqlite.tmp").write_text("half written")
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (dead / "writer.json").write_text(json.dumps({"pid": int(child.stdout), "host": os.uname().nodename}))
    report = collect(Settings(index_dir=index), keep=0)
    assert report.abandoned == [dead.name] and not dead.exists() and unknown.exists()
