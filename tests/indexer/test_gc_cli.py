"""`news-index gc` and `update` from the shell: what is removed, what is kept, one-line errors."""

from __future__ import annotations

import fcntl
import os

import numpy as np

from indexer.cache import EmbeddingCache, cache_key
from indexer.leases import LOCK_FILE
from indexer.storage.folders import current_version, list_versions, publish
from tests.helpers import news_index, tiny_version


def test_gc_keeps_published_and_newest_and_removes_the_rest(tmp_path):
    index = tmp_path / "idx"
    names = [tiny_version(index, seed) for seed in range(1, 5)]
    publish(index, names[1])  # an older version published (a rollback): never removed
    (index / "v20260101T000000000000Z-0bad").mkdir()
    (index / "CURRENT.dead.tmp").write_text("x")
    dry = news_index("gc", "--keep", "1", "--grace", "0", "--dry-run", "--index-dir", index)
    assert dry.returncode == 0, dry.stderr
    assert f"would remove 2 old version(s): {names[0]}, {names[2]}" in dry.stdout
    assert "would remove 1 unfinished build folder(s) and 1 temporary file(s)" in dry.stdout
    assert list_versions(index) == names
    real = news_index("gc", "--keep", "1", "--grace", "0", "--index-dir", index)
    assert real.returncode == 0 and list_versions(index) == [names[1], names[3]]
    assert not (index / "v20260101T000000000000Z-0bad").exists() and not (index / "CURRENT.dead.tmp").exists()
    assert current_version(index) == names[1]

    jobs = index / "jobs"
    jobs.mkdir()
    old_job = [jobs / "0123456789ab.json", jobs / "0123456789ab.log", jobs / "0123456789ab.json.0a1b2c3d.tmp"]
    live_job = [jobs / "cdef01234567.json", jobs / "cdef01234567.log"]
    for path in old_job + live_job:
        path.write_text("{}")
    for path in old_job + live_job[:1]:  # the live job's log is still being written
        os.utime(path, (1_000_000, 1_000_000))
    swept = news_index("gc", "--grace", "60", "--index-dir", index)
    assert "removed 3 file(s) of finished re-index jobs" in swept.stdout, swept.stderr
    assert sorted(jobs.iterdir()) == live_job

    cache = EmbeddingCache(index / "cache" / "embeddings.sqlite", 8)
    texts = [f"Body number {i}." for i in range(3)] + ["a passage no version holds any more"]
    cache.put([cache_key("m", t) for t in texts], np.eye(4, 8, dtype=np.float32))
    cache.close()
    pruned = news_index("gc", "--prune-cache", "--index-dir", index)
    assert "removed 1 cached embedding(s)" in pruned.stdout, pruned.stderr
    cache = EmbeddingCache(index / "cache" / "embeddings.sqlite", 8)
    assert len(cache) == 3 and cache_key("m", texts[0]) in cache.get_many([cache_key("m", texts[0])])
    cache.close()


def test_gc_and_update_errors_are_one_line(tmp_path):
    r = news_index("gc", "--index-dir", tmp_path / "none")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "does not exist" in r.stderr
    r = news_index("update", tmp_path, "--index-dir", tmp_path / "none")
    assert r.returncode == 1 and "no index published" in r.stderr and "news-index build" in r.stderr
    index = tmp_path / "idx"
    publish(index, tiny_version(index, 1))
    r = news_index("gc", "--keep", "-1", "--index-dir", index)
    assert r.returncode == 1 and "--keep must be 0 or more" in r.stderr
    fd = os.open(index / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running build holds it
        r = news_index("gc", "--index-dir", index)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and "is being written" in r.stderr
    finally:
        os.close(fd)
    assert news_index("gc", "--index-dir", index).returncode == 0


def test_gc_before_anything_is_published_clears_what_a_killed_first_build_left(tmp_path):
    index = tmp_path / "idx"
    complete = tiny_version(index, 1)  # written, but killed before publishing
    dead, live = index / "v20260101T000000000000Z-dead", index / "v20260102T000000000000Z-11fe"
    leases = index / "leases"
    leases.mkdir()
    dead_tmp, live_tmp = leases / f"{dead.name}.123.abc.tmp", leases / f"{live.name}.456.def.tmp"  # from take_lease
    for folder in (dead, live):
        folder.mkdir()
        (folder / "meta.sqlite.tmp").write_text("half written")
    for path in (dead_tmp, live_tmp):
        path.write_text("{}")
    for path in (dead, dead_tmp):
        os.utime(path, (1_000_000, 1_000_000))
    cache = EmbeddingCache(index / "cache" / "embeddings.sqlite", 8)
    cache.put([cache_key("m", "an embedding the next build resumes from")], np.ones((1, 8), dtype=np.float32))
    cache.close()

    r = news_index("gc", "--keep", "0", "--prune-cache", "--grace", "3600", "--index-dir", index)
    assert r.returncode == 0, r.stderr
    # No CURRENT says which complete version is wanted, so even --keep 0 keeps them all.
    assert r.stdout.splitlines()[0] == f"nothing is published yet; kept 1 version(s): {complete}"
    assert "removed 0 old version(s)" in r.stdout
    assert "removed 1 unfinished build folder(s) and 1 temporary file(s)" in r.stdout
    assert "cache not pruned" in r.stdout
    assert (index / complete).exists() and not dead.exists() and not dead_tmp.exists()
    assert live.exists() and live_tmp.exists()  # younger than the grace period: perhaps still being written
    cache = EmbeddingCache(index / "cache" / "embeddings.sqlite", 8)
    assert len(cache) == 1
    cache.close()


def test_gc_sweeps_lease_temp_files_of_a_killed_server_beside_a_published_index(tmp_path):
    index = tmp_path / "idx"
    publish(index, tiny_version(index, 1))
    (index / "leases").mkdir()
    stale = index / "leases" / "v20260101T000000000000Z-beef.999.abc.tmp"
    stale.write_text('{"version": "v1"')
    os.utime(stale, (1_000_000, 1_000_000))
    r = news_index("gc", "--index-dir", index)
    assert r.returncode == 0 and "removed 0 unfinished build folder(s) and 1 temporary file(s)" in r.stdout
    assert not stale.exists()


def test_gc_removes_nothing_when_current_names_a_version_that_is_not_there(tmp_path):
    index = tmp_path / "idx"
    names = [tiny_version(index, seed) for seed in range(1, 4)]
    publish(index, names[0])
    for typo in (names[0][:-1] + "l", names[0] + " extra"):  # a hand-edited CURRENT: a typo, trailing words
        (index / "CURRENT").write_text(typo + "\n")
        r = news_index("gc", "--keep", "0", "--index-dir", index)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert list_versions(index) == names  # not one of them looked old


def test_gc_only_sweeps_folders_it_made(tmp_path):
    project = tmp_path / "project"  # gc pointed at a folder that is not an index
    for folder in ("var/index", "vendor/lib", "v2", "jobs", "leases"):
        (project / folder).mkdir(parents=True)
        (project / folder / "file").write_text("keep")
    (project / "jobs" / "deploy.yml").write_text("keep")
    (project / "leases" / "notes.tmp").write_text("keep")
    for path in ("var", "vendor", "v2", "jobs/deploy.yml", "jobs/file", "leases/notes.tmp"):
        os.utime(project / path, (1_000_000, 1_000_000))
    r = news_index("gc", "--grace", "0", "--index-dir", project)
    assert r.returncode == 0 and "unfinished" not in r.stdout, r.stdout + r.stderr
    assert all((project / folder / "file").exists() for folder in ("var/index", "vendor/lib", "v2", "jobs", "leases"))
    assert (project / "jobs" / "deploy.yml").exists() and (project / "leases" / "notes.tmp").exists()
    r = news_index("gc", "--index-dir", "")  # the working directory, unasked
    assert r.returncode == 2 and "--index-dir: must not be empty (give . for the working directory)" in r.stderr
