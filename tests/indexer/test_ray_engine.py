"""The Ray Data engine on a local Ray instance (2 CPUs, no dashboard) builds and updates the same index
as the local engine: same passages and metadata, vectors within 1e-5, same search results."""

from __future__ import annotations

import pytest

from indexer.pipeline import build
from indexer.settings import Settings
from indexer.update import update
from tests.helpers import assert_same_index, wikinews, write_jsonl

pytest.importorskip("ray", reason="the ray extra is installed by `make install`")


@pytest.mark.slow
def test_ray_build_and_update_equal_the_local_engine(tmp_path, embedder):
    first = wikinews(8, start=120)
    write_jsonl(tmp_path / "a" / "news.jsonl", first)
    (tmp_path / "a" / "bad.jsonl").write_text('{"id": "x", "title": "no body"}\n')
    # Body-only, so the lead passage (chunking the engines must agree on) is exercised too; the
    # embedded texts (with or without titles) come from one function both engines share.
    ray_settings = Settings(index_dir=tmp_path / "ray", cache_dir="none", engine="ray", checkpoint_passages=16,
                            fields="body")
    local_settings = Settings(index_dir=tmp_path / "local", cache_dir="none", fields="body")
    by_ray = build([tmp_path / "a"], ray_settings, embedder, progress=False)
    by_local = build([tmp_path / "a"], local_settings, embedder, progress=False)
    assert (by_ray.articles, by_ray.passages, by_ray.embedded) == (by_local.articles, by_local.passages,
                                                                  by_local.embedded)
    assert [str(p) for p in by_ray.problems] == [str(p) for p in by_local.problems] != []
    assert by_local.passages > sum(1 for _ in first) * 2  # lead passages were made
    assert_same_index(ray_settings.index_dir, local_settings.index_dir, ray_settings, local_settings, embedder)

    changed = [dict(r) for r in first]
    changed[0]["body"] += "\n\nThis article was updated with new figures from the ministry."
    write_jsonl(tmp_path / "b" / "news.jsonl", changed + wikinews(1, start=140))
    ray_update = update([tmp_path / "b"], ray_settings, embedder, progress=False)
    local_update = update([tmp_path / "b"], local_settings, embedder, progress=False)
    assert ray_update.counts() == local_update.counts() and ray_update.added == 1 and ray_update.changed == 1
    assert_same_index(ray_settings.index_dir, local_settings.index_dir, ray_settings, local_settings, embedder)


def test_unreachable_cluster_is_one_line_and_exit_1(tmp_path):
    from tests.helpers import SEED, free_port, news_index

    address = f"127.0.0.1:{free_port()}"
    r = news_index("build", SEED, "--index-dir", tmp_path / "idx", "--engine", "ray", "--ray-address", address)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert f"no Ray cluster answers at {address}" in r.stderr and "--ray-address" in r.stderr
