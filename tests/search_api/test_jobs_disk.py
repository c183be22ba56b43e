"""Re-index jobs against an index folder that cannot be written (issue 15, defects 5 and 6): a 503 with a
message instead of a 500, and a job that fails on a full disk keeps its reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from fastapi.testclient import TestClient

from search_api.server.app import SearcherHolder, create_app
from search_api.server.jobs import JobRunner
from tests.helpers import CORPUS, fill, small_disk

KEY = {"X-Admin-Key": "k" * 32}


def test_reindex_on_a_read_only_index_folder_is_a_503_with_a_message(tmp_path, corpus_index, corpus_settings,
                                                                     embedder):
    with small_disk(tmp_path / "disk", "8m") as disk:
        shutil.copytree(corpus_index, disk / "idx", symlinks=True)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        settings = corpus_settings.replace(index_dir=disk / "idx", admin_key=KEY["X-Admin-Key"], reload_interval=0.0)
        holder = SearcherHolder(settings, embedder)
        holder.load()  # a read-only index is still served
        with TestClient(create_app(settings, holder), raise_server_exceptions=False) as client:
            assert client.get("/search", params={"q": "gas explosion"}).status_code == 200
            r = client.post("/admin/reindex", json={"paths": [str(CORPUS)]}, headers=KEY)
    assert r.status_code == 503, r.text
    assert r.json()["detail"].startswith(f"cannot start a re-index job: {disk / 'idx' / 'jobs'}: Read-only file system")
    assert "make " in r.json()["detail"]


@pytest.mark.slow
def test_a_job_failing_on_a_full_disk_keeps_its_reason(tmp_path, corpus_index, corpus_settings):
    with small_disk(tmp_path / "disk", "8m") as disk:
        shutil.copytree(corpus_index, disk / "idx", symlinks=True)
        settings = corpus_settings.replace(index_dir=disk / "idx")
        runner = JobRunner(settings)
        (disk / "idx" / "jobs").mkdir()
        fill(disk, 0)
        job = runner.start([str(CORPUS)])
        deadline = time.monotonic() + 300
        while job.state == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert os.path.getsize(job.log_path) == 0  # the disk took nothing of the log
    assert job.state == "failed"
    assert job.error.startswith("news-index: error: ") and "No space left on device" in job.error, job.error
