"""news-index from the shell: exit codes, one-line errors, summaries, versions side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from indexer.cli import build_parser
from indexer.jobs import update_command
from indexer.settings import Settings
from tests.helpers import SEED, news_index


@pytest.mark.slow
def test_build_twice_publishes_a_second_version_and_reports_skips(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "seed.txt").write_bytes(SEED.read_bytes())
    (corpus / "bad.jsonl").write_text('{"id": "w1", "title": "Ok", "body": "Wheat prices rose in Kansas."}\n{broken\n')
    first = news_index("build", corpus, "--index-dir", tmp_path / "idx", "--quiet")
    assert first.returncode == 0, first.stderr
    assert "2 articles" in first.stdout and f"{corpus / 'bad.jsonl'}:2: malformed JSON" in first.stderr
    second = news_index("build", corpus, "--index-dir", tmp_path / "idx", "--quiet")
    assert second.returncode == 0
    assert "(0 embedded)" in second.stdout  # every passage came from the embedding cache
    stats = json.loads(news_index("stats", "--index-dir", tmp_path / "idx").stdout)
    assert len(stats["versions"]) == 2 and stats["published"] == stats["versions"][-1]
    strict = news_index("build", corpus, "--index-dir", tmp_path / "idx", "--quiet", "--strict")
    assert strict.returncode == 1 and strict.stderr.count("\n") == 1 and "--strict" in strict.stderr


def test_missing_corpus_is_one_line_and_exit_1(tmp_path):
    r = news_index("build", tmp_path / "missing", "--index-dir", tmp_path / "idx")
    assert r.returncode == 1
    assert r.stderr.strip() == f"news-index: error: {tmp_path / 'missing'}: no such file or directory; check the corpus path"
    assert not (tmp_path / "idx").exists()


def test_stats_without_index_and_bad_setting(tmp_path):
    r = news_index("stats", "--index-dir", tmp_path)
    assert r.returncode == 1 and "no index published" in r.stderr
    r = news_index("build", SEED, "--index-dir", tmp_path, "--chunk-tokens", "5")
    assert r.returncode == 1 and "NEWSEARCH_CHUNK_TOKENS" in r.stderr


def test_an_unusable_index_dir_is_one_line_naming_the_path(tmp_path):
    a_file = tmp_path / "notes.md"
    a_file.write_text("not a folder")
    r = news_index("stats", "--index-dir", a_file)
    assert (r.returncode, r.stderr) == (1, f"news-index: error: {a_file / 'CURRENT'}: Not a directory\n")
    r = news_index("build", SEED, "--index-dir", a_file, "--quiet")
    assert (r.returncode, r.stderr) == (1, f"news-index: error: {a_file}: is a file, not a folder\n")
    r = news_index("gc", "--index-dir", a_file)
    assert (r.returncode, r.stderr) == (1, f"news-index: error: {a_file} is not a folder; nothing to collect\n")
    assert a_file.read_text() == "not a folder"


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs, where nobody may create folders")
def test_an_index_dir_that_cannot_be_created_is_one_line():
    r = news_index("build", SEED, "--index-dir", "/sys/newsearch-index", "--quiet")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("news-index: error: /sys/newsearch-index: ")
    assert "Permission denied" in r.stderr or "Operation not permitted" in r.stderr


def test_a_failing_update_without_quiet_is_still_one_line_when_stderr_is_not_a_terminal(tmp_path):
    assert news_index("build", SEED, "--index-dir", tmp_path / "idx").returncode == 0
    (tmp_path / "empty").mkdir()
    r = news_index("update", tmp_path / "empty", "--index-dir", tmp_path / "idx")  # no --quiet: bars would show
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("news-index: error: ")


def test_argument_errors_are_one_line_and_exit_2_but_help_is_whole():
    r = news_index("build", SEED, "--chunk-tokens", "x")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("news-index build: error: argument --chunk-tokens: invalid integer value: 'x' "
                        "(see news-index build --help)\n")
    r = news_index("gc", "--grace", "3_600")  # float() would read 3600
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "invalid number value: '3_600'" in r.stderr
    r = news_index()
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "required: command" in r.stderr
    r = news_index("gc", "--frobnicate")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unrecognized arguments: --frobnicate" in r.stderr
    r = news_index("build", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: news-index build") and "--chunk-tokens" in r.stdout


def test_a_negative_gc_grace_is_refused_like_the_variable(tmp_path):
    r = news_index("gc", "--grace", "-1", "--index-dir", tmp_path)
    assert r.returncode == 1 and "NEWSEARCH_GC_GRACE_SECONDS must be between 0 and" in r.stderr


def test_a_reindex_job_reads_paths_that_look_like_flags_as_paths(tmp_path):
    settings = Settings(index_dir=tmp_path / "idx", model="/models/m")
    paths = ["--delete-missing", "-h", "corpus/a.jsonl"]
    cmd = update_command(settings, paths, delete_missing=False, status=tmp_path / "job.json")
    assert cmd[:4] == [sys.executable, "-m", "indexer.cli", "update"]
    args = build_parser().parse_args(cmd[3:])
    assert args.paths == [Path(p) for p in paths] and not args.delete_missing
    assert (args.index_dir, args.model, args.status_file) == (tmp_path / "idx", "/models/m", tmp_path / "job.json")
    args = build_parser().parse_args(update_command(settings, ["c"], True, tmp_path / "job.json")[3:])
    assert args.paths == [Path("c")] and args.delete_missing


def test_a_damaged_embedding_cache_is_one_line(tmp_path):
    cache = tmp_path / "idx" / "cache" / "embeddings.sqlite"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"this is not an SQLite database, it was overwritten" * 100)
    r = news_index("build", SEED, "--index-dir", tmp_path / "idx", "--quiet")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("news-index: error: SQLite: file is not a database;") and "can be deleted" in r.stderr


def test_output_into_a_closed_pipe_stops_quietly(corpus_index):
    # `news-index stats | head -1`: the reader leaves before the output is written.
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as most shells run it
    proc = subprocess.Popen([sys.executable, "-m", "indexer.cli", "stats", "--index-dir", str(corpus_index)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=buffered)
    proc.stdout.close()
    _, err = proc.communicate(timeout=600)
    assert (proc.returncode, err) == (141, "")
