"""What adapting the model to a corpus trains on: (headline -> passage) pairs, the articles left out
(`--exclude-ids` and their near copies) and short phrases whose base vectors anchor the model. Pure functions.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.chunk import TokenCounter, chunk_article
from indexer.dedup import body_key, duplicate_groups, shingles
from indexer.errors import ConfigError, SourceError
from indexer.records import Article

MIN_JACCARD = 0.8  # dedup.duplicate_groups' default: copies share at least this share of word 3-shingles
STATE = ".adapt"  # the run's state and record inside the model folder; a dot folder is not in its fingerprint
TRAINED_FILE = f"{STATE}/trained-headlines.tsv"
PAIRINGS = ("draw", "lead", "all")  # draw_pairs' choices of each headline's passages
_WORD = re.compile(r"[A-Za-z][A-Za-z-]+")


@dataclass(frozen=True)
class TrainingSet:
    """The pairs a corpus yields and what was left out on the way."""

    titles: list[str]  # each kept article's headline
    passages: list[list[str]]  # each kept article's passages: its lead, then its body passages
    articles: int  # articles read
    untitled: int  # articles without a title: they give no pair
    excluded: int  # articles left out: the ids asked for and their near copies
    copies: int  # articles dropped as the same body as an article kept (its copies are not its negatives)
    used: int  # articles that gave pairs
    trained: dict[str, str] = field(default_factory=dict)  # id -> headline_key of each article that gave pairs

    @property
    def available(self) -> int:
        """Every (headline, passage) pair the kept articles offer."""
        return sum(len(found) for found in self.passages)


def read_ids(path: Path) -> list[str]:
    """Article ids, one a line (blank lines and `#` comments ignored)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read the ids file ({getattr(exc, 'strerror', None) or exc}); give a "
                          "text file with one article id a line") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def ids_hash(ids: Sequence[str]) -> str:
    """A hash of a set of ids (order and repeats do not matter)."""
    return hashlib.sha256("\n".join(sorted(set(ids))).encode()).hexdigest()[:16]


def corpus_hash(articles: Sequence[Article]) -> str:
    """Identity of a cleaned corpus: every article's id and content hash."""
    digest = hashlib.sha256()
    for article in sorted(articles, key=lambda a: a.id):
        digest.update(f"{article.id}\x00{article.content_hash}\n".encode())
    return digest.hexdigest()[:16]


def with_copies(articles: Sequence[Article], seeds: Sequence[str]) -> set[str]:
    """The `seeds` present in `articles` and every article the near-duplicate rules could group with them,
    transitively.

    The rules are dedup.duplicate_groups' (same body, or shingle overlap of MIN_JACCARD within its time window)
    without its vector test, which needs the whole corpus embedded: dropping a condition only leaves out more.
    Candidates come from prefix filtering (two sets with Jaccard >= t share one of the rarest
    |s| - ceil(t |s|) + 1 shingles of each), so only a few bodies are compared per seed.
    """
    sets = [shingles(a.body) for a in articles]
    frequency = Counter(s for found in sets for s in found)
    holders: dict[str, list[int]] = defaultdict(list)
    prefixes = []
    for i, found in enumerate(sets):
        rarest = sorted(found, key=lambda s: (frequency[s], s))
        prefix = rarest[: len(rarest) - math.ceil(MIN_JACCARD * len(rarest)) + 1]
        prefixes.append(prefix)
        for s in prefix:
            holders[s].append(i)
    row = {a.id: i for i, a in enumerate(articles)}
    todo = sorted({row[x] for x in seeds if x in row})
    out = set(todo)
    while todo:
        i = todo.pop()
        members = [i, *sorted({j for s in prefixes[i] for j in holders[s]} - {i})]
        if len(members) == 1:
            continue
        chosen = [articles[k] for k in members]
        groups = duplicate_groups([a.id for a in chosen], [a.body for a in chosen],
                                  np.ones((len(chosen), 1), dtype=np.float32), min_jaccard=MIN_JACCARD,
                                  published=[a.published for a in chosen])
        head = groups.get(articles[i].id)
        for k, article in zip(members, chosen):
            if head is not None and groups.get(article.id) == head and k not in out:
                out.add(k)
                todo.append(k)
    return {articles[i].id for i in out}


def training_set(articles: Sequence[Article], count: TokenCounter, max_tokens: int, exclude: Sequence[str] = (),
                 lead_sentences: int = 2, max_articles: int = 0, seed: int = 0) -> TrainingSet:
    """The articles that train and their passages: each titled article's lead and body passages of at most
    `max_tokens` word pieces, chunked as the index chunks them.

    Left out: articles in `exclude` and their near copies (with_copies), and all but the first (by id) of
    articles with the same body, whose headlines would otherwise be each other's in-batch negatives. With
    `max_articles`, a random sample (by `seed`) of the rest. Which pairs train: draw_pairs.
    """
    left_out = with_copies(articles, exclude) if exclude else set()
    titled = [a for a in articles if a.title.strip()]
    seen: set[str] = set()
    kept: list[Article] = []
    for article in sorted(titled, key=lambda a: a.id):
        key = body_key(article.body)
        if article.id in left_out or key in seen:
            continue
        seen.add(key)
        kept.append(article)
    copies = sum(1 for a in titled if a.id not in left_out) - len(kept)
    if max_articles and len(kept) > max_articles:
        kept = sorted(random.Random(seed).sample(kept, max_articles), key=lambda a: a.id)
    passages = [[p.text for p in chunk_article(article, count, max_tokens=max_tokens, lead_sentences=lead_sentences)]
                for article in kept]
    return TrainingSet([a.title for a in kept], passages, len(articles), len(articles) - len(titled), len(left_out),
                       copies, len(kept), {article.id: headline_key(article.title) for article in kept})


def draw_pairs(data: TrainingSet, how: str, epochs: int, seed: int) -> tuple[list[str], list[str]]:
    """(headlines, passages) for `epochs` passes: `all` pairs each headline with every passage of its article,
    `lead` with its lead (the first passage), `draw` with one passage per pass drawn at random (seeded)."""
    if how not in PAIRINGS:
        raise ConfigError(f"unknown pairing {how!r}; use one of {', '.join(PAIRINGS)}")
    anchors: list[str] = []
    positives: list[str] = []
    rng = random.Random(seed)
    for _ in range(epochs):
        for title, found in zip(data.titles, data.passages):
            if not found:
                continue
            chosen = found if how == "all" else found[:1] if how == "lead" else [rng.choice(found)]
            anchors.extend([title] * len(chosen))
            positives.extend(chosen)
    return anchors, positives


def headline_key(text: str) -> str:
    """A headline's identity whatever its case and spacing: an evaluation query that has the key of a headline
    the model was adapted on was seen in training."""
    return hashlib.sha256(" ".join(text.casefold().split()).encode()).hexdigest()[:16]


def read_trained(model_folder: Path) -> dict[str, str]:
    """id -> headline_key of the articles an adapted model was trained on ({} for a model not adapted here)."""
    path = Path(model_folder) / TRAINED_FILE
    if not path.is_file():
        return {}
    return dict(line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line)


def write_trained(model_folder: Path, trained: dict[str, str]) -> None:
    """Record which articles' headlines an adapted model saw (ids and hashes only, no text)."""
    lines = "".join(f"{article_id}\t{key}\n" for article_id, key in sorted(trained.items()))
    (Path(model_folder) / TRAINED_FILE).write_text(lines, encoding="utf-8")


def corpus_phrases(articles: Sequence[Article], limit: int, stop_words: frozenset[str]) -> list[str]:
    """The corpus' most widespread words and two-word phrases without stop words (by how many articles hold
    them), as short topic-like texts; ties by the phrase, so the list is deterministic."""
    counts: Counter[str] = Counter()
    for article in articles:
        words = [w.lower() for w in _WORD.findall(article.body)]
        found = {w for w in words if w not in stop_words}
        found.update(f"{a} {b}" for a, b in zip(words, words[1:]) if a not in stop_words and b not in stop_words)
        counts.update(found)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [phrase for phrase, n in ranked[:limit] if n > 1]
