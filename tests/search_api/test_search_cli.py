"""news-search from the shell: unusable paths and bad arguments are one line on stderr, before any work."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.helpers import CORPUS, free_port


def news_search(*args):
    return subprocess.run([sys.executable, "-m", "search_api.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_serve_with_a_file_as_index_dir_is_one_line(tmp_path):
    a_file = tmp_path / "README.md"
    a_file.write_text("not a folder")
    r = news_search("serve", "--index-dir", a_file, "--port", free_port())
    assert (r.returncode, r.stderr) == (1, f"news-search: error: {a_file / 'CURRENT'}: Not a directory\n")


def test_serve_on_a_port_in_use_or_an_unknown_host_is_one_line_before_loading_anything(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # No index there either: the address is checked first, so a taken port fails before a model loads.
        r = news_search("serve", "--index-dir", tmp_path / "none", "--port", port)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"news-search: error: cannot listen on 127.0.0.1:{port}: Address already in use; "
                               "another server listens there"), r.stderr
    r = news_search("serve", "--index-dir", tmp_path / "none", "--host", "no.such.host.invalid")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("news-search: error: cannot listen on no.such.host.invalid:8000: "), r.stderr


def test_eval_refuses_an_unwritable_out_before_evaluating(tmp_path):
    queries, qrels = tmp_path / "q.jsonl", tmp_path / "qrels.tsv"
    queries.write_text('{"_id": "q1", "text": "gas explosion"}\n')
    qrels.write_text("q1\twikinews-2019-001\t1\n")
    r = news_search("eval", "--corpus", CORPUS, "--queries", queries, "--qrels", qrels, "--index-dir",
                    tmp_path / "idx", "--out", tmp_path)
    assert (r.returncode, r.stderr) == (1, f"news-search: error: {tmp_path}: Is a directory\n")
    assert not (tmp_path / "idx").exists()  # failed before building or evaluating anything
    out = tmp_path / "results" / "run.json"
    assert news_search("eval", "--corpus", CORPUS, "--queries", queries, "--qrels", tmp_path / "missing.tsv",
                       "--index-dir", tmp_path / "idx",
                       "--out", out).returncode == 1
    assert not out.exists()  # the check leaves no empty result file behind


def test_argument_errors_are_one_line_and_exit_2_but_help_is_whole():
    r = news_search("query")
    assert (r.returncode, r.stderr) == (2, "news-search query: error: the following arguments are required: text "
                                           "(see news-search query --help)\n")
    r = news_search("serve", "--port", "eighty")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "invalid integer value: 'eighty'" in r.stderr
    r = news_search("query", "oil", "-k", "1_0")  # int() would read ten
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "invalid integer value: '1_0'" in r.stderr
    r = news_search("serve", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: news-search serve") and "--port" in r.stdout


def test_query_says_when_nothing_is_a_close_match(corpus_index):
    r = news_search("query", "xqzv plorb frumious snorkeldink", "--index-dir", corpus_index, "-k", "3")
    assert r.returncode == 0 and "3 hits from" in r.stdout and "No close matches; nearest shown" in r.stdout, r.stderr


def test_a_query_in_bytes_that_are_not_utf8_is_one_line_and_exit_1(corpus_index):
    r = subprocess.run([sys.executable, "-m", "search_api.cli", "query", b"oil \xff\xfe", "--index-dir", corpus_index],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "not valid UTF-8" in r.stderr and "Traceback" not in r.stderr


def test_a_query_of_control_characters_is_blank_in_the_shell_as_over_http(corpus_index):
    r = news_search("query", "\x01\x02", "--index-dir", corpus_index)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "empty or blank" in r.stderr, r.stderr
