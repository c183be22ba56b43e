"""A running server whose index is damaged under it (issue 15, defect 3): 503 with a message, not ready,
counted in /metrics, and serving again once a readable version is published."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from indexer.pipeline import build
from indexer.storage.folders import current_version
from search_api.server.app import SearcherHolder, create_app
from search_api.settings import ServerSettings
from tests.helpers import CORPUS, samples


@pytest.fixture()
def index(tmp_path, corpus_index, embedder):
    """A copy of the corpus index this test may damage (built from the embedding cache: nothing re-embedded)."""
    shutil.copytree(corpus_index, tmp_path / "idx", symlinks=True)
    return ServerSettings(index_dir=tmp_path / "idx", reload_interval=0)


def damage(path):
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # keep SQLite's 100-byte header, overwrite every page after it
        fh.seek(100)
        fh.write(b"\xa5" * (size - 100))


def test_a_damaged_database_is_a_503_not_ready_and_counted_until_a_good_version_is_published(index, embedder):
    holder = SearcherHolder(index, embedder)
    holder.load()
    with TestClient(create_app(index, holder), raise_server_exceptions=False) as client:
        assert client.get("/search", params={"q": "gas explosion"}).status_code == 200
        name = current_version(index.index_dir)
        damage(index.index_dir / name / "meta.sqlite")
        for route, params in (("/search", {"q": "oil prices", "mode": "keyword"}), ("/stats", None),
                              ("/articles/wikinews-2019-001", None)):
            r = client.get(route, params=params)
            assert r.status_code == 503, (route, r.text)
            assert f"the served index {name} cannot be read" in r.json()["detail"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "cannot be read" in ready.json()["detail"]
        metrics = samples(client.get("/metrics").text)
        assert metrics[("newsearch_storage_errors_total", ())] >= 3
        assert metrics[("newsearch_index_readable", ())] == 0
        build([CORPUS], index, embedder, progress=False)  # a new, readable version is published
        holder.reload()  # what the watcher does each NEWSEARCH_RELOAD_INTERVAL
        assert client.get("/readyz").status_code == 200
        assert client.get("/search", params={"q": "oil prices", "mode": "keyword"}).status_code == 200
        assert samples(client.get("/metrics").text)[("newsearch_index_readable", ())] == 1


@pytest.mark.slow
def test_a_damaged_new_version_falls_back_to_the_older_one_still_open(tmp_path, embedder):
    from tests.helpers import served_v0_with_v1_published

    settings = ServerSettings(index_dir=tmp_path / "idx", reload_interval=0)
    holder, v0, v1 = served_v0_with_v1_published(tmp_path, settings, embedder)
    with holder.use() as in_flight:  # a request still running on v0 keeps it open through the swap
        holder.reload()
        assert holder.current.name == v1 and in_flight.name == v0
        damage(settings.index_dir / v1 / "meta.sqlite")
        holder.mark_damaged(v1, "database disk image is malformed")
        assert holder.current.name == v0 and holder.fault is None  # served again, ready
    with holder.use() as searcher:
        assert searcher.stats()["index_version"] == v0
    holder.close()
