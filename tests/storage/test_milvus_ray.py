"""`--engine ray` on a Milvus server: Ray actors, not the driver, insert the passage rows of a build and of an
update (only the changed ones), and the version equals one written by the local engine."""

from __future__ import annotations

import os

import numpy as np
import pytest

from indexer.pipeline import build
from indexer.settings import Settings
from indexer.storage import open_store
from indexer.update import update
from tests.helpers import wikinews, write_jsonl

pytest.importorskip("ray", reason="the ray extra is installed by `make install`")


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
def test_ray_actors_write_the_passage_rows(tmp_path, embedder, milvus_server):  # noqa: F811
    first = wikinews(6, start=120)
    write_jsonl(tmp_path / "a" / "news.jsonl", first)
    common = {"store": "milvus", "milvus_uri": milvus_server, "checkpoint_passages": 16}
    by_ray = Settings(index_dir=tmp_path / "ray", milvus_collection="by_ray", engine="ray", **common)
    by_local = Settings(index_dir=tmp_path / "local", milvus_collection="by_local", **common)
    for settings in (by_ray, by_local):
        build([tmp_path / "a"], settings, embedder, progress=False)
    manifest = same_version(by_ray, by_local)
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
