"""An update on the Milvus store writes only what changed (rows counted in Milvus), leaves the published version
whole until the alias moves, and a killed update leaves rows that no version sees and the next writer or gc removes.
Real Wikinews articles, the real model, Milvus Lite in this process."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.gc import collect
from indexer.pipeline import build
from indexer.settings import Settings
from indexer.storage import open_store
from indexer.storage.milvus_schema import ALIVE
from indexer.update import update
from tests.helpers import wikinews, write_jsonl


def rows(store, collection: str, expr: str = "") -> int:
    """Rows of a collection matching `expr` (every row, dead or alive, of every version)."""
    return store.client.query(collection, filter=expr, output_fields=["count(*)"])[0]["count(*)"]


@pytest.mark.slow
def test_an_update_of_one_article_writes_only_its_rows(tmp_path, embedder):
    old = wikinews(12)
    write_jsonl(tmp_path / "v1" / "news.jsonl", old)
    settings = Settings(index_dir=tmp_path / "idx", store="milvus")
    build([tmp_path / "v1"], settings, embedder, progress=False)
    store = open_store(settings)
    try:
        base = store.open()
        passages, articles = base.manifest["milvus"]["passages"], base.manifest["milvus"]["articles"]
        total = rows(store, passages)
        changed = old[4]["id"]
        before_body = base.text.article(changed)["body"]
        old_passages = len(base.text.article(changed)["passages"])

        new = [dict(r) for r in old]
        new[4]["body"] += "\n\nCorrection: the meeting took place on Tuesday, not on Monday."
        write_jsonl(tmp_path / "v2" / "news.jsonl", new)
        report = update([tmp_path / "v2"], settings, embedder, delete_missing=True, progress=False)
        assert (report.added, report.changed, report.deleted, report.unchanged) == (0, 1, 0, 11)

        manifest = store.manifest(report.version)
        seq = manifest["milvus"]["seq"]
        assert manifest["milvus"]["lineage"] == base.manifest["milvus"]["lineage"] and seq == 2
        after = store.open()
        new_passages = len(after.text.article(changed)["passages"])
        # Written: the changed article's row and those of its passages whose text or vector changed; retired:
        # the rows they replace. Nothing else, whatever the corpus size.
        written = manifest["milvus"]["written"]
        assert rows(store, articles, f"born == {seq}") == written["articles"] == 1
        assert 1 <= rows(store, passages, f"born == {seq}") == written["passages"] <= new_passages
        assert rows(store, articles, f"died == {seq}") + rows(store, passages, f"died == {seq}") \
            == written["retired"] == 1 + written["passages"] - (new_passages - old_passages)
        assert rows(store, passages) == total + written["passages"]

        # The base version, still open, sees what it saw; the new one sees the correction.
        assert base.text.article(changed)["body"] == before_body and base.text.count_passages() == total
        assert after.text.article(changed)["body"].endswith("not on Monday.")
        assert after.text.count_articles() == 12 and after.text.count_passages() == manifest["counts"]["passages"]
        # Equal to a full build of the same corpus, row for row.
        fresh = Settings(index_dir=tmp_path / "fresh", store="milvus")
        build([tmp_path / "v2"], fresh, embedder, progress=False)
        other = open_store(fresh)
        try:
            rebuilt = other.open()
            assert rebuilt.text.passages_by_article() == after.text.passages_by_article()
            assert rebuilt.text.stored_articles() == after.text.stored_articles()
            ids = rebuilt.vectors.ids()
            assert ids.tolist() == after.vectors.ids().tolist()
            np.testing.assert_allclose(rebuilt.vectors.get(ids), after.vectors.get(ids), atol=1e-6)
            query = after.vectors.get(ids[:1])[0]
            assert after.vectors.search(query, 10)[1].tolist() == rebuilt.vectors.search(query, 10)[1].tolist()
        finally:
            other.close()

        # gc keeps only the published version: the retired rows go, the live ones stay.
        collect(settings, keep=0, grace_seconds=0)
        assert store.versions() == [report.version] and rows(store, passages) == manifest["counts"]["passages"]
        assert rows(store, passages, f"died < {ALIVE}") == 0
    finally:
        store.close()


@pytest.mark.slow
def test_a_killed_update_leaves_the_published_version_whole_and_is_undone(tmp_path, embedder):
    write_jsonl(tmp_path / "v1" / "news.jsonl", wikinews(8))
    settings = Settings(index_dir=tmp_path / "idx", store="milvus")
    build([tmp_path / "v1"], settings, embedder, progress=False)
    store = open_store(settings)
    try:
        published = store.current()
        before = store.open()
        passages = before.manifest["milvus"]["passages"]
        total, kept = rows(store, passages), before.text.stored_articles()
        # A writer that replaces every article and dies before its commit (never aborted).
        version = before.text.articles(list(kept))
        writer = store.begin(before.manifest["model"], before.manifest["chunking"])
        by_article = before.text.passages_by_article()
        ids = np.array([p.id for ps in by_article.values() for p in ps], dtype=np.int64)
        vectors = -before.vectors.get(ids)  # other vectors: every passage row is rewritten
        writer.add(version, by_article, ids, vectors, {})
        writer._retire()  # noqa: SLF001 (what commit does first: the old rows now carry the writer's number)
        assert rows(store, passages) == 2 * total and rows(store, passages, f"died == {writer.seq}") == total
        assert store.current() == published and store.versions() == [published]
        assert before.text.stored_articles() == kept and before.text.count_passages() == total
        again = store.open()
        np.testing.assert_allclose(again.vectors.get(ids), -vectors, atol=1e-6)
        assert writer.name in store.unfinished(0)

        collect(settings, keep=0, grace_seconds=0)
        assert store.unfinished(0) == [] and rows(store, passages) == total
        assert rows(store, passages, f"died < {ALIVE}") == 0 and store.open().text.stored_articles() == kept
    finally:
        store.close()
