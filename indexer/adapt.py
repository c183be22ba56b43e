"""What adapting the model to a corpus trains on: each headline and its article, and the articles left out
(`--exclude-ids` and their near copies). Pure functions.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.dedup import body_key, duplicate_groups, shingles
from indexer.embed import word_count
from indexer.errors import SourceError
from indexer.records import Article

MIN_JACCARD = 0.8  # dedup.duplicate_groups' default: copies share at least this share of word 3-shingles
STATE = ".adapt"  # the run's state and record inside the model folder; a dot folder is not in its fingerprint
TRAINED_FILE = f"{STATE}/trained-headlines.tsv"
QUERY_MIN_SHARE = 0.01  # queries shorter than all but this share of the training headlines go to the base model


@dataclass(frozen=True)
class TrainingSet:
    """The headlines a corpus trains on, with their articles, and what was left out on the way."""

    titles: list[str]  # each kept article's headline
    article_ids: list[str]  # the article of each headline
    articles: int  # articles read
    untitled: int  # articles without a title: they give no pair
    excluded: int  # articles left out: the ids asked for and their near copies
    copies: int  # articles dropped as the same body as an article kept (its copies are not its negatives)
    trained: dict[str, str] = field(default_factory=dict)  # id -> headline_key of each article that trains

    @property
    def used(self) -> int:
        """Articles that train."""
        return len(self.titles)


def read_ids(path: Path) -> list[str]:
    """Article ids, one a line (blank lines and `#` comments ignored)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first id
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


def training_set(articles: Sequence[Article], exclude: Sequence[str] = (), max_articles: int = 0,
                 seed: int = 0) -> TrainingSet:
    """The titled articles that train, each with its headline.

    Left out: articles in `exclude` and their near copies (with_copies), and all but the first (by id) of
    articles with the same body, whose headlines would otherwise be each other's negatives. With `max_articles`,
    a random sample (by `seed`) of the rest.
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
    return TrainingSet([a.title for a in kept], [a.id for a in kept], len(articles), len(articles) - len(titled),
                       len(left_out), copies, {article.id: headline_key(article.title) for article in kept})


def query_min_words(titles: Sequence[str]) -> int:
    """The fewest words a query needs for the adapted encoder: nearly every training headline has at least as
    many (all but QUERY_MIN_SHARE); shorter queries are unlike what it learned from."""
    counts = sorted(word_count(title) for title in titles)
    return counts[int(QUERY_MIN_SHARE * len(counts))] if counts else 0


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
