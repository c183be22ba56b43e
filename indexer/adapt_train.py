"""`news-index adapt`: fine-tune the packaged model on a corpus' own (headline -> passage) pairs with in-batch
negatives, anchored to the base model's vectors of passages and short phrases, and write a model folder.

State lives in <out>/.adapt (hidden, so the model's fingerprint ignores it): the run's arguments, checkpoints
while training (a killed run resumes from the last when re-run with the same arguments) and record.json.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
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
    corpus_phrases,
    draw_pairs,
    ids_hash,
    read_ids,
    training_set,
    write_trained,
)
from indexer.cache import open_cache
from indexer.embed import Embedder
from indexer.errors import ConfigError, SourceError
from indexer.models import DEFAULT_MODEL, HUB_PREFIX, minilm_folder
from indexer.settings import Settings
from indexer.steps import embed_all, read_corpus

LIBRARIES = ("torch", "transformers", "sentence-transformers", "datasets", "accelerate")


@dataclass(frozen=True)
class AdaptOptions:
    """How to adapt; every field is recorded, and a re-run resumes only with the same ones."""

    epochs: float = 1.0
    # adapt.draw_pairs: one passage per article and epoch; as good per step as every passage ("all", ~5 pairs an
    # article) and a fifth of the steps (bench/RESULTS.md, "Adapted model": one pair per article)
    pairs: str = "draw"
    max_articles: int = 0  # 0: every article that gives pairs
    max_length: int = 64  # word pieces read while training (passages chunked to fit); 64 and 16: the measured recipe
    batch_size: int = 16  # pairs per step: each headline's negatives are the other 15 passages
    learning_rate: float = 3e-5
    distill_weight: float = 10.0  # weight of the pull toward the base model's vectors; 0: plain MNRL
    phrases: int = 2000  # corpus phrases anchored to their base vectors
    seed: int = 13
    save_steps: int = 20  # checkpoint every this many steps


def anchored_loss(model, weight: float):  # noqa: ANN001, ANN201 - torch and sentence-transformers load lazily
    """MultipleNegativesRankingLoss on (headline, passage), plus `weight` times the mean cosine distance of the
    passage's and a phrase's vectors from the base model's (the labels): the headline moves toward its body
    while the space passages and topic-like phrases live in stays where the base model put it."""
    import torch
    from sentence_transformers.base.losses.merged_forward import embed_columns
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    class AnchoredLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.ranking = MultipleNegativesRankingLoss(model)

        def forward(self, features, labels):  # noqa: ANN001, ANN202
            anchor, positive, phrase = embed_columns(self.model, features)
            ranking = self.ranking.compute_loss_from_embeddings([anchor, positive], labels)
            cos = torch.nn.functional.cosine_similarity
            drift = (2 - cos(positive, labels[:, 0]) - cos(phrase, labels[:, 1])).mean() / 2
            return ranking + weight * drift

    return AnchoredLoss()


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


def teacher_vectors(texts: list[str], settings: Settings, progress: bool) -> np.ndarray:
    """The base model's vectors of `texts`, through the index's embedder and cache (what a build of the base
    model already embedded is not embedded again)."""
    teacher = Embedder.from_settings(settings.replace(model=DEFAULT_MODEL))
    vectors, _ = embed_all(texts, teacher, open_cache(settings, teacher), progress=progress)
    return vectors


def adapt(paths: Sequence[Path], out: Path, settings: Settings, options: AdaptOptions = AdaptOptions(),
          exclude_file: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Fine-tune the packaged model on the corpus under `paths` into `out`; returns the training record."""
    started = time.perf_counter()
    excluded = read_ids(exclude_file) if exclude_file else []
    corpus = read_corpus(paths, progress=progress)
    base = minilm_folder()
    counter = Embedder(base, backend="torch")
    data = training_set(corpus.articles, counter.count_tokens, options.max_length - 2, excluded,
                        max_articles=options.max_articles, seed=options.seed)
    anchors, positives = draw_pairs(data, options.pairs, math.ceil(options.epochs), options.seed)
    if not anchors:
        raise SourceError(f"no training pairs in {', '.join(map(str, paths))}: {data.articles} articles, "
                          f"{data.untitled} without a title, {data.excluded} excluded; adapting needs articles "
                          "with headlines")
    run = {"options": dataclasses.asdict(options), "corpus": corpus_hash(corpus.articles),
           "excluded": ids_hash(excluded), "base": counter.fingerprint}
    state = out / STATE
    if prepare_out(out, run):
        return json.loads((state / "record.json").read_text())
    phrases = corpus_phrases(corpus.articles, options.phrases, _stop_words())
    t0 = time.perf_counter()
    labels = _labels(positives, phrases, options, settings, progress)
    teacher_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, history, steps, used = _train((anchors, positives), phrases, labels, state, options, settings, progress)
    train_seconds = time.perf_counter() - t0
    model.save(str(out), create_model_card=False)
    write_trained(out, data.trained)
    shutil.rmtree(state / "checkpoints", ignore_errors=True)
    record = {
        "base_model": HUB_PREFIX + DEFAULT_MODEL, "base_fingerprint": counter.fingerprint,
        "fingerprint": Embedder(out, backend="torch").fingerprint,
        "corpus": {"paths": [str(p) for p in paths], "hash": run["corpus"], "articles": data.articles,
                   "untitled": data.untitled, "same_body_copies": data.copies, "articles_used": data.used},
        "excluded_ids": {"given": len(set(excluded)), "hash": run["excluded"], "left_out_with_copies": data.excluded},
        "pairs": len(anchors), "pairs_available": data.available, "phrases": len(phrases),
        "options": run["options"], "precision": used, "steps": steps, "loss": history,
        "seconds": {"total": round(time.perf_counter() - started, 1), "teacher": round(teacher_seconds, 1),
                    "train": round(train_seconds, 1)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "versions": {name: version(name) for name in LIBRARIES},
    }
    (state / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # a sentence-transformers dependency

    return frozenset(ENGLISH_STOP_WORDS)


def _labels(positives: list[str], phrases: list[str], options: AdaptOptions, settings: Settings,
            progress: bool) -> tuple[np.ndarray, list[int]] | None:
    """Per pair, the base vectors of its passage and of a phrase (phrases dealt round, shuffled by the seed),
    and which phrase each pair got; None without the anchor."""
    if not options.distill_weight or not phrases:
        return None
    vectors = teacher_vectors(positives + phrases, settings, progress)
    order = list(range(len(phrases)))
    random.Random(options.seed).shuffle(order)
    picked = [order[i % len(order)] for i in range(len(positives))]
    return np.stack([vectors[: len(positives)], vectors[len(positives) :][picked]], axis=1), picked


def _train(pairs, phrases, labels, state: Path, options: AdaptOptions, settings: Settings,  # noqa: ANN001
           progress: bool):  # noqa: ANN202
    """Run (or resume) the trainer on (headlines, passages) `pairs`, drawn for ceil(epochs) passes; the model,
    the loss curve, the steps and the precision it ran in."""
    try:
        from datasets import Dataset
    except ImportError:
        raise ConfigError("news-index adapt needs the packages datasets and accelerate: "
                          "pip install 'newsearch[adapt]'") from None
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from indexer.backends import load_sentence_transformer, openvino_bf16_capable

    model = load_sentence_transformer(minilm_folder(), settings.threads)
    reads = model.max_seq_length
    model.max_seq_length = options.max_length
    columns = {"anchor": pairs[0], "positive": pairs[1]}
    if labels is not None:
        vectors, picked = labels
        columns["phrase"] = [phrases[i] for i in picked]
        columns["label"] = vectors.tolist()
        loss = anchored_loss(model, options.distill_weight)
    else:
        loss = MultipleNegativesRankingLoss(model)
    bf16 = openvino_bf16_capable()  # the CPU's bf16 instructions, as the embedding backends check them
    args = SentenceTransformerTrainingArguments(
        output_dir=str(state / "checkpoints"), num_train_epochs=options.epochs / math.ceil(options.epochs),
        per_device_train_batch_size=options.batch_size, learning_rate=options.learning_rate, warmup_ratio=0.1,
        seed=options.seed, data_seed=options.seed, bf16=bf16, use_cpu=True, batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="steps", save_steps=options.save_steps, save_total_limit=1, logging_steps=5,
        report_to="none", disable_tqdm=not progress, dataloader_num_workers=0)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=loss)
    resume = last_checkpoint(state / "checkpoints")
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    model.max_seq_length = reads  # saved with the model: an index built with it reads what the base model reads
    history = [[h["step"], round(h["loss"], 4)] for h in trainer.state.log_history if "loss" in h]
    return model, history, trainer.state.global_step, "bf16" if bf16 else "fp32"
