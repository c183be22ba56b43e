"""news-index adapt: the headlines a corpus trains on, what is left out, and a few real training steps of a query
encoder that loads on every backend, leaves passages to the base model, resumes from a checkpoint and leaves a record."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from indexer.adapt import (
    headline_key,
    query_min_words,
    read_ids,
    read_trained,
    training_set,
    with_copies,
)
from indexer.adapt_train import STATE, AdaptOptions, adapt, last_checkpoint, prepare_out, ranking_loss
from indexer.clean import clean_article
from indexer.cli import main
from indexer.embed import Embedder, read_adapted
from indexer.errors import ConfigError, SourceError
from indexer.records import RawArticle
from indexer.settings import Settings
from search_api.cli import main as search_main
from tests.helpers import REUTERS, shared_data

TINY = AdaptOptions(max_length=48, batch_size=4, save_steps=2, max_articles=8, epochs=5)


def article(id_: str, title: str, body: str, day: int = 1):
    """A cleaned article, as the reader and cleaner make it."""
    return clean_article(RawArticle(id_, title, body, datetime(1987, 3, day), "wire", None, id_))


def test_ranking_loss_is_the_soft_max_share_of_a_querys_own_passages_and_ignores_padding():
    import torch

    bank = torch.eye(3)  # three passages; the query points at the first
    query = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    rows = torch.tensor([[0, -1], [1, 2]])  # the first query owns passage 0, the second passages 1 and 2
    expected = [np.log(np.e + 2) - 1, np.log(np.e + 2) - np.log(2)]
    assert float(ranking_loss(query, bank, rows, 1.0)) == pytest.approx(np.mean(expected), rel=1e-6)
    assert float(ranking_loss(query[:1], bank, rows[:1, :1], 1.0)) == pytest.approx(expected[0], rel=1e-6)
    # A lower temperature sharpens the soft-max: the first query's own passage takes nearly all of it.
    assert float(ranking_loss(query[:1], bank, rows[:1], 0.01)) < 1e-6


def reuters_sample(tmp_path: Path, n: int = 40) -> Path:
    """The first `n` Reuters articles as a corpus file of their own."""
    out = tmp_path / "reuters.jsonl"
    with gzip.open(shared_data(REUTERS / "corpus-00.jsonl.gz"), "rt", encoding="utf-8") as fh:
        out.write_text("".join(line for _, line in zip(range(n), fh)))
    return out


def test_headlines_skip_untitled_excluded_and_their_copies():
    body = "Oil prices rose sharply on Monday after the cartel agreed to cut output. Traders expect more gains."
    articles = [
        article("a", "OIL PRICES RISE", body),
        article("b", "CRUDE UP ON CARTEL CUT", body.replace("Monday", "monday") + " ", day=2),  # same body as a
        article("c", "", "A story without a headline gives no pair. It has two sentences."),
        article("d", "BANK RAISES PRIME RATE", "The bank raised its prime rate to 7.5 pct. It cited costs."),
        article("e", "WHEAT TENDER", "Egypt bought 200,000 tonnes of wheat in a tender. Shipment is due in May."),
    ]
    data = training_set(articles, exclude=["a"])
    assert data.titles == ["BANK RAISES PRIME RATE", "WHEAT TENDER"] and data.article_ids == ["d", "e"]
    assert data.untitled == 1 and data.excluded == 2 and data.used == 2
    # without the exclusion, one of the two same-body copies stays (their headlines are not each other's negatives)
    kept = training_set(articles)
    assert "OIL PRICES RISE" in kept.titles and "CRUDE UP ON CARTEL CUT" not in kept.titles and kept.copies == 1
    # what the model saw is recorded by id and headline hash, the excluded articles not among them
    assert set(data.trained) == {"d", "e"} and data.trained["d"] == headline_key("bank  raises prime rate ")
    assert set(kept.trained) == {"a", "d", "e"}
    sample = training_set(articles, max_articles=2, seed=3)
    assert sample.used == 2 and sample == training_set(articles, max_articles=2, seed=3)  # seeded


def test_queries_need_as_many_words_as_nearly_every_training_headline():
    five = ["ONE TWO THREE FOUR FIVE"]
    assert query_min_words(five * 198 + ["A B"] * 2) == 5  # 1% of the headlines may be shorter
    assert query_min_words(five * 197 + ["A B"] * 3) == 2  # 1.5% are: 2 words is what nearly all have
    assert query_min_words([]) == 0


def test_copies_are_found_transitively_and_only_within_the_time_window():
    words = " ".join(f"word{i}" for i in range(60))
    articles = [article("x", "T", words), article("y", "T", words + " extra1"),
                article("z", "T", words + " extra1 extra2"), article("far", "T", words, day=28),
                article("other", "T", "an unrelated body about something else entirely today")]
    assert with_copies(articles, ["x", "missing"]) == {"x", "y", "z"}


def test_ids_file_errors_are_one_line(tmp_path, capsys):
    ids = tmp_path / "ids.txt"
    ids.write_text("# judged\nreuters-1\n\n reuters-2 \n")
    assert read_ids(ids) == ["reuters-1", "reuters-2"]
    ids.write_bytes(b"\xef\xbb\xbfreuters-1\r\n  reuters-2  \n")  # a byte-order mark and Windows line ends
    assert read_ids(ids) == ["reuters-1", "reuters-2"]
    with pytest.raises(SourceError, match="cannot read the ids file"):
        read_ids(tmp_path / "missing.txt")
    assert main(["adapt", str(tmp_path), "--out", str(tmp_path / "m"), "--exclude-ids", str(tmp_path / "no")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ids file" in err


@pytest.mark.parametrize("flags", [
    ["--epochs", "0"], ["--epochs", "-1"], ["--epochs", "nan"], ["--epochs", "inf"], ["--train-batch-size", "0"],
    ["--learning-rate", "-1"], ["--learning-rate", "nan"], ["--seed", "-1"], ["--max-articles", "-5"],
    ["--max-articles", "0"], ["--max-length", "0"],
])
def test_flags_training_cannot_use_are_one_line_before_anything_is_written(tmp_path, capsys, flags):
    out = tmp_path / "m"
    assert main(["adapt", str(tmp_path), "--out", str(out), "--quiet", *flags]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flags[0] in err, err
    assert not out.exists()  # a corrected re-run into the same folder is not refused as "other arguments"


def test_a_corpus_too_small_for_two_steps_is_refused(tmp_path, capsys):
    corpus = tmp_path / "three.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"a{i}", "title": f"Headline {i}", "body": f"Body number {i}."}) + "\n"
                              for i in range(3)))
    assert main(["adapt", str(corpus), "--out", str(tmp_path / "m"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 training step" in err and not (tmp_path / "m").exists()


def test_no_pairs_and_foreign_out_folders_are_refused(tmp_path, capsys):
    corpus = tmp_path / "untitled.jsonl"
    corpus.write_text(json.dumps({"id": "u1", "title": "", "body": "No headline here. Just a body."}) + "\n")
    assert main(["adapt", str(corpus), "--out", str(tmp_path / "m"), "--quiet"]) == 1
    assert "no training pairs" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds other files"):
        prepare_out(busy, {"options": {}})
    fresh = tmp_path / "fresh"
    assert prepare_out(fresh, {"run": 1}) is False
    with pytest.raises(ConfigError, match="other arguments"):
        prepare_out(fresh, {"run": 2})


@pytest.fixture(scope="module")
def adapted(tmp_path_factory) -> tuple[Path, Path, Settings, dict]:
    """A few real training steps on 8 Reuters articles: (corpus file, model folder, settings, record)."""
    tmp = tmp_path_factory.mktemp("adapt")
    corpus = reuters_sample(tmp)
    settings = Settings(index_dir=tmp / "index", cache_dir=str(tmp / "cache"))
    out = tmp / "model"
    return corpus, out, settings, adapt([corpus], out, settings, TINY, progress=False)


@pytest.mark.slow
def test_adapted_model_embeds_on_torch_and_openvino_and_records(adapted, tmp_path):
    corpus, out, settings, record = adapted
    assert record["pairs"] == 8 and record["steps"] >= 2 * TINY.save_steps and record["loss"]
    assert record["passages"] >= 40  # every passage of the 40 articles is a candidate, not only the 8 trained
    assert record["fingerprint"] != record["base_fingerprint"] and record["corpus"]["articles_used"] == 8
    assert record["excluded_ids"]["not_in_corpus"] == 0  # the CLI warns when ids of the file are not articles here
    assert json.loads((out / STATE / "record.json").read_text()) == record
    assert not (out / STATE / "checkpoints").exists()  # done: no resumable state left behind
    assert len(read_trained(out)) == record["corpus"]["articles_used"]
    assert read_adapted(out) == {"passages": "sentence-transformers/all-MiniLM-L6-v2",
                                 "query_min_words": record["query_min_words"]} and record["query_min_words"] >= 2
    headline, short = "OIL PRICES RISE SHARPLY IN NEW YORK TRADING", "oil"
    passages = ["The bank raised its prime rate.", "Crude oil rose on Monday."]
    vectors = {}
    for backend in ("torch", "openvino"):
        exports = tmp_path / "exports"
        emb, base = (Embedder(m, backend=backend, export_dir=exports) for m in (out, None))
        assert emb.fingerprint == record["fingerprint"] and emb.passage_fingerprint == base.fingerprint
        assert emb.max_tokens == base.max_tokens  # trained shorter, reads as the base model
        assert emb.key == base.key  # passages are the base model's: one cache serves both indexes
        # passages and short queries get the base model's vectors; a headline-like query its own
        assert np.array_equal(emb.encode(passages), base.encode(passages))
        assert np.array_equal(emb.encode_query(short), base.encode_query(short))
        # on torch the base model's one forward pass serves passages and short queries (OpenVINO compiles apart)
        assert (emb.short_query_runtime is emb.runtime) == (backend == "torch")
        vectors[backend] = emb.encode_queries([headline, short])
        assert vectors[backend].shape == (2, 384)
        assert np.allclose(np.linalg.norm(vectors[backend], axis=1), 1, atol=1e-5)
        assert np.allclose(vectors[backend][0], emb.encode_query(headline), atol=1e-5)
        assert float(vectors[backend][0] @ base.encode_query(headline)) < 0.9999
    assert np.allclose(vectors["torch"], vectors["openvino"], atol=1e-3)
    # the same arguments again: the finished result is reused, not trained over
    assert adapt([corpus], out, settings, TINY, progress=False) == record


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(adapted, tmp_path, monkeypatch):
    import transformers

    corpus, uninterrupted, settings, whole = adapted
    out = tmp_path / "model"
    original = transformers.Trainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        original(self, *args, **kwargs)
        raise KeyboardInterrupt  # killed right after the first checkpoint

    monkeypatch.setattr(transformers.Trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        adapt([corpus], out, settings, TINY, progress=False)
    monkeypatch.undo()
    saved = last_checkpoint(out / STATE / "checkpoints")
    assert saved is not None and saved.name == f"checkpoint-{TINY.save_steps}"
    record = adapt([corpus], out, settings, TINY, progress=False)
    # the first loss logged after the resume averages only the steps since the checkpoint; later ones agree
    assert record["steps"] == whole["steps"] and record["loss"][1:] == whole["loss"][1:]
    # resumed, not restarted: the same batches and random state, so the model an uninterrupted run made
    texts = ["OIL PRICES RISE SHARPLY IN NEW YORK TRADING", "BANK RAISES ITS PRIME RATE TO 7.5 PCT"]
    assert np.allclose(Embedder(out, backend="torch").encode_queries(texts),
                       Embedder(uninterrupted, backend="torch").encode_queries(texts), atol=1e-5)


@pytest.mark.slow
def test_the_harness_warns_when_queries_are_headlines_the_model_was_adapted_on(adapted, tmp_path, capsys):
    corpus, out, settings, record = adapted
    articles = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()]
    queries, qrels = tmp_path / "q.jsonl", tmp_path / "qrels.tsv"
    queries.write_text("".join(json.dumps({"_id": f"q{i}", "text": a["title"].lower()}) + "\n"
                               for i, a in enumerate(articles)))
    qrels.write_text("".join(f"q{i}\t{a['id']}\t1\n" for i, a in enumerate(articles)))
    result = tmp_path / "r.json"
    args = ["eval", "--corpus", str(corpus), "--queries", str(queries), "--qrels", str(qrels), "--fields", "body",
            "--index-dir", str(tmp_path / "index"), "--mode", "dense", "--quiet", "--out", str(result),
            "--set", f"model={out}", "--set", f"cache_dir={tmp_path / 'cache'}"]
    assert search_main(args) == 0
    used = record["corpus"]["articles_used"]  # a sample of the corpus: only those headlines were seen
    assert 0 < used < len(articles) and json.loads(result.read_text())["seen_in_training"] == used
    assert f"{used} of {len(articles)} queries are headlines of judged articles" in capsys.readouterr().err

