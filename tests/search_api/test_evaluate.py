"""The evaluation harness end to end: BEIR files, an index of corpus/ built then reused, every mode
through the real Searcher, deterministic results; and its input errors.
"""

from __future__ import annotations

import json

import pytest

from indexer.errors import SourceError
from search_api.cli import main
from search_api.evaluate import load_qrels, load_queries
from tests.conftest import CORPUS


def _dev_set(folder, n=8):
    """Known-item queries from the first Wikinews articles of corpus/: each headline finds its article."""
    articles = [json.loads(line) for line in (CORPUS / "wikinews.jsonl").read_text(encoding="utf-8").splitlines()[:n]]
    queries = folder / "q.jsonl"
    queries.write_text("".join(json.dumps({"_id": f"q{i}", "text": a["title"]}) + "\n" for i, a in enumerate(articles)))
    qrels = folder / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{a['id']}\t1\n" for i, a in enumerate(articles)))
    return queries, qrels


@pytest.mark.slow
def test_eval_scores_every_mode_and_reuses_its_index(tmp_path, capsys):
    queries, qrels = _dev_set(tmp_path)
    args = ["eval", "--corpus", str(CORPUS), "--queries", str(queries), "--qrels", str(qrels), "--fields", "body",
            "--index-dir", str(tmp_path / "idx"), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "first.json")]) == 0
    printed = capsys.readouterr().out
    assert "| mode | ndcg@10 | mrr@10 | p@10 | recall@100 |" in printed and "| hybrid |" in printed
    first = json.loads((tmp_path / "first.json").read_text())
    assert first["built"] and first["queries"] == 8 and first["chunking"]["fields"] == "body"
    for mode in ("dense", "keyword", "hybrid"):
        means = first["modes"][mode]["means"]
        assert means["recall@100"] == 1.0 and means["mrr@10"] >= 0.75  # headlines of a 51-article corpus
        assert set(first["modes"][mode]["per_query"]) == {f"q{i}" for i in range(8)}
    assert main([*args, "--out", str(tmp_path / "second.json"), "--mode", "hybrid", "--collapse", "expand"]) == 0
    second = json.loads((tmp_path / "second.json").read_text())
    assert not second["built"] and second["index_version"] == first["index_version"]
    assert list(second["modes"]) == ["hybrid"]
    assert second["modes"]["hybrid"]["per_query"] == first["modes"]["hybrid"]["per_query"]  # no duplicates here


def test_bad_eval_files_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"_id": "a", "text": "x"}\n{"id": "b"}\n')
    with pytest.raises(SourceError, match=r"q.jsonl:2: not a BEIR query"):
        load_queries(bad)
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\tone\n")
    with pytest.raises(SourceError, match=r"qrels.tsv:2: expected"):
        load_qrels(qrels)
    code = main(["eval", "--corpus", str(CORPUS), "--queries", str(tmp_path / "missing.jsonl"),
                 "--qrels", str(qrels), "--index-dir", str(tmp_path / "idx")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "missing.jsonl: no such file" in err
    assert not (tmp_path / "idx").exists()


def test_qrels_header_is_optional_and_grades_are_kept(tmp_path):
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("q1\td1\t2\nq1\td2\t0\n\nq2\td3\t1\n")
    assert load_qrels(qrels) == {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 1}}
