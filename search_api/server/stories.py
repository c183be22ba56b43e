"""Story routes: a story's timeline (GET /stories/{id}) and an article's related coverage
(GET /articles/{id}/similar: nearest articles outside its own story first, its wire copies left out).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BeforeValidator

from indexer.errors import BadQuery
from search_api.searcher import Searcher
from search_api.server.auth import require_api_key
from search_api.server.schemas import ErrorOut, SimilarOut, StoryOut, query_integer
from search_api.server.strict import only_parameters

SIMILAR_DEPTH = 20  # passages retrieved per related article asked for: copies and the own story take places


# app.py's get_searcher cannot be imported here (app.py registers this router); this one reads the same holder.
async def _searcher(request: Request) -> AsyncIterator[Searcher]:
    with request.app.state.holder.use() as searcher:
        yield searcher


SearcherDep = Annotated[Searcher, Depends(_searcher)]
ERRORS = {code: {"model": ErrorOut, "description": text} for code, text in (
    (401, "no valid API key (only when NEWSEARCH_API_KEYS is set)"), (404, "no such story or article"),
    (422, "a parameter is out of range; `field` names it"), (503, "no index loaded, or it cannot be read"))}
router = APIRouter(tags=["stories"], dependencies=[Depends(require_api_key)], responses=ERRORS)


@router.get("/stories/{story_id:path}", response_model=StoryOut, dependencies=[Depends(only_parameters())])
def story(searcher: SearcherDep, story_id: str) -> dict:
    """A story: its size, dates, sources, headline and its articles in time order (a timeline)."""
    return {**searcher.story(story_id), "index_version": searcher.name}


# Declared before app.py's /articles/{article_id:path}, which would otherwise take ".../similar" as an id.
@router.get("/articles/{article_id:path}/similar", response_model=SimilarOut, dependencies=[Depends(only_parameters("k"))])
def similar_route(searcher: SearcherDep, article_id: str,
                  k: Annotated[int, BeforeValidator(query_integer),
                               Query(description="related articles to return (1-NEWSEARCH_MAX_K)")] = 10) -> dict:
    """Related coverage of an article: the nearest articles by meaning, those outside its own story first."""
    if not 1 <= k <= searcher.settings.max_k:
        raise BadQuery(f"k must be between 1 and {searcher.settings.max_k}", "k")
    return {"article_id": article_id, "story_id": searcher.story_of(article_id), "index_version": searcher.name,
            "hits": similar(searcher, article_id, k)}


def similar(searcher: Searcher, article_id: str, k: int) -> list[dict[str, Any]]:
    """Up to `k` articles nearest to `article_id`, those of other stories first, the article itself and its wire
    copies left out, one article per duplicate group. An article's score is its best passage's cosine to the
    asked article's vector (the mean of its passage vectors); ties by article id."""
    own_story = searcher.story_of(article_id)
    found = searcher.article(article_id)
    skip = {article_id, *found["duplicates"]}
    query = _unit(searcher.version.vectors.get(np.array([p["id"] for p in found["passages"]], dtype=np.int64)))
    total = len(searcher.version.vectors)
    # The article's own passages and its copies' come first and take places: deeper until k others are found,
    # the whole index searched, or the store answers fewer than asked (Milvus caps a search's hits).
    depth = SIMILAR_DEPTH * k + len(found["passages"]) * len(skip)
    while True:
        asked = min(total, depth)
        best, answered = _nearest_articles(searcher, query, asked, skip)
        if len({p.dup_group or aid for aid, (_, p) in best.items()}) >= k or asked >= total or answered < asked:
            break
        depth *= 4
    hits, groups = [], set()
    for score, p in sorted(best.values(), key=lambda pair: (-pair[0], pair[1].article_id)):
        if p.dup_group and p.dup_group in groups:  # a copy of a better related article
            continue
        groups.add(p.dup_group or p.article_id)
        story_id = searcher.story_of(p.article_id)
        hits.append({"article_id": p.article_id, "title": p.title, "published": p.published, "source": p.source,
                     "url": p.url, "score": round(score, 6), "story_id": story_id, "same_story": story_id == own_story})
    hits.sort(key=lambda h: (h["same_story"], -h["score"], h["article_id"]))
    return hits[:k]


def _nearest_articles(searcher: Searcher, query: np.ndarray, depth: int,
                      skip: set[str]) -> tuple[dict[str, tuple[float, Any]], int]:
    """Each article's best passage among the `depth` nearest to `query`, but those of `skip`; and how many
    passages the store answered."""
    scores, pids = searcher.version.vectors.search(query, depth)
    stored = searcher.version.text.passages(pids[pids >= 0].tolist())
    best: dict[str, tuple[float, Any]] = {}
    for score, pid in zip(scores.tolist(), pids.tolist()):
        passage = stored.get(pid)
        if passage is not None and passage.article_id not in skip and passage.article_id not in best:
            best[passage.article_id] = (score, passage)  # results come best first
    return best, int((pids >= 0).sum())


def _unit(vectors: np.ndarray) -> np.ndarray:
    """The normalised mean of some passage vectors: an article's vector."""
    mean = vectors.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
