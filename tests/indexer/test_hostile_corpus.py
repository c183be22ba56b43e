"""Hostile corpora: one bad record, file or link is reported as `path[:line]: reason` and skipped;
everything else is indexed (issue 15, defects 1 and 8)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from indexer.chunk import MAX_PASSAGES_PER_ARTICLE, chunk_article
from indexer.errors import SourceError
from indexer.records import Article
from indexer.sources import CorpusReader
from indexer.steps import cut_short, keep_last, read_corpus

GOOD = {"id": "good", "title": "Wheat", "body": "Wheat prices rose in Kansas after the rain."}


def read(*paths):
    reader = CorpusReader(list(paths))
    return list(reader), [str(p) for p in reader.problems]


@pytest.mark.parametrize("field", ["id", "title", "body", "source", "url", "topic"])
def test_a_lone_surrogate_in_any_field_skips_that_record_only(tmp_path, field):
    bad = {"id": "bad", "title": "t", "body": "some text", field: "a \ud800 b"}
    path = tmp_path / "s.jsonl"
    # json.dumps writes the surrogate as the escape \ud800, as a hostile file would hold it
    path.write_text(json.dumps(bad) + "\n" + json.dumps(GOOD) + "\n")
    articles, problems = read(path)
    assert [a.id for a in articles] == ["good"]
    assert problems == [f"{path}:1: field {field!r} holds a lone UTF-16 surrogate (an escape such as \\ud800 "
                        "without its pair); fix the text or drop the escape"]


def test_a_lone_surrogate_in_a_nested_key_or_value_is_caught(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({**GOOD, "id": "k", "extra": {"\udfff": 1}}) + "\n"
                    + json.dumps({**GOOD, "id": "v", "tags": [["x", "\udc00"]]}) + "\n" + json.dumps(GOOD) + "\n")
    articles, problems = read(path)
    assert [a.id for a in articles] == ["good"]
    assert [p.split(": ", 1)[0] for p in problems] == [f"{path}:1", f"{path}:2"]
    assert "'extra'" in problems[0] and "'tags'" in problems[1]


def test_ids_no_one_could_see_or_send_skip_their_record(tmp_path):
    path = tmp_path / "ids.jsonl"
    bad = [{**GOOD, "id": True}, {**GOOD, "id": "   "}, {**GOOD, "id": "a\x00b"}, {**GOOD, "id": "two\nlines"}]
    fine = [{**GOOD, "id": 7}, {**GOOD, "id": "می\u200cخواهم"}, {**GOOD, "id": "a\u00a0b"}]  # a joiner, a no-break space
    path.write_text("".join(json.dumps(r) + "\n" for r in [*bad, *fine, GOOD]))
    text = tmp_path / "front.txt"
    text.write_text("---\nid: a\x01b\n---\nTitle\nBody text.\n")
    articles, problems = read(path, text)
    assert sorted(a.id for a in articles) == sorted(["7", "a\u00a0b", "good", "می\u200cخواهم"])  # 7: its digits
    assert [p.split(": ", 1)[0] for p in problems] == [f"{path}:{n}" for n in (1, 2, 3, 4)] + [str(text)]
    assert problems[0].endswith("field 'id' must be a string")
    assert all("is blank or holds control characters" in p for p in problems[1:])


def test_hostile_files_are_each_reported(tmp_path):
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 title\n\nBody caf\xe9.".encode("latin-1"))
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "empty.txt").write_bytes(b"")
    with gzip.open(tmp_path / "full.jsonl.gz", "wt") as fh:
        fh.write("".join(json.dumps({**GOOD, "id": f"g{i}"}) + "\n" for i in range(200)))
    (tmp_path / "trunc.jsonl.gz").write_bytes((tmp_path / "full.jsonl.gz").read_bytes()[:300])
    (tmp_path / "full.jsonl.gz").unlink()
    (tmp_path / "nested.jsonl").write_text('{"id": "n", "body": "x", "m": ' + "[" * 5000 + "]" * 5000 + "}\n")
    (tmp_path / "script.html").write_text("<html><script>alert('x')</script><p>Oil rose.</p>"
                                          "<script>document.write('evil')</script></html>")
    articles, problems = read(tmp_path)
    html = [a.body for a in articles if a.origin.endswith(".html")]
    assert html == ["Oil rose."]  # without its scripts
    # what the truncated .gz held before the damage is indexed, and the report says how much that was
    assert len(articles) > 1 and all(a.body == GOOD["body"] for a in articles if not a.origin.endswith(".html"))
    by_file = {p.split(": ", 1)[0].split(":")[0]: p for p in problems}
    assert set(by_file) == {str(tmp_path / n) for n in ("binary.txt", "latin1.txt", "empty.jsonl", "empty.txt",
                                                        "trunc.jsonl.gz", "nested.jsonl")}
    assert "not UTF-8" in by_file[str(tmp_path / "binary.txt")]
    assert f"the {len(articles) - 1} article(s) before this line were read" in by_file[str(tmp_path / "trunc.jsonl.gz")]
    assert "nested more than" in by_file[str(tmp_path / "nested.jsonl")]


def test_dangling_links_and_loops_are_reported(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps(GOOD) + "\n")
    os.symlink(tmp_path / "gone.txt", tmp_path / "dangling.txt")
    os.symlink("loop.txt", tmp_path / "loop.txt")
    articles, problems = read(tmp_path)
    assert [a.id for a in articles] == ["good"]
    assert problems == [f"{tmp_path / 'dangling.txt'}: dangling symbolic link to {tmp_path / 'gone.txt'}; "
                        "remove the link or restore its target",
                        f"{tmp_path / 'loop.txt'}: symbolic link loop; remove the link"]


def test_duplicate_ids_within_and_across_files_say_which_record_won(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "body": "Second."}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({**GOOD, "body": "Third and last."}) + "\n")
    corpus = read_corpus([tmp_path], progress=False)
    assert [a.body for a in corpus.articles] == ["Third and last."]
    assert [str(p) for p in corpus.problems] == [
        f"{tmp_path / 'a.jsonl'}:1: duplicate id 'good': replaced by the later record at {tmp_path / 'a.jsonl'}:2",
        f"{tmp_path / 'a.jsonl'}:2: duplicate id 'good': replaced by the later record at {tmp_path / 'b.jsonl'}:1"]
    assert corpus.origins == {"good": f"{tmp_path / 'b.jsonl'}:1"}


def test_no_articles_found_lists_what_was_skipped(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "bad.jsonl").write_text("{broken\n")
    with pytest.raises(SourceError) as err:
        read_corpus([tmp_path], progress=False)
    assert f"2 skipped: {tmp_path / 'bad.jsonl'}:1: malformed JSON" in str(err.value)
    assert f"{tmp_path / 'empty.txt'}: empty file" in str(err.value)


def test_an_article_needing_more_passages_than_ids_hold_is_cut_and_reported():
    words = lambda text: len(text.split())  # noqa: E731 - a plain token counter keeps this test pure
    body = " ".join(f"Sentence number {i} says something." for i in range(MAX_PASSAGES_PER_ARTICLE + 10))
    article = Article("long", "T", body, None, None, None, "h")
    passages = chunk_article(article, words, max_tokens=5, overlap=0)
    assert len(passages) == MAX_PASSAGES_PER_ARTICLE and passages[-1].ordinal == MAX_PASSAGES_PER_ARTICLE - 1
    short = Article("short", "T", "One sentence.", None, None, None, "h")
    problems = cut_short([article, short], {"long": passages, "short": chunk_article(short, words)},
                         {"long": "big.jsonl:7"})
    assert [str(p) for p in problems] == [
        f"big.jsonl:7: article 'long' needs more than {MAX_PASSAGES_PER_ARTICLE} passages: only its first "
        f"{passages[-1].end:,} of {len(body):,} characters are indexed; split it into several articles or raise "
        "NEWSEARCH_CHUNK_TOKENS"]


def test_keep_last_keeps_order_by_id():
    a, b = (Article(i, "T", "B", None, None, None, "h") for i in ("b", "a"))
    articles, origins, problems = keep_last([(a, "f:1"), (b, "f:2")])
    assert [x.id for x in articles] == ["a", "b"] and origins == {"a": "f:2", "b": "f:1"} and problems == []


@pytest.mark.slow
def test_build_from_the_shell_indexes_the_rest_and_reports_on_stderr(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "s.jsonl").write_text('{"id":"x","title":"t","body":"a \\ud800 b"}\n' + json.dumps(GOOD) + "\n")
    os.symlink(corpus / "gone.txt", corpus / "dangling.txt")
    run = subprocess.run([sys.executable, "-m", "indexer.cli", "build", str(corpus), "--index-dir",
                          str(tmp_path / "idx"), "--quiet"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "published" in run.stdout and "1 articles" in run.stdout and "2 problem(s) reported on stderr" in run.stdout
    assert run.stderr.splitlines() == [
        f"{corpus / 'dangling.txt'}: dangling symbolic link to {corpus / 'gone.txt'}; remove the link or restore its target",
        f"{corpus / 's.jsonl'}:1: field 'body' holds a lone UTF-16 surrogate (an escape such as \\ud800 without its "
        "pair); fix the text or drop the escape"]
