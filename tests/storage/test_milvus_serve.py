"""A real `news-search serve` on Milvus (Milvus Lite run as a gRPC server, as a cluster would be reached) under a
bounded search load while `news-index update` publishes new versions through the serving alias."""

from __future__ import annotations

import pytest

from indexer.gc import collect
from indexer.pipeline import build
from indexer.settings import Settings
from indexer.storage import open_store
from indexer.update import update
from tests.helpers import SearchLoad, serve_process, wikinews, write_jsonl


@pytest.mark.slow
def test_server_follows_the_milvus_alias_under_load_without_a_failed_request(tmp_path, embedder, milvus_server):
    settings = Settings(index_dir=tmp_path / "idx", store="milvus", milvus_uri=milvus_server)
    write_jsonl(tmp_path / "day1" / "news.jsonl", wikinews(6))
    build([tmp_path / "day1"], settings, embedder, progress=False)
    store = open_store(settings)
    v0 = store.current()
    with serve_process(settings.index_dir, reload_interval="1", store="milvus", milvus_uri=milvus_server) as base:
        with SearchLoad(base, threads=2, max_requests=400, max_seconds=300) as load:
            load.wait_for(v0)
            versions = [v0]
            for day, start in (("day2", 60), ("day3", 80)):
                write_jsonl(tmp_path / day / "news.jsonl", wikinews(2, start=start))
                versions.append(update([tmp_path / day], settings, embedder, progress=False).version)
                assert store.current() == versions[-1]
                load.wait_for(versions[-1])
        assert load.errors == [] and all(status == 200 for rs in load.results.values() for status, _ in rs)
        assert all(seq == versions for seq in load.versions_per_thread()), load.versions_per_thread()
    assert store.versions() == versions
    collect(settings, keep=0, grace_seconds=0)  # the server is gone: only the published version stays
    assert store.versions() == versions[-1:]
