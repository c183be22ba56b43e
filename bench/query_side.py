"""Benchmark (issue 13): adapt only the query side. The base model's passage vectors of the whole corpus stay as
they are (the index is the base index); a copy of the model learns to embed each training headline near its own
article's passages against every other passage of the corpus (soft-max over the whole bank, the article's
passages pooled); "anchored" keeps corpus phrases at their base vectors, "titleterms" also trains short queries:
headline words and pairs, each against the articles whose headline holds it (headline_phrases).
Variants are fixed here before any run; choose on `--half tune`, confirm on `--half check`.
Run: `NEWSEARCH_CACHE_DIR=/work/var-shared/cache .venv/bin/python -m bench.query_side --work W --tag T`
"""

from __future__ import annotations

import argparse
import math
import random
import re
import resource
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.adapt_reuters import dev_half, paired
from bench.common import REUTERS, SETS, commit, machine_facts, result_path, write_result
from bench.dual_dense import fused, print_sets
from indexer.adapt import read_ids, training_set
from indexer.adapt_train import ranking_loss
from indexer.embed import Embedder
from indexer.models import minilm_folder
from indexer.settings import Settings
from indexer.steps import read_corpus
from search_api.evaluation.metrics import mean_scores, per_query
from search_api.ranking.query_words import query_words
from search_api.searcher import Searcher

# name -> (anchor weight, learning rate, batch, epochs, temperature, headline phrases); decided before the first run
# ("titleterms", 2026-12-07 evening, before any of its scores: short queries learned from headline words too)
VARIANTS = {
    "anchored": (10.0, 3e-5, 32, 1.0, 0.05, False),
    "plain": (0.0, 3e-5, 32, 1.0, 0.05, False),
    "titleterms": (0.0, 3e-5, 32, 1.0, 0.05, True),
}
PHRASE_MIN_TITLES = 5  # a headline phrase trains when this many training headlines hold it
PHRASE_MAX_SHARE = 0.05  # and at most this share of them (wider words say little about what an article is about)
PHRASE_ARTICLES = 64  # positives per phrase: a seeded sample of the articles whose headline holds it


def open_base(work: Path, fields: str) -> Searcher:
    """A searcher over the base model's whole-corpus index of `fields`."""
    settings = Settings.from_env(index_dir=work / f"base-full-{fields.replace('+', '-')}", fields=fields, model="")
    return Searcher.open(settings.index_dir, settings, Embedder.from_settings(settings))


def train(variant: str, work: Path, exclude: Path, out: Path, threads: int) -> dict:
    """Train the query encoder of one variant against the body index's passage bank; its record."""
    import torch
    from sentence_transformers import SentenceTransformer

    weight, lr, batch, epochs, tau, with_phrases = VARIANTS[variant]
    torch.manual_seed(13)
    torch.set_num_threads(threads)
    started = time.perf_counter()
    corpus = read_corpus([REUTERS], progress=False)
    data = training_set(corpus.articles, read_ids(exclude))
    bank_searcher = open_base(work, "body")
    try:
        pids = bank_searcher._pids
        bank = torch.from_numpy(np.ascontiguousarray(bank_searcher.version.vectors.get(pids), dtype=np.float32))
        rows = {}
        for aid in data.article_ids:
            if aid not in bank_searcher._num_of:  # the collection's README, read as an article, is not indexed
                continue
            found, _ = bank_searcher.passages_of(np.array([bank_searcher._num_of[aid]]))
            rows[aid] = torch.from_numpy(np.searchsorted(pids, found))
    finally:
        bank_searcher.close()
    pairs = [(title, rows[aid]) for title, aid in zip(data.titles, data.article_ids) if len(rows.get(aid, ()))]
    headline_pairs = len(pairs)
    if with_phrases:
        held = [(t, a) for t, a in zip(data.titles, data.article_ids) if len(rows.get(a, ()))]
        pairs += [(phrase, torch.cat([rows[a] for a in aids]))
                  for phrase, aids in headline_phrases([t for t, _ in held], [a for _, a in held], seed=13)]
    phrases = widespread_phrases(corpus.articles, 2000) if weight else []
    model = SentenceTransformer(str(minilm_folder()), device="cpu")
    model.max_seq_length = 64
    if weight:
        with torch.no_grad():
            phrase_base = torch.from_numpy(model.encode(phrases, batch_size=64, normalize_embeddings=True))
    order = list(range(len(pairs)))
    steps_per_epoch = math.ceil(len(pairs) / batch)
    steps = math.ceil(steps_per_epoch * epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    warm = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    rng = random.Random(13)
    history = []
    model.train()
    step = 0
    while step < steps:
        rng.shuffle(order)
        for start in range(0, len(order), batch):
            if step >= steps:
                break
            chosen = [pairs[i] for i in order[start : start + batch]]
            q = encode(model, [t for t, _ in chosen])
            own = torch.nn.utils.rnn.pad_sequence([rows for _, rows in chosen], batch_first=True, padding_value=-1)
            loss = ranking_loss(q, bank, own, tau)
            if weight:
                picked = [rng.randrange(len(phrases)) for _ in chosen]
                drift = 1 - (encode(model, [phrases[i] for i in picked]) * phrase_base[picked]).sum(1)
                loss = loss + weight * drift.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % 20 == 0 or step == steps:
                history.append([step, round(float(loss), 4)])
                print(f"{variant} step {step}/{steps} loss {float(loss):.4f} {time.perf_counter() - started:.0f}s",
                      flush=True)
    model.eval()
    model.save(str(out), create_model_card=False)
    return {"variant": variant, "options": dict(zip(("anchor_weight", "lr", "batch", "epochs", "temperature",
                                                      "headline_phrases"),
                                                      VARIANTS[variant])),
            "pairs": len(pairs), "headline_pairs": headline_pairs, "bank_passages": len(bank), "steps": steps, "loss": history,
            "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def phrases_of(text: str) -> set[str]:
    """A text's distinct lower-case words and two-word phrases without stop words (both variants' phrases)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]+", text)]
    found = {w for w in words if w not in ENGLISH_STOP_WORDS}
    found.update(f"{a} {b}" for a, b in zip(words, words[1:]) if a not in ENGLISH_STOP_WORDS and b not in ENGLISH_STOP_WORDS)
    return found


def headline_phrases(titles: list[str], article_ids: list[str], seed: int) -> list[tuple[str, list[str]]]:
    """The titleterms variant's short queries: each word and two-word phrase of the training headlines without stop
    words (lower-case) held by PHRASE_MIN_TITLES to PHRASE_MAX_SHARE of them, with the articles whose headline holds
    it (a seeded sample of PHRASE_ARTICLES)."""
    holders: dict[str, list[str]] = {}
    for title, article_id in zip(titles, article_ids, strict=True):
        for phrase in phrases_of(title):
            holders.setdefault(phrase, []).append(article_id)
    rng, most = random.Random(seed), PHRASE_MAX_SHARE * len(titles)
    return [(p, ids if len(ids) <= PHRASE_ARTICLES else rng.sample(ids, PHRASE_ARTICLES))
            for p, ids in sorted(holders.items()) if PHRASE_MIN_TITLES <= len(ids) <= most]


def widespread_phrases(articles: list, limit: int) -> list[str]:
    """The anchored variant's phrases: the corpus' most widespread words and two-word phrases without stop words
    (what `news-index adapt` anchored before f1e9eab)."""
    counts: Counter[str] = Counter()
    for article in articles:
        counts.update(phrases_of(article.body))
    return [p for p, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit] if n > 1]


def encode(model, texts: list[str]):  # noqa: ANN001, ANN201 - torch loads lazily
    """Normalised sentence vectors with gradients."""
    features = model.tokenize(texts)
    return model(features)["sentence_embedding"]


def score_set(name: str, half: str, work: Path, models: dict[str, Path]) -> dict:
    """Base hybrid and dense against each query encoder's, over the base index of the set's fields."""
    queries, qrels = dev_half(name, half)
    searcher = open_base(work, SETS[name])
    s = searcher.settings
    encoders = {label: Embedder(path, backend="torch") for label, path in models.items()}
    runs: dict[str, dict[str, list[str]]] = {}
    try:
        for qid, text in queries.items():
            if qid not in qrels:
                continue
            keyword = [aid for aid, _ in searcher.keyword_articles(query_words(text, s.keyword_stop_words),
                                                                    s.candidates)]
            for label, qvec in [("base", searcher.embedder.encode_query(text))] + [
                    (label, enc.encode_query(text)) for label, enc in encoders.items()]:
                dense = searcher._dense_articles(qvec, s.candidates, None, None)[0]
                for mode, weights in (("dense", (1.0, 0.0, 0.0)), ("hybrid", (1.0, 0.0, 1.0))):
                    runs.setdefault(f"{label}-{mode}", {})[qid] = fused((dense, [], keyword), weights, s.rrf_k,
                                                                       searcher._dup_group)
    finally:
        searcher.close()
    metric = {"headlines": "mrr@10", "topics": "ndcg@10"}[name]
    scores = {v: per_query(r, qrels) for v, r in runs.items()}
    qids = sorted(scores["base-hybrid"])
    return {"queries": len(qids), "metric": metric,
            "means": {v: round(mean_scores(sc)[metric], 4) for v, sc in scores.items()},
            "vs_base": {v: paired([scores[f"base-{v.rsplit('-', 1)[1]}"][q][metric] for q in qids],
                                  [scores[v][q][metric] for q in qids]) for v in scores if not v.startswith("base-")},
            "per_query": {v: {q: sc[q][metric] for q in qids} for v, sc in scores.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="folder of the base whole-corpus indexes (base-full-*)")
    ap.add_argument("--models", type=Path, required=True, help="folder the query encoders are written to")
    ap.add_argument("--exclude-ids", type=Path, required=True, help="the headlines-judged article ids")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--half", choices=["tune", "check"], default="tune")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", required=True, help="result file variant")
    args = ap.parse_args()
    records = {}
    for variant in args.variants:
        out = args.models / variant
        if not (out / "config.json").is_file():
            records[variant] = train(variant, args.work, args.exclude_ids, out, args.threads)
    models = {v: args.models / v for v in args.variants}
    result = {"bench": "query_side", "started": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit(),
              "machine": machine_facts(), "half": args.half, "variants": {k: list(v) for k, v in VARIANTS.items()},
              "training": records,
              "sets": {name: score_set(name, args.half, args.work, models) for name in SETS}}
    print_sets(result, "vs_base", "base")
    print(write_result(result_path("query-side", args.tag), result))


if __name__ == "__main__":
    main()
