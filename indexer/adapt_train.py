"""`news-index adapt`: train a query encoder on a corpus' own headlines against the base model's vectors of every
passage of the corpus, which stay the index's passage vectors; write a model folder.

State lives in <out>/.adapt (hidden, so the model's fingerprint ignores it): the run's arguments, checkpoints
while training (a killed run resumes from the last when re-run with the same arguments) and record.json.
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from indexer.adapt import (
    STATE,
    corpus_hash,
    ids_hash,
    query_min_words,
    read_ids,
    training_set,
    write_trained,
)
from indexer.cache import open_cache
from indexer.embed import ADAPTED_FILE, Embedder
from indexer.errors import ConfigError, SourceError
from indexer.files import write_whole
from indexer.models import DEFAULT_MODEL, HUB_PREFIX, minilm_folder
from indexer.records import Article
from indexer.settings import Settings
from indexer.steps import Prepared, chunk_all, embed_all, embedding_texts, read_corpus

LIBRARIES = ("torch", "transformers", "sentence-transformers", "datasets", "accelerate")


@dataclass(frozen=True)
class AdaptOptions:
    """How to adapt; every field is recorded, and a re-run resumes only with the same ones."""

    epochs: float = 1.0
    max_articles: int = 0  # 0: every article with a headline
    max_length: int = 64  # word pieces of a training headline
    batch_size: int = 32  # headlines per step (every passage of the corpus is each one's candidate)
    learning_rate: float = 3e-5
    temperature: float = 0.05  # of the soft-max over the corpus' passages (MultipleNegativesRankingLoss' scale 20)
    seed: int = 13
    save_steps: int = 20  # checkpoint every this many steps

    def __post_init__(self) -> None:
        """ConfigError naming the flag of the first value training cannot use, before anything is written."""
        checks = [("--epochs", self.epochs, 0, 1000, False), ("--max-articles", self.max_articles, 0, 10**9, True),
                  ("--max-length", self.max_length, 1, 512, True), ("--train-batch-size", self.batch_size, 1, 4096, True),
                  ("--learning-rate", self.learning_rate, 0, 1, False), ("--seed", self.seed, 0, 2**32 - 1, True),
                  ("temperature", self.temperature, 0, 10, False), ("save_steps", self.save_steps, 1, 10**9, True)]
        for flag, value, low, high, whole in checks:
            positive = not whole and low == 0  # a rate, a temperature or a number of epochs: above 0
            fine = math.isfinite(value) and low <= value <= high and not (positive and value == 0)
            if not fine or (whole and value != int(value)):
                kind = "a whole number" if whole else "a number"
                span = f"above 0 and at most {high:,}" if positive else f"from {low:,} to {high:,}"
                raise ConfigError(f"{flag} must be {kind} {span}, not {value!r}")


def training_steps(headlines: int, options: AdaptOptions) -> int:
    """Optimizer steps of a run, as `_train` sets the trainer up: the headlines repeated ceil(epochs) times, then
    that fraction of one pass over them."""
    repeat = math.ceil(options.epochs)
    return math.ceil(math.ceil(headlines * repeat / options.batch_size) * options.epochs / repeat)


def ranking_loss(query, bank, rows, temperature: float):  # noqa: ANN001, ANN201 - torch loads lazily
    """Each query's soft-max over every passage of the corpus (the base model's vectors `bank`), its own
    article's passages (`rows` of the bank, one row of indices a query, -1 padded) pooled: the encoder learns to
    find the article a headline was written for among all the others, in the space the index's passages live in."""
    import torch

    logits = query @ bank.to(query.dtype).T / temperature
    own = logits.gather(1, rows.clamp(min=0)).masked_fill(rows < 0, float("-inf"))
    return (torch.logsumexp(logits, 1) - torch.logsumexp(own, 1)).mean()


def query_loss(model, bank, positives, temperature: float):  # noqa: ANN001, ANN201 - torch loads lazily
    """`ranking_loss` as a sentence-transformers loss: each headline's label is its row of `positives`."""
    import torch
    from sentence_transformers.base.losses.merged_forward import embed_columns

    class QueryLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, features, labels):  # noqa: ANN001, ANN202
            (query,) = embed_columns(self.model, features)
            return ranking_loss(query, bank, positives[labels.long()], temperature)

    return QueryLoss()


def prepare_out(out: Path, run: dict[str, Any]) -> bool:
    """Claim `out` for this run (True if it already holds the finished result). A folder holding anything else,
    or another run's state, is refused rather than overwritten."""
    state = out / STATE
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; give --out a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        if not (state / "run.json").is_file():
            raise ConfigError(f"{out} holds other files; give --out a new or empty folder")
        if json.loads((state / "run.json").read_text()) != run:
            raise ConfigError(f"{out} holds an adaptation with other arguments or another corpus; re-run with "
                              "those, or give --out a new folder (or delete this one)")
    state.mkdir(parents=True, exist_ok=True)
    (state / "run.json").write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")
    return (state / "record.json").is_file()


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint the trainer left in `folder`."""
    found = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)




def passage_bank(articles: Sequence[Article], ids: Sequence[str], settings: Settings,
                 progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """The base model's vectors of every passage of the corpus, chunked as a body-only index chunks them (a
    headline must find its article without its own words in it), and, for each of `ids`, its passages' rows
    (-1 padded)."""
    body = settings.replace(fields="body", model=DEFAULT_MODEL)
    base = Embedder.from_settings(body)
    prepared = Prepared(list(articles), chunk_all(articles, body, base))
    # through the index's embedder and cache: what a build of the base model embedded is not embedded again
    vectors, _ = embed_all(embedding_texts(prepared, body), base, open_cache(body, base), progress=progress)
    rows: dict[str, list[int]] = {}
    for row, passage in enumerate(prepared.passages):
        rows.setdefault(passage.article_id, []).append(row)
    width = max((len(rows.get(i, ())) for i in ids), default=1)
    positives = np.full((len(ids), max(width, 1)), -1, dtype=np.int64)
    for k, article_id in enumerate(ids):
        found = rows.get(article_id, [])
        positives[k, : len(found)] = found
    return vectors, positives


def adapt(paths: Sequence[Path], out: Path, settings: Settings, options: AdaptOptions = AdaptOptions(),
          exclude_file: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Train a query encoder on the corpus under `paths` into `out`; returns the training record."""
    started = time.perf_counter()
    excluded = read_ids(exclude_file) if exclude_file else []
    corpus = read_corpus(paths, progress=progress)
    data = training_set(corpus.articles, excluded, max_articles=options.max_articles, seed=options.seed)
    if not data.titles:
        raise SourceError(f"no training pairs in {', '.join(map(str, paths))}: {data.articles} articles, "
                          f"{data.untitled} without a title, {data.excluded} excluded; adapting needs articles "
                          "with headlines")
    steps = training_steps(len(data.titles), options)
    if steps < 2:
        raise SourceError(f"{len(data.titles)} headlines in batches of {options.batch_size} over {options.epochs:g} "
                          f"epoch(s) make {steps} training step: the first step's learning rate is 0 (warm-up), so "
                          "nothing would be learned; give more articles, more --epochs or a smaller --train-batch-size")
    base = Embedder(minilm_folder(), backend="torch")
    run = {"options": dataclasses.asdict(options), "corpus": corpus_hash(corpus.articles),
           "excluded": ids_hash(excluded), "base": base.fingerprint}
    state = out / STATE
    if prepare_out(out, run):
        return json.loads((state / "record.json").read_text())
    t0 = time.perf_counter()
    bank, positives = passage_bank(corpus.articles, data.article_ids, settings, progress)
    teacher_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, history, steps, used = _train(data.titles, (bank, positives), state, options, settings, progress)
    train_seconds = time.perf_counter() - t0
    model.save(str(out), create_model_card=False)
    shortest = query_min_words(data.titles)
    write_whole(out / ADAPTED_FILE, json.dumps({"passages": HUB_PREFIX + DEFAULT_MODEL,
                                                "query_min_words": shortest}, indent=2) + "\n")
    write_trained(out, data.trained)
    shutil.rmtree(state / "checkpoints", ignore_errors=True)
    record = {
        "base_model": HUB_PREFIX + DEFAULT_MODEL, "base_fingerprint": base.fingerprint,
        "fingerprint": Embedder(out, backend="torch").fingerprint,
        "corpus": {"paths": [str(p) for p in paths], "hash": run["corpus"], "articles": data.articles,
                   "untitled": data.untitled, "same_body_copies": data.copies, "articles_used": data.used},
        "excluded_ids": {"given": len(set(excluded)), "hash": run["excluded"], "left_out_with_copies": data.excluded,
                         "not_in_corpus": len(set(excluded) - {a.id for a in corpus.articles})},
        "pairs": len(data.titles), "passages": len(bank), "query_min_words": shortest,
        "options": run["options"], "precision": used, "steps": steps, "loss": history,
        "seconds": {"total": round(time.perf_counter() - started, 1), "teacher": round(teacher_seconds, 1),
                    "train": round(train_seconds, 1)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "versions": {name: version(name) for name in LIBRARIES},
    }
    (state / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _train(titles: list[str], bank, state: Path, options: AdaptOptions, settings: Settings,  # noqa: ANN001
           progress: bool):  # noqa: ANN202
    """Run (or resume) the trainer on the headlines for ceil(epochs) passes (each labelled with its article's row
    of the positives table); the model, the loss curve, the steps and the precision it ran in."""
    try:
        from datasets import Dataset
    except ImportError:
        raise ConfigError("news-index adapt needs the packages datasets and accelerate: "
                          "pip install 'newsearch[adapt]'") from None
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    from indexer.backends import load_sentence_transformer, openvino_bf16_capable

    model = load_sentence_transformer(minilm_folder(), settings.threads)
    reads = model.max_seq_length
    model.max_seq_length = options.max_length
    repeat = math.ceil(options.epochs)
    columns = {"anchor": titles * repeat, "label": list(range(len(titles))) * repeat}
    vectors, positives = bank
    loss = query_loss(model, torch.from_numpy(vectors), torch.from_numpy(positives), options.temperature)
    bf16 = openvino_bf16_capable()  # the CPU's bf16 instructions, as the embedding backends check them
    args = SentenceTransformerTrainingArguments(
        output_dir=str(state / "checkpoints"), num_train_epochs=options.epochs / repeat,
        per_device_train_batch_size=options.batch_size, learning_rate=options.learning_rate, warmup_ratio=0.1,
        seed=options.seed, data_seed=options.seed, bf16=bf16, use_cpu=True, batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="steps", save_steps=options.save_steps, save_total_limit=1, logging_steps=5,
        report_to="none", disable_tqdm=not progress, dataloader_num_workers=0)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=loss)
    resume = last_checkpoint(state / "checkpoints")
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    model.max_seq_length = reads  # saved with the model: queries are read as the base model reads them
    history = [[h["step"], round(h["loss"], 4)] for h in trainer.state.log_history if "loss" in h]
    return model, history, trainer.state.global_step, "bf16" if bf16 else "fp32"
