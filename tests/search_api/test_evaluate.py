"""The evaluation harness end to end: BEIR files, an index of corpus/ built then reused, every mode
through the real Searcher, deterministic results; and its input errors.
"""

from __future__ import annotations

import json

import pytest

from indexer.adapt import headline_key
from indexer.errors import ConfigError, SourceError
from search_api.cli import main
from search_api.evaluation.compare import compare, load_result
from search_api.evaluation.harness import (
    ensure_index,
    evaluate,
    load_qrels,
    load_queries,
    seen_in_training,
    set_name_of,
    split_half,
)
from tests.helpers import CORPUS


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


def _one_half_split(folder):
    path = folder / "one-half.json"
    path.write_text(json.dumps({"sets": {"q": {"tune": ["q0"]}}}))
    return path


def _split(folder, tune, check, name="q"):
    path = folder / "split.json"
    path.write_text(json.dumps({"seed": 1, "sets": {name: {"tune": tune, "check": check}}}))
    return path


@pytest.mark.slow
def test_eval_scores_one_half_with_intervals_and_compare_tests_two_results(tmp_path, capsys):
    queries, qrels = _dev_set(tmp_path)
    split = _split(tmp_path, [f"q{i}" for i in range(4)], [f"q{i}" for i in range(4, 8)])
    args = ["eval", "--corpus", str(CORPUS), "--queries", str(queries), "--qrels", str(qrels), "--fields", "body",
            "--index-dir", str(tmp_path / "idx"), "--quiet", "--mode", "hybrid", "--mode", "keyword"]
    assert main([*args, "--split", str(split), "--half", "check", "--out", str(tmp_path / "a.json")]) == 0
    assert "check half" in capsys.readouterr().out
    a = json.loads((tmp_path / "a.json").read_text())
    assert a["queries"] == 4 and a["split"] == {"file": str(split), "set": "q", "half": "check"}
    assert a["collapse"] == "on"  # the ranking as the server returns it
    hybrid = a["modes"]["hybrid"]
    assert set(hybrid["per_query"]) == {"q4", "q5", "q6", "q7"}
    for name, (low, high) in hybrid["intervals"].items():
        assert low <= hybrid["means"][name] <= high
    assert main([*args, "--split", str(split), "--half", "check", "--set", "keyword_stop_words=false",
                 "--out", str(tmp_path / "b.json")]) == 0
    assert main([*args, "--out", str(tmp_path / "all.json")]) == 0
    capsys.readouterr()

    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--metric", "mrr@10"]) == 0
    printed = capsys.readouterr().out
    assert "| hybrid | mrr@10 | 4 (" in printed and "| keyword | mrr@10 | 4 (" in printed
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "a.json"), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)["comparison"]["hybrid"]["ndcg@10"]
    assert same["diff"] == 0 and same["p"] == 1.0

    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "all.json")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different queries" in err and "--intersect" in err
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "all.json"), "--intersect", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["comparison"]["hybrid"]["mrr@10"]["queries"] == 4


def test_an_unknown_set_or_half_is_one_line_before_any_work(tmp_path, capsys):
    queries, qrels = _dev_set(tmp_path)
    split = _split(tmp_path, ["q0"], ["q1"], name="headlines")
    base = ["eval", "--corpus", str(CORPUS), "--queries", str(queries), "--qrels", str(qrels),
            "--index-dir", str(tmp_path / "idx"), "--split", str(split)]
    assert main([*base, "--half", "check"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no set 'q'" in err and "--split-set" in err
    assert main([*base, "--half", "check", "--split-set", "topics"]) == 1
    assert "no set 'topics'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="no half 'check' of q"):
        split_half({"q0": "x"}, {}, _one_half_split(tmp_path), "q", "check")
    with pytest.raises(ConfigError, match="none of the queries is in the check half"):
        split_half({"q0": "x"}, {}, _split(tmp_path, ["q0"], ["q1"]), "q", "check")
    judged = {"q0": {"d": 1}, "q1": {"e": 1}}
    assert split_half({"q0": "x", "q1": "y"}, judged, _split(tmp_path, ["q0"], ["q1"]), "q", "tune") == (
        {"q0": "x"}, {"q0": {"d": 1}})
    assert set_name_of(tmp_path / "headlines-queries.jsonl") == "headlines"
    assert main(["eval", "--corpus", str(CORPUS), "--queries", str(queries), "--qrels", str(qrels), "--half", "tune",
                 "--index-dir", str(tmp_path / "idx2")]) == 1
    assert "--half needs --split" in capsys.readouterr().err
    assert not (tmp_path / "idx2").exists()


@pytest.mark.slow
def test_collapse_on_scores_the_hits_as_served(tmp_path, embedder):
    from indexer.pipeline import build
    from indexer.settings import Settings
    from search_api.evaluation.harness import evaluate
    from search_api.searcher import Searcher

    articles = [json.loads(line) for line in (CORPUS / "wikinews.jsonl").read_text(encoding="utf-8").splitlines()[:6]]
    copy = {**articles[0], "id": articles[0]["id"] + "-copy"}  # a wire copy: the same story under another id
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(a) + "\n" for a in [*articles, copy]))
    settings = Settings(index_dir=tmp_path / "idx")
    build([corpus], settings, embedder, progress=False)
    queries = {"q0": articles[0]["title"]}
    qrels = {"q0": {articles[0]["id"]: 1, copy["id"]: 1}}  # as the headlines qrels count identical bodies
    searcher = Searcher.open(settings.index_dir, settings, embedder)
    try:
        scored = {c: evaluate(searcher, queries, qrels, ["hybrid"], c)["modes"]["hybrid"]["per_query"]["q0"]
                  for c in ("on", "off", "expand")}
    finally:
        searcher.close()
    assert scored["on"]["recall@100"] == 0.5  # the served list shows the story once; its copy is not credited
    assert scored["off"]["recall@100"] == 1.0 and scored["expand"]["recall@100"] == 1.0
    assert scored["on"]["mrr@10"] == scored["off"]["mrr@10"] == 1.0


def test_the_evaluation_ranking_is_the_served_order(searcher):
    from search_api.searcher import SearchRequest

    for q in ("oil prices", "election results", "earthquake"):
        for collapse in (True, False):
            req = SearchRequest(q=q, k=40, collapse=collapse)
            hits = searcher.search(req).hits
            assert [(h.article_id, h.duplicates) for h in hits] == [
                (key, sorted(dups)) for key, dups in searcher.ranking(req)[:40]]


def test_a_keyword_ranking_embeds_no_query(searcher, monkeypatch):
    from search_api.searcher import SearchRequest

    embedded: list[str] = []
    encode = searcher.embedder.encode_query
    monkeypatch.setattr(searcher.embedder, "encode_query", lambda q: embedded.append(q) or encode(q))
    req = SearchRequest(q="oil prices", k=20, mode="keyword")
    order = [key for key, _ in searcher.ranking(req)][:20]
    assert order and embedded == []  # the evaluation's keyword mode costs no model call
    hits = searcher.search(req).hits  # served hits carry a relevance, which needs the query's vector
    assert [h.article_id for h in hits] == order and embedded == ["oil prices"]
    assert all(h.relevance is not None for h in hits)
    searcher.ranking(SearchRequest(q="oil prices", k=20, mode="hybrid"))
    assert embedded == ["oil prices", "oil prices"]


def test_queries_seen_in_training_are_headlines_of_their_own_judged_articles():
    queries = {"q1": "Oil  prices RISE", "q2": "cocoa", "q3": "wheat tender"}
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}, "q3": {"d": 1}}
    trained = {"a": headline_key("OIL PRICES RISE"), "b": headline_key("COCOA PRICES FALL"),
               "e": headline_key("WHEAT TENDER")}  # e is not q3's judged article
    assert seen_in_training(queries, qrels, trained) == ["q1"]
    assert seen_in_training(queries, qrels, {}) == []



def test_eval_and_compare_files_that_are_not_text_json_or_results_are_one_line_errors(tmp_path):
    binary, deep = tmp_path / "bin.dat", tmp_path / "deep.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    deep.write_text("[" * 100_000)
    for path in (binary, deep):
        with pytest.raises(SourceError, match=path.name):
            load_queries(path)
        with pytest.raises(SourceError, match=path.name):
            load_result(path)
    with pytest.raises(SourceError, match="not UTF-8"):
        load_qrels(binary)
    for name, modes in (("int", {"dense": 5}), ("text", {"dense": {"per_query": {"q1": {"ndcg@10": "high"}}}})):
        (tmp_path / f"{name}.json").write_text(json.dumps({"modes": modes}))
        with pytest.raises(SourceError, match="no per-query scores"):
            load_result(tmp_path / f"{name}.json")


def test_compare_needs_each_metric_in_both_results():
    def result(*metrics):
        return {"modes": {"dense": {"per_query": {f"q{i}": {m: i / 4 for m in metrics} for i in range(4)}}}}

    both, fewer = result("ndcg@10", "mrr@10"), result("ndcg@10")
    assert set(compare(both, fewer, metrics=["ndcg@10"])["dense"]) == {"ndcg@10"}
    for a, b, metrics in ((both, fewer, ["mrr@10"]), (fewer, both, ["mrr@10"]), (both, fewer, None)):
        with pytest.raises(ConfigError, match=r"no metric mrr@10 in every query of both results \(both hold ndcg@10\)"):
            compare(a, b, metrics=metrics)


def test_judged_queries_the_queries_file_lacks_are_not_scored_but_named(searcher):
    qrels = {"q1": {"wikinews-2019-001": 1}, "q2": {"wikinews-2019-002": 1}}
    result = evaluate(searcher, {"q1": "Magnitogorsk apartment collapse"}, qrels, ["keyword"])
    assert result["queries"] == 1 and result["judged_not_asked"] == ["q2"]
    assert set(result["modes"]["keyword"]["per_query"]) == {"q1"}
    assert result["modes"]["keyword"]["means"]["recall@100"] == 1.0


def test_eval_never_builds_over_an_index_it_did_not_build(corpus_index, corpus_settings, embedder):
    published = (corpus_index / "CURRENT").read_text()
    with pytest.raises(ConfigError, match="did not build .* --index-dir"):
        ensure_index([CORPUS], corpus_settings, embedder)
    assert (corpus_index / "CURRENT").read_text() == published
