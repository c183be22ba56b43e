"""Zero-downtime swaps against a real `news-search serve` process, the admin API, and version leases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from indexer.gc import collect
from indexer.leases import read_leases
from indexer.pipeline import build
from indexer.storage.folders import current_version, list_versions
from indexer.update import update
from search_api.holder import SearcherHolder
from search_api.searcher import SearchRequest
from search_api.server.app import create_app
from search_api.settings import ServerSettings
from tests.helpers import SearchLoad, serve_process, served_v0_with_v1_published, wikinews, write_jsonl

KEY = "test-admin-key"


@pytest.mark.slow
def test_server_swaps_versions_under_load_without_a_failed_request(tmp_path, embedder):
    settings = ServerSettings(index_dir=tmp_path / "idx")
    write_jsonl(tmp_path / "day1" / "news.jsonl", wikinews(6))
    build([tmp_path / "day1"], settings, embedder, progress=False)
    v0 = current_version(settings.index_dir)
    with serve_process(settings.index_dir, reload_interval="1", admin_key=KEY) as base:
        with SearchLoad(base) as load:
            load.wait_for(v0)
            write_jsonl(tmp_path / "day2" / "news.jsonl", wikinews(2, start=60))
            v1 = update([tmp_path / "day2"], settings, embedder, progress=False).version
            load.wait_for(v1)  # the server noticed CURRENT by polling
            admin = {"X-Admin-Key": KEY}
            assert httpx.post(f"{base}/admin/reload", timeout=30).status_code == 401
            assert httpx.post(f"{base}/admin/reload", headers={"X-Admin-Key": "nope"}, timeout=30).status_code == 403
            assert httpx.post(f"{base}/admin/reload", headers=admin, timeout=30).json() == {
                "previous": v1, "current": v1, "changed": False}
            write_jsonl(tmp_path / "day3" / "news.jsonl", wikinews(1, start=80))
            job = httpx.post(f"{base}/admin/reindex", json={"paths": [str(tmp_path / "day3")]}, headers=admin,
                             timeout=30)
            assert job.status_code == 202, job.text
            busy = httpx.post(f"{base}/admin/reindex", json={"paths": [str(tmp_path / "day3")]}, headers=admin,
                              timeout=30)
            assert busy.status_code == 409 and job.json()["id"] in busy.json()["detail"]
            missing = httpx.post(f"{base}/admin/reindex", json={"paths": ["/no/such/dir"]}, headers=admin, timeout=30)
            assert missing.status_code == 422 and missing.json()["field"] == "paths"
            state = wait_for_job(base, job.json()["id"])
            assert state["state"] == "succeeded", state
            assert state["result"]["added"] == 1 and state["result"]["kept"] == 8 and state["progress"]["stage"] == "done"
            v2 = state["result"]["version"]
            load.wait_for(v2, timeout=60)
            for path in (settings.index_dir / "jobs").iterdir():  # as `news-index gc` does once they are old
                path.unlink()
            assert wait_for_job(base, job.json()["id"]) == state  # the server still knows how it ended
        assert load.errors == [] and all(status == 200 for rs in load.results.values() for status, _ in rs)
        assert all(seq == [v0, v1, v2] for seq in load.versions_per_thread()), load.versions_per_thread()
        assert httpx.get(f"{base}/admin/jobs/unknown", headers=admin, timeout=30).status_code == 404


def wait_for_job(base: str, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = httpx.get(f"{base}/admin/jobs/{job_id}", headers={"X-Admin-Key": KEY}, timeout=30).json()
        if state["state"] != "running":
            return state
        time.sleep(0.5)
    pytest.fail(f"job {job_id} still running after {timeout} s")


def test_admin_routes_are_404_without_a_configured_key(searcher, corpus_settings):
    holder = SearcherHolder(corpus_settings, searcher.embedder)
    holder.swap(searcher)
    with TestClient(create_app(corpus_settings.replace(reload_interval=0.0), holder)) as client:
        r = client.post("/admin/reload", headers={"X-Admin-Key": "anything"})
        assert r.status_code == 404 and "NEWSEARCH_ADMIN_KEY" in r.json()["detail"]
        assert client.get("/admin/jobs/x").status_code == 404


@pytest.mark.slow
def test_gc_keeps_versions_that_a_holder_or_living_process_uses(tmp_path, embedder):
    settings = ServerSettings(index_dir=tmp_path / "idx", reload_interval=0.0)
    holder, v0, v1 = served_v0_with_v1_published(tmp_path, settings, embedder)
    report = collect(settings, keep=0)
    assert report.in_use == [v0] and list_versions(settings.index_dir) == [v0, v1]
    with holder.use() as searcher:  # a request in flight on v0 while the holder swaps to v1
        assert holder.reload()["changed"] and holder.current.name == v1
        assert searcher.search(SearchRequest(q="gas explosion", k=2)).index_version == v0
        assert collect(settings, keep=0).in_use == [v0]
    assert collect(settings, keep=0).removed == [v0] and list_versions(settings.index_dir) == [v1]
    holder.close()

    # A process that takes a lease and dies: its lease expires with it.
    write_jsonl(tmp_path / "c" / "news.jsonl", wikinews(1, start=41))
    v2 = update([tmp_path / "c"], settings, embedder, progress=False).version
    code = (f"from pathlib import Path; from indexer.leases import take_lease; "
            f"take_lease(Path({str(settings.index_dir)!r}), {v1!r}); import time; print('ok', flush=True); time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ok"
    assert collect(settings, keep=0).in_use == [v1]
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    report = collect(settings, keep=0)
    assert report.removed == [v1] and report.expired_leases == 1 and list_versions(settings.index_dir) == [v2]
    assert read_leases(settings.index_dir) == []


def test_watcher_survives_unexpected_errors_and_leases_before_opening(tmp_path, embedder, monkeypatch):
    from search_api import holder as holder_module

    settings = ServerSettings(index_dir=tmp_path / "idx", reload_interval=0.1, lease_seconds=0.8)
    holder, v0, v1 = served_v0_with_v1_published(tmp_path, settings, embedder)

    real_open, leased_at_open = holder_module.Searcher.open, []

    def failing_open(*args, **kwargs):
        raise RuntimeError("disk hiccup")

    def recording_open(index_dir, settings, embedder, version=None):
        leased_at_open.append({lease.version for lease in read_leases(settings.index_dir)})
        return real_open(index_dir, settings, embedder, version=version)

    monkeypatch.setattr(holder_module.Searcher, "open", failing_open)
    holder.start_watching()
    try:
        deadline = time.monotonic() + 10
        while holder.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.last_error == "RuntimeError: disk hiccup" and holder.current.name == v0
        time.sleep(1.0)  # longer than a lease lives without its heartbeat
        assert holder._watcher.running
        assert collect(settings, keep=0).in_use == [v0]  # still renewed: gc keeps the served version
        monkeypatch.setattr(holder_module.Searcher, "open", recording_open)
        while holder.current.name != v1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.current.name == v1 and holder.last_error is None
        assert v1 in leased_at_open[0]  # the new version was leased before it was opened
    finally:
        holder.close()
