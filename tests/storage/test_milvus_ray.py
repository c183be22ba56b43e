"""`--engine ray` on a Milvus server: the Ray actors that embed the passages insert their rows (only the changed ones
in an update), the driver getting one vector sum per article; the version equals one written by the local engine,
and a failing actor fails the job with the published version unchanged."""

from __future__ import annotations

import os

import numpy as np
import pytest

from indexer.errors import StorageError
from indexer.pipeline import build
from indexer.ray_engine import LOCAL_OBJECT_STORE
from indexer.settings import Settings
from indexer.storage import open_store
from indexer.update import update
from tests.helpers import wikinews, write_jsonl

ray = pytest.importorskip("ray", reason="the ray extra is installed by `make install`")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module's jobs, which join it (each starting its own costs seconds, and on a
    loaded machine Ray's start-up can time out)."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE, logging_level="warning",
             log_to_driver=False)
    yield
    ray.shutdown()


def same_version(a: Settings, b: Settings) -> dict:
    """Assert both published versions hold the same articles, passages and vectors; the first one's manifest."""
    stores = [open_store(a), open_store(b)]
    try:
        x, y = (s.open() for s in stores)
        assert x.text.stored_articles() == y.text.stored_articles()
        assert x.text.passages_by_article() == y.text.passages_by_article()
        ids = x.vectors.ids()
        assert ids.tolist() == y.vectors.ids().tolist()
        np.testing.assert_allclose(x.vectors.get(ids), y.vectors.get(ids), atol=1e-5)
        return x.manifest
    finally:
        for s in stores:
            s.close()


@pytest.mark.slow
def test_ray_actors_write_the_passage_rows(tmp_path, embedder, milvus_server, local_ray):
    first = wikinews(6, start=120)
    write_jsonl(tmp_path / "a" / "news.jsonl", first)
    common = {"store": "milvus", "milvus_uri": milvus_server, "checkpoint_passages": 16}
    by_ray = Settings(index_dir=tmp_path / "ray", milvus_collection="by_ray", engine="ray", **common)
    by_local = Settings(index_dir=tmp_path / "local", milvus_collection="by_local", **common)
    on_ray, _ = (build([tmp_path / "a"], settings, embedder, progress=False) for settings in (by_ray, by_local))
    manifest = same_version(by_ray, by_local)
    # The vectors stayed on the workers: the driver got one sum per article (and a few numbers), not one per passage.
    assert on_ray.passages > 2 * on_ray.articles
    assert 0 < on_ray.received_bytes <= on_ray.articles * (embedder.dim * 4 + 100)
    writers = manifest["milvus"]["passage_writers"]
    assert writers and os.getpid() not in writers  # other processes: Ray's actors
    assert manifest["milvus"]["written"]["passages"] == manifest["counts"]["passages"]

    changed = [dict(r) for r in first]
    changed[2]["body"] += "\n\nThis article was updated with new figures from the ministry."
    write_jsonl(tmp_path / "b" / "news.jsonl", changed)
    for settings in (by_ray, by_local):
        update([tmp_path / "b"], settings, embedder, progress=False)
    manifest = same_version(by_ray, by_local)
    assert os.getpid() not in manifest["milvus"]["passage_writers"]
    assert 1 <= manifest["milvus"]["written"]["passages"] < manifest["counts"]["passages"] // 2
    assert manifest["milvus"]["written"]["articles"] == 1


@pytest.mark.slow
def test_a_failing_actor_fails_the_update_and_the_served_version_stays(tmp_path, embedder, milvus_server, local_ray):
    first = wikinews(3, start=120)
    write_jsonl(tmp_path / "a" / "news.jsonl", first)
    settings = Settings(index_dir=tmp_path / "ray", store="milvus", milvus_uri=milvus_server, milvus_collection="fails",
                        engine="ray", checkpoint_passages=4)
    built = build([tmp_path / "a"], settings, embedder, progress=False)
    store = open_store(settings)
    try:
        before = store.open()
        served = (before.text.stored_articles(), before.text.passages_by_article(), before.vectors.ids().tolist())
        before.close()
    finally:
        store.close()
    # Milvus refuses an article id longer than its 1,024-byte field: the actor inserting that passage row fails.
    bad = {**first[0], "id": "x" * 1_100, "body": first[0]["body"] + "\n\nA copy under a far too long id."}
    write_jsonl(tmp_path / "b" / "news.jsonl", [*first[1:], bad])
    with pytest.raises(StorageError) as failed:
        update([tmp_path / "b"], settings, embedder, progress=False)
    assert "article_id" in str(failed.value) and "\n" not in str(failed.value)
    store = open_store(settings)
    try:
        assert store.current() == built.version and store.versions() == [built.version]
        assert store.unfinished(0) == []
        after = store.open()
        assert (after.text.stored_articles(), after.text.passages_by_article(), after.vectors.ids().tolist()) == served
        after.close()
    finally:
        store.close()
