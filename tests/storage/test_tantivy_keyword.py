"""The local store's tantivy keyword index: filters inside the index, updates that start from the published
version's files, versions written before it existed, and a writer killed before publishing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from indexer.chunk import MAX_PASSAGES_PER_ARTICLE
from indexer.records import Article
from indexer.settings import Settings
from indexer.storage import open_store
from indexer.storage.base import Filter, KeywordWeights
from indexer.storage.folders import file_entry, list_versions, read_manifest, verify_files, write_manifest
from indexer.storage.local import LocalStore
from indexer.storage.tantivy_keyword import BITS, FOLDER, SPEC, article_key, terms_of
from indexer.storage.words import STEMMER
from tests.helpers import Data, paragraphs, write

WORDS = ["president"]


@pytest.fixture()
def store(tmp_path: Path) -> LocalStore:
    return open_store(Settings(index_dir=tmp_path / "index"))  # type: ignore[return-value]


def keyword(store: LocalStore, words: list[str] = WORDS, filter: Filter | None = None) -> list[tuple[str, float]]:
    version = store.open()
    try:
        return version.text.keyword_articles(words, 1000, KeywordWeights(), filter)
    finally:
        version.close()


def test_combined_filters_are_applied_inside_the_index(store: LocalStore, data: Data):
    store.publish(write(store, data))
    everything = keyword(store)
    dated = sorted(data.by_id[a].published for a, _ in everything if data.by_id[a].published)
    window = Filter(since=dated[len(dated) // 4], before=dated[3 * len(dated) // 4], sources=("Wire A", "Wire B"))
    expected = [hit for hit in everything if window.accepts(data.by_id[hit[0]].published, data.by_id[hit[0]].source)]
    got = keyword(store, filter=window)
    assert 0 < len(got) < len(everything) and [a for a, _ in got] == [a for a, _ in expected]
    # An article without a source or a date fails a source or a date bound, as Filter.accepts says.
    undated = [a for a, _ in everything if data.by_id[a].source is None]
    assert undated and not set(undated) & {a for a, _ in keyword(store, filter=Filter(sources=("Wire A",)))}
    assert keyword(store, filter=Filter(since=datetime(2200, 1, 1))) == []


def test_an_update_indexes_only_what_changed_and_results_follow(store: LocalStore, data: Data):
    store.publish(write(store, data))
    old = store.current()
    gone = data.articles[0]
    changed = data.articles[1]
    edited = replace(changed, body=changed.body + "\n\nThe okapi herd grew.", content_hash="edited")
    added = Article("tantivy-new", "Okapi sighted", "An okapi was sighted near the president's car.",
                    datetime(2030, 1, 2), "Wire C", None, "h-okapi")
    data.passages_of.update({edited.id: paragraphs(edited), added.id: paragraphs(added)})
    try:
        store.publish(write(store, data, [edited, *data.articles[2:], added]))
    finally:
        del data.passages_of[added.id]
        data.passages_of[changed.id] = paragraphs(changed)
    new = store.current()
    manifest = store.manifest(new)
    # Two added (the edit and the new one), one deleted for the edit and one for the article gone.
    assert (manifest["keyword"]["added"], manifest["keyword"]["deleted"]) == (2, 2)
    assert manifest["keyword"]["docs"] == len(data.articles)
    shared = [p.name for p in (store.index_dir / new / FOLDER).iterdir()
              if p.stat().st_nlink > 1 and (store.index_dir / old / FOLDER / p.name).exists()]
    assert shared, "the new version's segments are the old ones' files, not copies"
    found = {a for a, _ in keyword(store, ["okapi"])}
    assert found == {edited.id, added.id}
    assert gone.id not in {a for a, _ in keyword(store)} and added.id in {a for a, _ in keyword(store)}
    assert [a for a, _ in keyword(store, ["okapi"], Filter(sources=("Wire C",)))] == [added.id]
    # The old version, still on disk, answers as before.
    before = store.open(old)
    try:
        assert before.text.keyword_articles(["okapi"], 10, KeywordWeights()) == []
        assert gone.id in {a for a, _ in before.text.keyword_articles(WORDS, 1000, KeywordWeights())}
    finally:
        before.close()


def old_style(folder: Path) -> None:
    """Make a version look as one written before keyword indexes: no folder, nothing about it in the manifest."""
    shutil.rmtree(folder / FOLDER)
    manifest = read_manifest(folder)
    del manifest["keyword"]
    manifest["files"] = {name: entry for name, entry in manifest["files"].items() if not name.startswith(FOLDER)}
    write_manifest(folder, manifest)


def test_a_version_written_before_tantivy_gets_its_index_once_on_open(store: LocalStore, data: Data):
    store.publish(write(store, data))
    expected = keyword(store)
    folder = store.index_dir / store.current()
    old_style(folder)
    assert keyword(store) == expected and (folder / FOLDER / SPEC).is_file()
    made = (folder / FOLDER / SPEC).stat().st_mtime_ns
    assert keyword(store) == expected and (folder / FOLDER / SPEC).stat().st_mtime_ns == made  # not again
    # A half-built index (a builder killed before its rename) is neither used nor left behind.
    old_style(folder)
    (folder / f"{FOLDER}.tmp.999").mkdir()
    assert keyword(store) == expected and not list(folder.glob(f"{FOLDER}.tmp*"))


def test_an_index_written_with_snowball_stems_is_rebuilt_with_porter_once_on_open(store: LocalStore, data: Data):
    store.publish(write(store, data))
    expected = keyword(store)
    folder = store.index_dir / store.current()
    # As the previous code wrote it: format 1 (tantivy's `en_stem`), no stemmer named, listed in the manifest.
    spec = json.loads((folder / FOLDER / SPEC).read_text())
    old = {key: value for key, value in spec.items() if key not in ("stemmer", "tokenizer")} | {"format": 1}
    (folder / FOLDER / SPEC).write_text(json.dumps(old))
    manifest = read_manifest(folder)
    manifest["keyword"] = old
    manifest["files"][f"{FOLDER}/{SPEC}"] = file_entry(folder / FOLDER / SPEC)
    write_manifest(folder, manifest)
    assert keyword(store) == expected
    rebuilt = json.loads((folder / FOLDER / SPEC).read_text())
    assert (rebuilt["format"], rebuilt["stemmer"]) == (2, STEMMER) == (read_manifest(folder)["keyword"]["format"],
                                                                       read_manifest(folder)["keyword"]["stemmer"])
    verify_files(folder, read_manifest(folder))  # the manifest's checksums are the new files'
    made = (folder / FOLDER / SPEC).stat().st_mtime_ns
    assert keyword(store) == expected and (folder / FOLDER / SPEC).stat().st_mtime_ns == made  # not again


@pytest.mark.parametrize("word", ["generously", "agreed", "rising", "analysts", "the", "president"])
def test_the_keyword_index_matches_the_articles_fts5_matches(store: LocalStore, data: Data, word: str):
    """Porter stems and no stop-word filter on both sides: an article holds a word in tantivy exactly when one of
    its passages holds it in FTS5 (the passages cover the title and the whole body)."""
    store.publish(write(store, data))
    version = store.open()
    try:
        tantivy_side = {article_key(a) for a, _ in version.text.keyword_articles([word], 10_000, KeywordWeights())}
        fts5_side = {p - p % MAX_PASSAGES_PER_ARTICLE for p, _ in version.text.keyword_passages([word], 100_000, 1.0)}
    finally:
        version.close()
    assert tantivy_side and tantivy_side == fts5_side


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from dataclasses import replace
    from indexer.settings import Settings
    from indexer.storage import open_store
    from tests.helpers import CORPUS, WIRES, Data, write
    from indexer.steps import read_corpus

    articles = [replace(a, source=None if i % 10 == 9 else WIRES[i % 3])
                for i, a in enumerate(read_corpus([CORPUS], progress=False).articles)]
    data = Data(articles)
    store = open_store(Settings(index_dir=sys.argv[1]))
    renamed = [replace(a, body=a.body.replace("president", "okapi"), content_hash="x" + a.content_hash)
               for a in data.articles]
    original = store.begin.__func__

    def begin(self, model, chunking):
        writer = original(self, model, chunking)
        finish = writer._keyword.finish

        def finish_then_die(final):
            finish(final)  # the new keyword index is complete, the version is not
            os.kill(os.getpid(), signal.SIGKILL)

        writer._keyword.finish = finish_then_die
        return writer

    type(store).begin = begin
    write(store, data, renamed)
""")


def test_an_update_killed_before_publish_leaves_the_served_keyword_results_intact(store: LocalStore, data: Data):
    store.publish(write(store, data))
    served = store.current()
    expected = keyword(store)
    reader = store.open()
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(store.index_dir)], cwd=root, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    try:
        assert reader.text.keyword_articles(WORDS, 1000, KeywordWeights()) == expected
        assert reader.text.keyword_articles(["okapi"], 10, KeywordWeights()) == []
    finally:
        reader.close()
    assert store.current() == served and list_versions(store.index_dir) == [served]
    assert keyword(store) == expected and keyword(store, ["okapi"]) == []
    leftover = store.unfinished(grace_seconds=3600)
    assert len(leftover) == 1 and (store.index_dir / leftover[0] / FOLDER).is_dir()  # gc's to remove


def test_word_presence_marks_every_place_of_a_repeated_article(store: LocalStore, data: Data):
    store.publish(write(store, data))
    version = store.open()
    try:
        holding = {a for a, _ in version.text.keyword_articles(WORDS, 1000, KeywordWeights())}
        ids = version.text.catalog().article_ids
        first = next(n for n, a in enumerate(ids) if a in holding)
        other = next(n for n, a in enumerate(ids) if n and a not in holding)
        # Passage hits (group=none) ask for one article once per passage.
        n, df, present = version.text.word_presence(WORDS, [first, other, first])
        assert n == len(data.articles) and df == [len(holding)] and present.tolist() == [[True, False, True]]
    finally:
        version.close()


def test_word_presence_in_one_search_agrees_with_each_words_own_search(store: LocalStore, data: Data):
    """More words than one presence search takes (BITS), a word of two terms, one held nowhere, all articles."""
    store.publish(write(store, data))
    words = list(dict.fromkeys(data.articles[0].body.lower().split()))[:2 * BITS + 5] + ["U.S.", "zzyzxq"]
    version = store.open()
    try:
        numbers = [n for n, a in enumerate(version.text.catalog().article_ids) if a]  # 0 is no article
        ids = [version.text.catalog().article_ids[n] for n in numbers]
        holding = [{a for a, _ in version.text.keyword_articles([term], 10_000, KeywordWeights())}
                   for term in ("u", "s")]
        n, df, present = version.text.word_presence(words, numbers)
        for i, word in enumerate(words):
            terms = terms_of(word)
            sets = [{a for a, _ in version.text.keyword_articles([t], 10_000, KeywordWeights())} for t in terms]
            held = set.intersection(*sets) if sets else set()
            assert present[i].tolist() == [a in held for a in ids], word
            assert df[i] == min((len(s) for s in sets), default=0), word
        assert present[-2].any() and present[-2].tolist() == [a in holding[0] & holding[1] for a in ids]
        assert not present[-1].any() and df[-1] == 0 and n == len(ids)
    finally:
        version.close()
