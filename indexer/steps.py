"""The steps of a batch job, in the order data flows through them: read and clean a corpus, chunk articles
into passages, embed their texts (through the embedding cache), write a version. Engines (engines.py,
ray_engine.py) run these steps; the jobs (pipeline.py, update.py) sit above the engines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from indexer.cache import EmbeddingCache, cache_key
from indexer.chunk import MAX_PASSAGES_PER_ARTICLE, chunk_article
from indexer.clean import clean_article
from indexer.dedup import article_vectors, duplicate_groups
from indexer.embed import Embedder, embedding_text
from indexer.errors import SourceError
from indexer.records import Article, Passage, RawArticle
from indexer.settings import Settings
from indexer.sources import CorpusReader, Problem
from indexer.storage.base import Store
from indexer.stories import article_stories

EMBED_BLOCK = 256  # passages per cache commit (checkpoint) and progress update


@dataclass
class Prepared:
    """A corpus read, cleaned and chunked, ready to embed."""

    articles: list[Article]
    passages_of: dict[str, list[Passage]]
    problems: list[Problem] = field(default_factory=list)
    files: int = 0

    @property
    def passages(self) -> list[Passage]:
        """All passages, article by article, in ordinal order."""
        return [p for a in self.articles for p in self.passages_of[a.id]]


ProgressFn = Callable[[str, int, int], None]  # (stage, done, total), for job status


@dataclass
class Corpus:
    """Cleaned articles of a corpus, one per id, sorted by id."""

    articles: list[Article]
    problems: list[Problem] = field(default_factory=list)
    files: int = 0
    origins: dict[str, str] = field(default_factory=dict)  # article id -> "path:line" it was read from


def keep_last(records: Iterable[tuple[Article, str]]) -> tuple[list[Article], dict[str, str], list[Problem]]:
    """One article per id from (article, origin) pairs, a later record replacing an earlier one: the
    articles sorted by id, the origin of each, and a problem naming the winner for each replaced record."""
    by_id: dict[str, tuple[Article, str]] = {}
    problems = []
    for article, origin in records:
        old = by_id.pop(article.id, None)
        if old is not None:
            problems.append(Problem(old[1], f"duplicate id {article.id!r}: replaced by the later record at {origin}"))
        by_id[article.id] = (article, origin)
    ordered = sorted(by_id.values(), key=lambda pair: pair[0].id)
    return [a for a, _ in ordered], {a.id: origin for a, origin in ordered}, problems


def clean_or_report(raw: RawArticle, strict: bool) -> Article | Problem:
    """The cleaned article, or the problem to report when no text is left."""
    article = clean_article(raw)
    if article.body:
        return article
    problem = Problem(raw.origin, "no text left after removing site junk")
    if strict:
        raise SourceError(f"{problem}; fix the file or run without --strict to skip it")
    return problem


def no_articles(paths: Sequence[Path], problems: list[Problem]) -> SourceError:
    """The error for a corpus in which nothing could be read, naming what was skipped and why."""
    skipped = "; ".join(map(str, problems[:5])) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return SourceError(f"no articles found in {', '.join(map(str, paths))} "
                       f"({len(problems)} skipped{': ' + skipped if problems else ''}); "
                       "supported files: .txt, .jsonl, .jsonl.gz, .html")


def read_corpus(paths: Sequence[Path], strict: bool = False, progress: bool = True) -> Corpus:
    """Read and clean a corpus; a later record with an id seen before replaces it."""
    reader = CorpusReader(list(paths), strict=strict)
    cleaned: list[tuple[Article, str]] = []
    for raw in tqdm(reader, desc="reading", unit=" articles", disable=not progress, mininterval=1.0):
        outcome = clean_or_report(raw, strict)
        if isinstance(outcome, Problem):
            reader.problems.append(outcome)
        else:
            cleaned.append((outcome, raw.origin))
    if not cleaned:
        raise no_articles(paths, reader.problems)
    articles, origins, replaced = keep_last(cleaned)
    return Corpus(articles, reader.problems + replaced, reader.files_read, origins)


def chunk_options(settings: Settings) -> dict[str, int | str]:
    """chunk_article's keyword arguments from the settings (shared by every engine, so they agree)."""
    return {"max_tokens": settings.chunk_tokens, "overlap": settings.chunk_overlap,
            "lead_sentences": lead_passage_sentences(settings), "lead_for": lead_passage_for(settings)}


def cut_short(articles: Iterable[Article], passages_of: dict[str, list[Passage]],
              origins: dict[str, str]) -> list[Problem]:
    """A problem for each article whose passages end before its body does (more than the id scheme holds)."""
    problems = []
    for a in articles:
        passages = passages_of.get(a.id) or []
        if len(passages) >= MAX_PASSAGES_PER_ARTICLE and a.body[passages[-1].end :].strip():
            problems.append(Problem(origins.get(a.id, a.id), (
                f"article {a.id!r} needs more than {MAX_PASSAGES_PER_ARTICLE} passages: only its first "
                f"{passages[-1].end:,} of {len(a.body):,} characters are indexed; split it into several articles "
                "or raise NEWSEARCH_CHUNK_TOKENS")))
    return problems


def chunk_all(articles: Sequence[Article], settings: Settings, embedder: Embedder) -> dict[str, list[Passage]]:
    """The passages of each article, by article id."""
    options = chunk_options(settings)
    return {a.id: chunk_article(a, embedder.count_tokens, **options) for a in articles}


def prepare(paths: Sequence[Path], settings: Settings, embedder: Embedder, strict: bool = False,
            progress: bool = True) -> Prepared:
    """Read, clean and chunk a corpus; a later record with an id seen before replaces it."""
    corpus = read_corpus(paths, strict, progress)
    passages_of = chunk_all(corpus.articles, settings, embedder)
    return Prepared(corpus.articles, passages_of,
                    corpus.problems + cut_short(corpus.articles, passages_of, corpus.origins), corpus.files)


def title_context(settings: Settings) -> bool:
    """Whether passages are embedded under their article's title (fields=title+body; see embed.embedding_text)."""
    return settings.fields == "title+body"


def embedding_texts(prepared: Prepared, settings: Settings) -> list[str]:
    """What the model reads for each passage (embed.embedding_text)."""
    titles = {a.id: a.title for a in prepared.articles}
    titled = title_context(settings)
    return [embedding_text(titles[p.article_id], p.text, titled) for p in prepared.passages]


def embed_all(texts: list[str], embedder: Embedder, cache: EmbeddingCache | None = None,
              progress: bool = True, block: int = EMBED_BLOCK,
              on_progress: ProgressFn | None = None) -> tuple[np.ndarray, int]:
    """Vectors for `texts` in their order, and how many texts had to be encoded.

    Texts already in the cache are not embedded again, and a text repeated in the corpus (wire
    copies) is encoded once, so equal texts always get equal vectors. The rest are encoded longest
    first (so each batch pads little) and committed to the cache block by block, which is what
    makes a killed build resume where it stopped.
    """
    out, todo = from_cache(texts, embedder, cache)
    rows_of = distinct(texts, todo)
    unique = list(rows_of)
    with tqdm(total=len(unique), desc="embedding", unit=" passages", disable=not progress, mininterval=1.0) as bar:
        for start in range(0, len(unique), block):
            chunk = unique[start : start + block]
            place_block(out, rows_of, chunk, embedder.encode(chunk), cache, embedder.key)
            bar.update(len(chunk))
            if on_progress:
                on_progress("embedding", start + len(chunk), len(unique))
    return out, len(unique)


def distinct(texts: list[str], rows: list[int]) -> dict[str, list[int]]:
    """The distinct texts among `rows`, longest first (ties in corpus order), each with its rows."""
    rows_of: dict[str, list[int]] = {}
    for i in rows:
        rows_of.setdefault(texts[i], []).append(i)
    return {t: rows_of[t] for t in sorted(rows_of, key=len, reverse=True)}


def place_block(out: np.ndarray, rows_of: dict[str, list[int]], chunk: list[str], vectors: np.ndarray,
                cache: EmbeddingCache | None, model: str) -> None:
    """Put one embedded block of distinct texts into every row holding each text, then checkpoint it
    in the cache (one transaction: a killed job resumes after the last committed block)."""
    for text, vector in zip(chunk, vectors):
        out[rows_of[text]] = vector
    if cache is not None:
        cache.put([cache_key(model, t) for t in chunk], vectors)


def from_cache(texts: list[str], embedder: Embedder, cache: EmbeddingCache | None) -> tuple[np.ndarray, list[int]]:
    """An array holding the cached vectors of `texts`, and the rows still to embed."""
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    keys = [cache_key(embedder.key, t) for t in texts]
    known = cache.get_many(keys) if cache is not None else {}
    todo = []
    for i, key in enumerate(keys):
        if key in known:
            out[i] = known[key]
        else:
            todo.append(i)
    return out, todo


def model_info(embedder: Embedder) -> dict:
    """The manifest's description of the model."""
    return {"name": embedder.name, "dim": embedder.dim, "max_seq_length": embedder.max_tokens,
            "fingerprint": embedder.fingerprint, "backend": embedder.backend, "precision": embedder.precision}


def chunking_info(settings: Settings) -> dict:
    """The manifest's description of how passages were made."""
    return {"max_tokens": settings.chunk_tokens, "overlap_sentences": settings.chunk_overlap,
            "fields": settings.fields, "splitter": "blingfire", "title_context": title_context(settings),
            "lead_sentences": lead_passage_sentences(settings), "lead_for": lead_passage_for(settings)}


def built_chunking(recorded: dict) -> dict:
    """A manifest's chunking record in today's terms: before `lead_for` was recorded, the lead passage was
    given to every article with fields=body and to none with title+body (where lead_sentences read 0)."""
    if "lead_for" in recorded:
        return recorded
    return {**recorded, "lead_for": "all" if recorded.get("lead_sentences") else "none"}


def lead_passage_sentences(settings: Settings) -> int:
    """Sentences of the lead passage, for the articles that get one (lead_passage_for)."""
    return settings.lead_sentences


def lead_passage_for(settings: Settings) -> str:
    """Which articles get a lead passage: all when titles are left out (fields=body), else those without a
    title, where the lead stands in for the missing headline; a titled article's passages are embedded under
    its title already. "none" only in the manifest, when lead_sentences is 0."""
    if not settings.lead_sentences:
        return "none"
    return "all" if settings.fields == "body" else "untitled"


def group_articles(articles: Sequence[Article], per_article: np.ndarray,
                   previous_stories: Mapping[str, str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Near-duplicate groups and stories of `articles` from their (normalised) article vectors; `previous_stories`
    (article id -> story id of the articles an update keeps) keeps their stories."""
    groups = duplicate_groups([a.id for a in articles], [a.body for a in articles], per_article,
                              published=[a.published for a in articles])
    return groups, article_stories(articles, per_article, groups, previous_stories)


def passage_ids(passages: Sequence[Passage]) -> np.ndarray:
    """The passages' ids, checked to be distinct."""
    ids = np.array([p.id for p in passages], dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise SourceError("two articles hash to the same passage ids; give one of them another id")
    return ids


def write_prepared(store: Store, prepared: Prepared, passages: list[Passage], vectors: np.ndarray,
                   embedder: Embedder, settings: Settings, previous_stories: Mapping[str, str] | None = None) -> str:
    """Group near-duplicates and stories and write a new version; returns its name (unpublished).
    `previous_stories` (article id -> story id of the articles an update keeps) keeps their stories."""
    row_of = {a.id: i for i, a in enumerate(prepared.articles)}
    owners = np.array([row_of[p.article_id] for p in passages], dtype=np.int64)
    per_article = article_vectors(vectors, owners, len(prepared.articles))
    groups, stories = group_articles(prepared.articles, per_article, previous_stories)
    ids = passage_ids(passages)
    with store.begin(model_info(embedder), chunking_info(settings)) as writer:
        writer.add(prepared.articles, prepared.passages_of, ids, vectors, groups, stories)
        return writer.commit()
