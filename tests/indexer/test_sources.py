"""Reading corpora: the seed format, JSONL with extras, HTML, and every kind of broken input."""

from __future__ import annotations

import gzip
import json
from datetime import datetime

import pytest

from indexer.errors import SourceError
from indexer.sources import CorpusReader
from tests.conftest import CORPUS, SEED


def read(*paths, strict=False):
    reader = CorpusReader(list(paths), strict=strict)
    return list(reader), reader.problems


def test_seed_txt_title_and_stable_id():
    (a,), problems = read(SEED)
    assert problems == []
    assert a.title == "Russia-backed Syrian army carry on anti-ISIS push"
    assert a.id == read(SEED)[0][0].id and a.id.startswith("txt-")


def test_corpus_dir_reads_seed_and_wikinews_and_ignores_other_files():
    articles, problems = read(CORPUS)
    assert problems == []
    assert len(articles) == 51
    assert sum(a.id.startswith("wikinews-") for a in articles) == 50
    assert all(a.url.startswith("https://en.wikinews.org/") for a in articles if a.id.startswith("wikinews-"))


def test_front_matter(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("---\nid: my-1\ndate: 2020-05-01T12:00:00+02:00\nsource: Example\nauthor: Ann\n---\nTitle here\n\nBody text.\n")
    (a,), _ = read(path)
    assert (a.id, a.title, a.source, a.meta) == ("my-1", "Title here", "Example", {"author": "Ann"})
    assert a.published == datetime(2020, 5, 1, 10, 0)


def test_jsonl_gz_with_extra_fields_and_missing_id(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "r-1", "title": "A", "body": "B.", "date": "1987-02-26", "topics": ["cocoa"]}) + "\n")
        fh.write(json.dumps({"title": "No id", "body": "Text.", "url": "http://x/1"}) + "\n")
    (a, b), problems = read(path)
    assert problems == []
    assert a.id == "r-1" and a.meta == {"topics": ["cocoa"]}
    assert b.id.startswith("doc-") and b.id == read(path)[0][1].id


def test_bad_lines_are_reported_and_skipped(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"id": "ok", "title": "T", "body": "Fine."}\n{not json\n\xff\xfe\n[1, 2]\n'
                     b'{"id": "e", "body": ""}\n{"id": "d", "body": "x", "date": "yesterday"}\n')
    articles, problems = read(path)
    assert [a.id for a in articles] == ["ok"]
    reasons = {p.origin.rsplit(":", 1)[1]: p.reason for p in problems}
    assert set(reasons) == {"2", "3", "4", "5", "6"}
    assert "malformed JSON" in reasons["2"] and "UTF-8" in reasons["3"] and "ISO 8601" in reasons["6"]
    assert str(problems[0]).startswith(f"{path}:2: ")


def test_strict_makes_the_first_problem_fatal(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "ok", "body": "x"}\n{oops\n')
    with pytest.raises(SourceError, match=r"bad.jsonl:2: malformed JSON.*--strict"):
        read(path, strict=True)


def test_non_utf8_and_empty_files(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("Título\n\nCafé".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    (tmp_path / "title-only.txt").write_text("Just a title\n")
    (tmp_path / "damaged.jsonl.gz").write_bytes(b"not gzip at all")
    articles, problems = read(tmp_path)
    assert articles == []
    by_file = {p.origin.split("/")[-1]: p.reason for p in problems}
    assert "UTF-8" in by_file["latin1.txt"]
    assert by_file["empty.txt"] == "empty file" and by_file["empty.jsonl"] == "empty file"
    assert "no body" in by_file["title-only.txt"]
    assert "gzip" in by_file["damaged.jsonl.gz"]


def test_missing_path_is_fatal(tmp_path):
    with pytest.raises(SourceError, match="no such file or directory"):
        CorpusReader([tmp_path / "nope"])


def test_html_article(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<html><head><title>Site | Story</title><script>var x=1;</script></head><body>"
                    "<nav><a>Home</a></nav><h1>Big story</h1><p>First &amp; foremost.</p><p>Second.</p>"
                    "<footer>© 2020 Site</footer></body></html>")
    (a,), _ = read(path)
    assert a.title == "Big story" and a.body == "First & foremost.\n\nSecond."
