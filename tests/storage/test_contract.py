"""What every storage backend must do (indexer/storage/base.py), run unchanged against each one in BACKENDS.

The records are real articles of corpus/, split into passages at paragraphs; the vectors come from a
deterministic bag-of-words embedder, since the contract is about storing and finding, not about the model.
A backend joins by appending a factory `(folder) -> Store` to BACKENDS (see docs/storage.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import IndexMismatch, IndexNotFound
from indexer.records import Article
from indexer.settings import Settings
from indexer.storage import open_store
from indexer.storage.base import Filter, KeywordWeights, Store, Version
from tests.helpers import CHUNKING, DIM, MODEL, Data, embed, paragraphs, write


def local_store(folder: Path) -> Store:
    """The default backend: FAISS + SQLite folders under `folder`."""
    return open_store(Settings(index_dir=folder))


def milvus_store(folder: Path) -> Store:
    """Milvus Lite in this process, on a file under `folder` (tests/storage/test_milvus.py has its own tests)."""
    return open_store(Settings(index_dir=folder, store="milvus"))


BACKENDS: list[Callable[[Path], Store]] = [local_store, milvus_store]


@pytest.fixture(params=BACKENDS, ids=lambda factory: factory.__name__)
def store(request, tmp_path) -> Iterator[Store]:
    """An empty store of each backend; a Milvus client is closed after the test, so Milvus Lite's server does
    not outlive it (left open, each one delays the end of the test process)."""
    opened = request.param(tmp_path / "index")
    yield opened
    if hasattr(opened, "close"):
        opened.close()


@pytest.fixture()
def opened(store: Store, data: Data):
    """A published version of every article, opened."""
    store.publish(write(store, data))
    version = store.open()
    yield version
    version.close()


def assert_nearest(data: Data, query: np.ndarray, k: int, got: tuple[np.ndarray, np.ndarray],
                   keep: Callable[[int], bool] = lambda pid: True) -> None:
    """`got` (scores, ids) is a top-k by exact cosine among the passages `keep` accepts, best first (passages
    tied at the cut may be either)."""
    scores, ids = got
    cosine = dict(zip(data.ids.tolist(), (data.vectors @ query).tolist()))
    expected = sorted((c for pid, c in cosine.items() if keep(pid)), reverse=True)[:k]
    assert len(ids) == len(expected) == len(set(ids.tolist())) and all(keep(pid) for pid in ids.tolist())
    np.testing.assert_allclose(scores, [cosine[pid] for pid in ids.tolist()], atol=1e-4)
    np.testing.assert_allclose(scores, expected, atol=1e-4)


# -- versions ---------------------------------------------------------------------------------------------


def test_a_written_version_is_listed_but_not_published_until_published(store, data):
    with pytest.raises(IndexNotFound):
        store.current()
    assert store.versions() == []
    name = write(store, data)
    assert store.versions() == [name]
    with pytest.raises(IndexNotFound):
        store.current()
    manifest = store.manifest(name)
    assert manifest["model"] == MODEL and manifest["chunking"] == CHUNKING
    assert manifest["counts"]["articles"] == len(data.articles) and manifest["counts"]["passages"] == len(data.ids)
    assert manifest["counts"]["duplicate_groups"] == len(set(data.groups.values()))
    store.publish(name)
    assert store.current() == name and store.size(name) >= 0


def test_an_aborted_or_failed_writer_leaves_nothing(store, data):
    with pytest.raises(RuntimeError, match="crash"), store.begin(MODEL, CHUNKING) as writer:
        writer.add(data.articles[:3], data.passages_of, data.ids[:0], data.vectors[:0], {})
        raise RuntimeError("crash")
    writer = store.begin(MODEL, CHUNKING)
    writer.abort()
    assert store.versions() == [] and store.unfinished(0) == []


def test_an_unfinished_version_is_invisible_and_removable(store, data):
    published = write(store, data, data.articles[:5])
    store.publish(published)
    writer = store.begin(MODEL, CHUNKING)
    writer.add(data.articles[5:8], data.passages_of, np.zeros(0, np.int64), np.zeros((0, DIM), np.float32), {})
    assert store.versions() == [published] and store.current() == published
    assert writer.name in store.unfinished(0) and published not in store.unfinished(0)
    store.remove(writer.name)
    writer.abort()
    assert store.unfinished(0) == [] and store.versions() == [published]
    assert store.remove_temporary(0) >= 0 and store.versions() == [published]


def test_publish_switches_versions_and_the_published_one_cannot_be_removed(store, data):
    old = write(store, data, data.articles[:10])
    new = write(store, data, data.articles[10:20])
    assert store.versions() == [old, new]  # oldest first
    store.publish(new)
    reader = store.open()  # a reader keeps the version it opened through a publish
    store.publish(old)
    assert store.current() == old and reader.name == new
    assert reader.text.count_articles() == 10 and reader.text.article(data.articles[15].id) is not None
    reader.close()
    with pytest.raises(IndexMismatch, match="published"):
        store.remove(old)
    store.remove(new)
    assert store.versions() == [old]
    assert store.open().text.article(data.articles[15].id) is None


def test_publish_new_publishes_the_version_just_written(store, data):
    name = write(store, data, data.articles[:4])
    store.publish_new(name)
    assert store.current() == name and store.open(name, verify=False).name == name


# -- text --------------------------------------------------------------------------------------------------


def test_articles_and_passages_read_back_as_written(opened: Version, data: Data):
    text = opened.text
    assert text.count_articles() == len(data.articles) and text.count_passages() == len(data.ids)
    for a in data.articles[::7]:
        got = text.article(a.id)
        assert {k: got[k] for k in ("id", "title", "body", "published", "source", "url", "content_hash", "meta")} == \
               {"id": a.id, "title": a.title, "body": a.body, "published": a.published, "source": a.source,
                "url": a.url, "content_hash": a.content_hash, "meta": a.meta}
        assert got["dup_group"] == data.groups.get(a.id)
        assert got["passages"] == [{"id": p.id, "ordinal": p.ordinal, "start": p.start, "end": p.end}
                                   for p in data.passages_of[a.id]]
    assert text.article("no-such-article") is None
    picked = data.passages[::11]
    stored = text.passages([p.id for p in picked] + [12345])
    assert set(stored) == {p.id for p in picked}
    for p in picked:
        s, a = stored[p.id], data.by_id[p.article_id]
        assert (s.article_id, s.ordinal, s.start, s.end, s.text) == (p.article_id, p.ordinal, p.start, p.end, p.text)
        assert (s.title, s.published, s.source, s.url, s.dup_group) == (a.title, a.published, a.source, a.url,
                                                                        data.groups.get(a.id))
        assert a.body[s.start : s.end] == s.text


def test_what_an_update_reads_back(opened: Version, data: Data):
    text = opened.text
    ids = [a.id for a in data.articles[3:9]]
    assert text.articles(ids) == [data.by_id[i] for i in ids]
    assert {k: v[0] for k, v in text.stored_articles().items()} == {a.id: a.content_hash for a in data.articles}
    assert text.titles() == {a.id: a.title for a in data.articles}
    assert text.passages_by_article() == {aid: ps for aid, ps in data.passages_of.items() if ps}
    assert sorted(text.passage_texts()) == sorted((data.by_id[p.article_id].title, p.text) for p in data.passages)
    assert text.first_passages(ids) == {i: data.passages_of[i][0].id for i in ids if data.passages_of[i]}


def test_catalog_sources_and_dates(opened: Version, data: Data):
    text = opened.text
    catalog = text.catalog()
    assert catalog.article_ids[0] == "" and sorted(catalog.article_ids[1:]) == sorted(data.by_id)
    number = {aid: n for n, aid in enumerate(catalog.article_ids)}
    for aid, n in number.items():
        if n:
            a = data.by_id[aid]
            assert (catalog.published[n], catalog.sources[n], catalog.dup_groups[n]) == \
                   (a.published, a.source, data.groups.get(aid))
    assert catalog.passage_ids.tolist() == sorted(data.ids.tolist())
    assert [catalog.article_ids[n] for n in catalog.owners.tolist()] == [data.owner[p] for p in catalog.passage_ids.tolist()]
    counts: dict[str, int] = {}
    for a in data.articles:
        if a.source is not None:
            counts[a.source] = counts.get(a.source, 0) + 1
    assert text.sources() == sorted(counts.items())
    dates = [a.published for a in data.articles if a.published]
    assert text.date_range() == (min(dates), max(dates))
    text.check()


# -- dense search ------------------------------------------------------------------------------------------


def test_dense_search_finds_the_nearest_passages(opened: Version, data: Data):
    vectors = opened.vectors
    assert len(vectors) == len(data.ids) and vectors.dim == DIM
    assert vectors.ids().tolist() == sorted(data.ids.tolist())
    np.testing.assert_allclose(vectors.get(data.ids[:20]), data.vectors[:20], atol=1e-5)
    for query in ("oil prices rise", "election results", data.passages[17].text):
        q = embed(query)
        assert_nearest(data, q, 10, vectors.search(q, 10))
    assert vectors.search(embed(data.passages[17].text), 1)[1].tolist() == [data.passages[17].id]


def test_dense_search_with_allowed_ids_or_a_filter(opened: Version, data: Data):
    vectors, q = opened.vectors, embed("government bank market prices")
    allowed = data.ids[::5]
    assert_nearest(data, q, 10, vectors.search(q, 10, allowed=allowed), lambda pid: pid in set(allowed.tolist()))
    source = sorted({a.source for a in data.articles if a.source})[0]
    dated = sorted(a.published for a in data.articles if a.published)
    where = Filter(since=dated[len(dated) // 4], before=dated[3 * len(dated) // 4])
    for f in (Filter(sources=(source,)), where, replace(where, sources=(source,))):
        passing = {p.id for p in data.passages if f.accepts(data.by_id[p.article_id].published,
                                                            data.by_id[p.article_id].source)}
        assert passing, f
        found = vectors.search(q, 10, filter=f)
        assert_nearest(data, q, 10, found, lambda pid, passing=passing: pid in passing)
        both = vectors.search(q, 10, allowed=np.array(sorted(passing), dtype=np.int64), filter=f)
        np.testing.assert_allclose(both[0], found[0], atol=1e-5)
    assert vectors.search(q, 10, allowed=np.zeros(0, np.int64))[1].tolist() == []


def test_vectors_remove_and_add(opened: Version, data: Data):
    vectors, target = opened.vectors, data.passages[17]
    q = embed(target.text)
    assert vectors.remove(np.array([target.id, 999], dtype=np.int64)) == 1
    assert len(vectors) == len(data.ids) - 1 and target.id not in vectors.ids().tolist()
    assert target.id not in vectors.search(q, 10)[1].tolist()
    vectors.add(np.array([target.id], dtype=np.int64), q.reshape(1, -1))
    assert vectors.search(q, 1)[1].tolist() == [target.id] and len(vectors) == len(data.ids)


# -- keyword search ----------------------------------------------------------------------------------------


def test_keyword_articles_with_and_without_filters(opened: Version, data: Data):
    text, weights = opened.text, KeywordWeights(1.0, 1.0)
    everything = text.keyword_articles(["president"], 1000, weights)
    found = {aid for aid, _ in everything}
    assert {a.id for a in data.articles if re.search(r"\bpresident\b", f"{a.title} {a.body}".lower())} <= found
    assert len(found) > 20 and all("presid" in f"{data.by_id[a].title} {data.by_id[a].body}".lower() for a in found)
    assert everything == sorted(everything, key=lambda hit: (-hit[1], hit[0]))
    assert text.keyword_articles(["president"], 3, weights) == everything[:3]
    assert text.keyword_articles([], 10, weights) == []
    sources = tuple(sorted({data.by_id[aid].source for aid, _ in everything if data.by_id[aid].source})[:1])
    dated = sorted(data.by_id[aid].published for aid, _ in everything if data.by_id[aid].published)
    for f in (Filter(sources=sources), Filter(since=dated[len(dated) // 2]), Filter(before=dated[len(dated) // 2])):
        expected = [(aid, s) for aid, s in everything if f.accepts(data.by_id[aid].published, data.by_id[aid].source)]
        got = text.keyword_articles(["president"], 1000, weights, f)
        assert 0 < len(got) < len(everything) and [a for a, _ in got] == [a for a, _ in expected], f
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-6)
    title_first = text.keyword_articles(["president"], 1000, KeywordWeights(10.0, 1.0))
    assert {a for a, _ in title_first} == {a for a, _ in everything} and title_first != everything


def test_keyword_passages_best_passages_and_word_presence(opened: Version, data: Data):
    text = opened.text
    hits = text.keyword_passages(["police"], 1000, 1.0)
    assert len(hits) > 5 and hits == sorted(hits, key=lambda hit: (-hit[1], hit[0]))
    by_id = {p.id: p for p in data.passages}
    assert all("polic" in f"{data.by_id[by_id[pid].article_id].title} {by_id[pid].text}".lower() for pid, _ in hits)
    source = data.by_id[by_id[hits[0][0]].article_id].source
    filtered = text.keyword_passages(["police"], 1000, 1.0, Filter(sources=(source,)))
    assert [p for p, _ in filtered] == [p for p, _ in hits if data.by_id[by_id[p].article_id].source == source]
    articles = [by_id[pid].article_id for pid, _ in hits[:5]]
    best = text.best_keyword_passages(["police"], articles + ["no-such-article"])
    assert set(best) == set(articles) and all(by_id[pid].article_id == aid for aid, pid in best.items())
    catalog = text.catalog()
    matching = {aid for aid, _ in text.keyword_articles(["police"], 1000, KeywordWeights())}
    numbers = list(range(1, len(catalog.article_ids)))
    n, df, present = text.word_presence(["police", "zzzqqq"], numbers)
    assert n == len(data.articles) and list(df) == [len(matching), 0]
    assert present.shape == (2, len(numbers)) and not present[1].any()
    assert [catalog.article_ids[k] for k, p in zip(numbers, present[0]) if p] == \
           [aid for aid in catalog.article_ids[1:] if aid in matching]


# -- an update: a new version from the old one -------------------------------------------------------------


def test_an_update_writes_a_new_version_and_leaves_the_old_one_whole(store, data):
    old = write(store, data)
    store.publish(old)
    before = store.open()
    gone, changed = data.articles[:3], data.articles[3]
    edited = replace(changed, body=changed.body + "\n\nCorrection: zebras were not involved.", content_hash="new")
    data.passages_of[edited.id] = paragraphs(edited)
    added = Article("contract-new-1", "Zebra crossing opens", "A new zebra crossing opened downtown.",
                    datetime(2030, 1, 1), "Contract Wire", None, "h-new")
    data.passages_of[added.id] = paragraphs(added)
    try:
        new = write(store, data, [edited, *data.articles[4:], added], batches=3)
    finally:
        del data.passages_of[added.id]
        data.passages_of[edited.id] = paragraphs(changed)
    store.publish(new)
    after = store.open()
    assert store.versions() == [old, new] and store.current() == new
    assert all(after.text.article(a.id) is None for a in gone)
    assert after.text.article(edited.id)["body"].endswith("zebras were not involved.")
    assert after.text.count_articles() == len(data.articles) - 2
    gone_ids = {p.id for a in gone for p in data.passages_of[a.id]}
    assert not gone_ids & set(after.vectors.ids().tolist())
    assert [a for a, _ in after.text.keyword_articles(["zebra"], 10, KeywordWeights())][:2] == \
           sorted([added.id, edited.id], key=lambda aid: aid != added.id)
    assert after.vectors.search(embed("new zebra crossing opened downtown"), 1)[1].tolist() == [paragraphs(added)[0].id]
    # Which articles hold a word, by catalog number, after articles were deleted (numbers given twice, as
    # group=none asks for each passage's article): the relevance of every hit reads this.
    catalog = after.text.catalog()
    holding = {aid for aid, _ in after.text.keyword_articles(["zebra"], 1000, KeywordWeights())}
    numbers = [*range(1, len(catalog.article_ids)), *range(1, len(catalog.article_ids))]
    _, df, present = after.text.word_presence(["zebra"], numbers)
    assert list(df) == [len(holding)] == [2]
    assert [catalog.article_ids[k] for k, p in zip(numbers, present[0]) if p] == \
           [aid for aid in catalog.article_ids[1:] if aid in holding] * 2
    # A reader of the old version still sees it whole.
    assert all(before.text.article(a.id) is not None for a in gone) and len(before.vectors) == len(data.ids)
    assert before.text.article(edited.id)["body"] == changed.body
    before.close()
    after.close()


def test_stories_read_back_and_each_is_a_timeline(opened: Version, data: Data):
    expected = {a.id: data.stories.get(a.id, a.id) for a in data.articles}
    assert opened.text.stories() == expected
    for story in sorted(set(expected.values()))[:6]:
        members = [a for a in data.articles if expected[a.id] == story]
        timeline = opened.text.story_articles(story)
        assert [t["id"] for t in timeline] == [a.id for a in sorted(
            members, key=lambda a: (a.published is None, a.published or datetime.min, a.id))]
        for t in timeline:
            article = data.by_id[t["id"]]
            assert (t["title"], t["published"], t["source"], t["url"]) == (
                article.title, article.published, article.source, article.url)
            assert t["dup_group"] == data.groups.get(t["id"])
    assert opened.text.story_articles("no-such-story") == []



def test_a_suffixed_story_id_fits_beside_the_longest_article_id(store, data):
    # After an update a story id may be an article id with ~2 (indexer/stories.py); Milvus caps ids at 1,024.
    article, long_id = data.articles[0], "a" * 1024
    passages = [replace(p, article_id=long_id) for p in data.passages_of[article.id]]
    with store.begin(MODEL, CHUNKING) as writer:
        writer.add([replace(article, id=long_id)], {long_id: passages}, np.array([p.id for p in passages]),
                   np.stack([embed(p.text) for p in passages]), {}, {long_id: long_id + "~2"})
        name = writer.commit()
    store.publish(name)
    version = store.open(name)
    try:
        assert version.text.stories() == {long_id: long_id + "~2"}
    finally:
        version.close()
