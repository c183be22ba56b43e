"""Incremental update against a full build of the same corpus, on real Wikinews articles with the real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import ConfigError, IndexNotFound
from indexer.pipeline import build
from indexer.settings import Settings
from indexer.storage.folders import current_version, list_versions
from indexer.storage.local import LocalVersion
from indexer.update import diff, update
from search_api.searcher import Searcher, SearchRequest
from tests.helpers import assert_same_index, dump, wikinews, write_jsonl


def built(tmp_path: Path, records: list[dict], embedder, **options) -> Settings:
    """The settings of an index of `records` (written to tmp_path/v1) built and published in tmp_path/idx."""
    write_jsonl(tmp_path / "v1" / "news.jsonl", records)
    settings = Settings(index_dir=tmp_path / "idx", **options)
    build([tmp_path / "v1"], settings, embedder, progress=False)
    return settings


def test_diff_classifies_by_id_hash_and_metadata():
    from indexer.records import Article

    def art(aid, h, meta=None):
        return Article(aid, "t", "b", None, None, None, h, meta or {})

    stored = {"a": ("h1", "{}"), "b": ("h2", "{}"), "c": ("h3", "{}"), "d": ("h4", '{"topics": ["x"]}')}
    changes = diff([art("a", "h1"), art("b", "h9"), art("d", "h4", {"topics": ["y"]}), art("e", "h5")], stored)
    assert (changes.added, changes.changed, changes.unchanged, changes.missing) == (["e"], ["b", "d"], ["a"], ["c"])


@pytest.mark.slow
def test_update_equals_a_full_build_of_the_same_corpus(tmp_path, embedder):
    old = wikinews(16)
    settings = built(tmp_path, old, embedder)
    base = current_version(settings.index_dir)

    new = [dict(r) for r in old[3:]]  # three withdrawn
    new[0]["body"] += "\n\nCorrection: an earlier version of this article misstated the number of injured."
    new[1]["body"] = new[1]["body"].replace(".", ";", 1)
    new[2]["date"] = "2019-12-31"  # metadata only: the same text, so no embedding needed
    new += wikinews(3, start=100)  # three new
    write_jsonl(tmp_path / "v2" / "news.jsonl", new)

    report = update([tmp_path / "v2"], settings, embedder, delete_missing=True, progress=False)
    assert (report.added, report.changed, report.deleted, report.unchanged) == (3, 3, 3, 10)
    assert report.published and report.base == base and current_version(settings.index_dir) == report.version
    assert 0 < report.embedded and report.carried + report.embedded <= report.passages  # repeated texts embed once
    assert "3 added, 3 changed, 3 deleted, 10 unchanged" in report.summary()
    reused = report.passages - report.embedded - report.carried  # every passage's vector is accounted for
    assert f"{report.carried} vectors carried over, {reused} from the embedding cache" in report.summary()

    fresh = Settings(index_dir=tmp_path / "fresh", cache_dir="none")  # cold: every passage embedded anew
    build([tmp_path / "v2"], fresh, embedder, progress=False)
    assert_same_index(settings.index_dir, fresh.index_dir, settings, fresh, embedder)
    assert len(list_versions(settings.index_dir)) == 2  # the base version is untouched beside the new one

    # Words every article holds: the keyword index still counts the changed articles' replaced copies.
    searcher = Searcher.open(settings.index_dir, settings, embedder)
    try:
        for mode in ("hybrid", "dense", "keyword"):
            assert len(searcher.search(SearchRequest(q="the a of", k=5, mode=mode)).hits) == 5
    finally:
        searcher.close()

    again = update([tmp_path / "v2"], settings, embedder, delete_missing=True, progress=False)
    assert not again.published and again.unchanged == 16 and again.embedded == 0
    assert current_version(settings.index_dir) == report.version


@pytest.mark.slow
def test_partial_corpus_only_adds_unless_delete_missing(tmp_path, embedder):
    write_jsonl(tmp_path / "day1" / "news.jsonl", wikinews(6))
    write_jsonl(tmp_path / "day2" / "news.jsonl", wikinews(2, start=50))
    settings = Settings(index_dir=tmp_path / "idx")
    build([tmp_path / "day1"], settings, embedder, progress=False)
    report = update([tmp_path / "day2"], settings, embedder, progress=False)
    assert (report.added, report.kept, report.deleted, report.articles) == (2, 6, 0, 8)
    assert 0 < report.embedded <= report.passages - report.carried and report.carried > 0
    both = Settings(index_dir=tmp_path / "both", cache_dir=str(tmp_path / "idx" / "cache"))
    build([tmp_path / "day1", tmp_path / "day2"], both, embedder, progress=False)
    assert_same_index(settings.index_dir, both.index_dir, settings, both, embedder)


def test_delete_missing_never_deletes_on_a_partial_read(tmp_path, embedder):
    records = wikinews(3)
    settings = built(tmp_path, records, embedder)
    published = current_version(settings.index_dir)
    # The third article's line is damaged: it reads as missing, but it was not withdrawn.
    lines = [json.dumps(r) for r in records[:2]] + [json.dumps(records[2])[:-9]]
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "news.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="would delete 1 article.*could not be read .first: .*news.jsonl:3"):
        update([tmp_path / "v2"], settings, embedder, delete_missing=True, progress=False)
    assert current_version(settings.index_dir) == published
    report = update([tmp_path / "v2"], settings, embedder, progress=False)  # without it, the article is kept
    assert not report.published and report.kept == 1 and len(report.problems) == 1


def test_update_refuses_other_chunking_and_missing_index(tmp_path, embedder, corpus_index):
    with pytest.raises(IndexNotFound, match="news-index build"):
        update([tmp_path], Settings(index_dir=tmp_path / "none"), embedder, progress=False)
    other = Settings(index_dir=corpus_index, chunk_tokens=120)
    with pytest.raises(ConfigError, match=r"max_tokens=200 \(now 120\).*news-index build"):
        update([tmp_path], other, embedder, progress=False)


@pytest.mark.slow
def test_update_of_an_approximate_index_equals_a_rebuild_through_the_embedding_cache(tmp_path, embedder):
    old = wikinews(8)
    settings = built(tmp_path, old, embedder, flat_limit=0)  # IVF-SQ8: the index holds 8-bit codes
    new = [dict(r) for r in old[1:]] + wikinews(2, start=60)
    new[0]["body"] += "\n\nThis article was updated."
    write_jsonl(tmp_path / "v2" / "news.jsonl", new)
    report = update([tmp_path / "v2"], settings, embedder, delete_missing=True, progress=False)
    assert report.carried > 0 and LocalVersion.open(settings.index_dir).manifest["faiss"]["spec"].startswith("IVF")

    rebuilt = Settings(index_dir=tmp_path / "rebuilt", flat_limit=0, cache_dir=str(settings.index_dir / "cache"))
    build([tmp_path / "v2"], rebuilt, embedder, progress=False)
    a, b = dump(settings.index_dir), dump(rebuilt.index_dir)
    assert a["tables"] == b["tables"] and a["manifest"] == b["manifest"]
    np.testing.assert_array_equal(a["vectors"], b["vectors"])  # carried from the cache: bit for bit

    # Without the cache, carried vectors are the base's decoded codes: close to the rebuild, not equal.
    cold = Settings(index_dir=tmp_path / "cold", flat_limit=0, cache_dir="none")
    build([tmp_path / "v1"], cold, embedder, progress=False)
    update([tmp_path / "v2"], cold, embedder, delete_missing=True, progress=False)
    c = dump(cold.index_dir)
    assert c["tables"] == b["tables"]
    cosines = (c["vectors"] * b["vectors"]).sum(1) / np.linalg.norm(c["vectors"], axis=1) / np.linalg.norm(b["vectors"], axis=1)
    assert cosines.min() > 0.999


def passage_texts(index_dir: Path) -> dict[str, list[str]]:
    tables = dump(index_dir)["tables"]
    id_of = {row[0]: row[1] for row in tables["articles"]}
    out: dict[str, list[str]] = {}
    for _, num, _, *_, text in sorted(tables["passages"], key=lambda r: (r[1], r[2])):
        out.setdefault(id_of[num], []).append(text)
    return out


@pytest.mark.slow
def test_articles_without_a_title_get_a_lead_passage_and_update_decides_as_a_rebuild(tmp_path, embedder):
    old = wikinews(6)
    old[1]["title"] = ""
    settings = built(tmp_path, old, embedder)  # fields=title+body, the default
    body_only = Settings(index_dir=tmp_path / "body", fields="body", cache_dir=str(tmp_path / "idx" / "cache"))
    build([tmp_path / "v1"], body_only, embedder, progress=False)
    mixed, with_lead = passage_texts(settings.index_dir), passage_texts(body_only.index_dir)
    ids = [r["id"] for r in old]
    assert mixed[ids[1]] == with_lead[ids[1]]  # the lead passage first, as with fields=body
    assert all(mixed[a] == with_lead[a][1:] for a in ids if a != ids[1])  # titled: no lead passage
    assert dump(settings.index_dir)["manifest"]["chunking"]["lead_for"] == "untitled"

    new = [dict(r) for r in old]
    new[2]["title"] = ""  # its headline withdrawn: now it needs the lead
    new[1]["title"] = "A headline added later"  # and this one no longer does
    new.append(dict(wikinews(1, start=40)[0], title=""))
    write_jsonl(tmp_path / "v2" / "news.jsonl", new)
    report = update([tmp_path / "v2"], settings, embedder, progress=False)
    assert (report.added, report.changed) == (1, 2)
    rebuilt = Settings(index_dir=tmp_path / "rebuilt", cache_dir=str(tmp_path / "idx" / "cache"))
    build([tmp_path / "v2"], rebuilt, embedder, progress=False)
    assert_same_index(settings.index_dir, rebuilt.index_dir, settings, rebuilt, embedder)
    after = passage_texts(settings.index_dir)
    assert after[ids[2]] == with_lead[ids[2]] and after[ids[1]] == with_lead[ids[1]][1:]


def test_update_of_an_index_from_before_the_untitled_lead_rule_says_how_to_rebuild(tmp_path, embedder, corpus_index):
    from indexer.steps import built_chunking

    name = current_version(corpus_index)
    manifest_path = corpus_index / name / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    old = {k: v for k, v in manifest["chunking"].items() if k != "lead_for"}
    assert built_chunking({**old, "lead_sentences": 2, "fields": "body"})["lead_for"] == "all"
    copy = tmp_path / "old"
    copy.mkdir()
    (copy / "CURRENT").write_text(name + "\n")
    (copy / name).mkdir()
    for f in ("vectors.faiss", "meta.sqlite"):
        (copy / name / f).write_bytes((corpus_index / name / f).read_bytes())
    files = {f: manifest["files"][f] for f in ("vectors.faiss", "meta.sqlite")}  # from before keyword/ too
    (copy / name / "manifest.json").write_text(json.dumps({**manifest, "chunking": {**old, "lead_sentences": 0},
                                                           "files": files}))
    with pytest.raises(ConfigError, match=r"lead_for='none' \(now 'untitled'\).*NEWSEARCH_LEAD_SENTENCES=0.*build"):
        update([tmp_path], Settings(index_dir=copy), embedder, progress=False)
