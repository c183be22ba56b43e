"""Reading corpora: the seed format, JSONL with extras, HTML, and every kind of broken input."""

from __future__ import annotations

import gzip
import json
from datetime import datetime

import pytest

from indexer.errors import SourceError
from indexer.sources import CorpusReader
from tests.helpers import CORPUS, SEED


def read(*paths, strict=False):
    reader = CorpusReader(list(paths), strict=strict)
    return list(reader), reader.problems


def test_seed_txt_title_and_stable_id():
    (a,), problems = read(SEED)
    assert problems == []
    assert a.title == "Russia-backed Syrian army carry on anti-ISIS push"
    assert a.id == read(SEED)[0][0].id and a.id.startswith("txt-")
    # The body is the scraped file's, unchanged below the front matter that names the source.
    assert (a.source, a.url, a.published) == ("Reuters", None, None)
    assert a.body.startswith("\nForces loyal to Syria") and a.body.rstrip().endswith("| Contact Us |")


def test_corpus_dir_reads_seed_and_wikinews_and_ignores_other_files():
    articles, problems = read(CORPUS)
    assert problems == []
    assert len(articles) == 51
    assert sum(a.id.startswith("wikinews-") for a in articles) == 50
    # Every article names its source, the seed too (its front matter), so /stats `sources` counts all 51.
    assert {a.source for a in articles} == {"Reuters", "English Wikinews (CC BY 2.5)"}
    assert all(a.url.startswith("https://en.wikinews.org/") for a in articles if a.id.startswith("wikinews-"))


def test_a_file_named_on_its_own_is_read_only_in_a_corpus_format(tmp_path):
    (tmp_path / "notes.md").write_text("root:*:20228:0:99999:7:::\n\nNot an article.\n")
    articles, problems = read(tmp_path / "notes.md", CORPUS / "ATTRIBUTION.md", SEED)
    assert [a.id for a in articles] == [read(SEED)[0][0].id]
    assert [p.origin for p in problems] == [str(tmp_path / "notes.md"), str(CORPUS / "ATTRIBUTION.md")]
    assert all("not a corpus file" in p.reason and ".jsonl.gz" in p.reason for p in problems)


def test_links_to_folders_pipes_and_names_that_are_not_utf8_are_reported_not_skipped_silently(tmp_path):
    import os

    corpus, other = tmp_path / "corpus", tmp_path / "other"
    corpus.mkdir()
    other.mkdir()
    (other / "z.txt").write_text("Z\n\nAn article behind a link.\n")
    (corpus / "a.txt").write_text("A\n\nAn article.\n")
    (corpus / "more").symlink_to(other)
    os.mkfifo(tmp_path / "pipe.txt")
    with open(os.fsencode(corpus) + b"/caf\xe9.txt", "w") as fh:
        fh.write("C\n\nA name in Latin-1.\n")
    articles, problems = read(corpus, tmp_path / "pipe.txt")
    assert [a.title for a in articles] == ["A"]
    reasons = {p.origin.rsplit("/", 1)[-1]: p.reason for p in problems}
    assert set(reasons) == {"more", "caf\ufffd.txt", "pipe.txt"}, reasons
    assert "not followed" in reasons["more"] and "not UTF-8" in reasons["caf\ufffd.txt"]
    assert "not a regular file" in reasons["pipe.txt"]


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


def test_nan_and_infinity_are_not_json(tmp_path):
    path = tmp_path / "nan.jsonl"
    path.write_text('{"id": "n", "body": "x", "score": NaN}\n{"id": "i", "body": "x", "w": [-Infinity]}\n'
                    '{"id": "ok", "body": "x", "score": 1.5}\n')
    articles, problems = read(path)
    assert [(a.id, a.meta) for a in articles] == [("ok", {"score": 1.5})]
    assert [p.reason for p in problems] == ["malformed JSON (NaN is not JSON; write null or a number)",
                                            "malformed JSON (-Infinity is not JSON; write null or a number)"]


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


def test_lines_that_break_the_parser_are_skipped_not_fatal(tmp_path):
    path = tmp_path / "odd.jsonl"
    lines = ['{"id": "ok", "body": "Fine."}',
             '{"id": "early", "body": "x", "date": "0001-01-01T00:00:00+05:00"}',  # before year 1 in UTC
             '{"id": "late", "body": "x", "date": "9999-12-31T23:00:00-05:00"}',  # after year 9999 in UTC
             "[" * 100_000,
             '{"id": "deep", "body": "x", "extra": ' + "[" * 900 + "]" * 900 + "}",  # readable, not storable
             '{"id": ' + "1" * 5000 + ', "body": "x"}',
             '{"id": "ok2", "body": "Also fine.", "tags": {"a": [1, {"b": 2}]}}']
    path.write_text("\n".join(lines) + "\n")
    articles, problems = read(path)
    assert [a.id for a in articles] == ["ok", "ok2"]
    reasons = {p.origin.rsplit(":", 1)[1]: p.reason for p in problems}
    assert set(reasons) == {"2", "3", "4", "5", "6"}
    assert "outside years 1-9999" in reasons["2"] and "outside years 1-9999" in reasons["3"]
    assert "nested more than" in reasons["4"] and "nested more than" in reasons["5"]
    assert "4300 digits" in reasons["6"]
    with pytest.raises(SourceError, match=r"odd.jsonl:2: date .* outside years 1-9999.*--strict"):
        read(path, strict=True)


def test_a_damaged_gzip_keeps_the_lines_before_the_damage_and_says_where_it_stopped(tmp_path):
    lines = [json.dumps({"id": f"n{i}", "body": f"Article number {i} " + "word " * 40}) for i in range(2000)]
    whole = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    first_half = gzip.compress(("\n".join(lines[:1000]) + "\n").encode(), mtime=0)
    bad_crc = bytearray(whole)
    bad_crc[-8] ^= 0xFF
    damaged = {
        "truncated": (whole[: len(whole) // 2], "ended before the end-of-stream marker"),
        # `cat good.gz bad.gz`: the second member's deflate data starts with a reserved block type
        "bad-block": (first_half + gzip.compress(b"", mtime=0)[:10] + b"\x07" + bytes(20), "invalid block type"),
        "bad-crc": (bytes(bad_crc), "CRC check failed"),
    }
    for name, (data, expected) in damaged.items():
        path = tmp_path / f"{name}.jsonl.gz"
        path.write_bytes(data)
        articles, problems = read(path)
        assert [a.id for a in articles] == [f"n{i}" for i in range(len(articles))] and articles, name
        (problem,) = problems
        assert problem.origin == f"{path}:{len(articles) + 1}"
        assert problem.reason.startswith("damaged gzip file") and expected in problem.reason
        assert f"the {len(articles)} article(s) before" in problem.reason
        with pytest.raises(SourceError, match="damaged gzip file.*--strict"):
            read(path, strict=True)
    assert len(read(tmp_path / "bad-block.jsonl.gz")[0]) == 1000 and len(read(tmp_path / "bad-crc.jsonl.gz")[0]) == 2000
