"""Retrieval behaviour on a small real index: Reuters-21578 articles (byte-identical wire copies among
them) and a few Wikinews articles, with the real model and FAISS. Filters, paging, collapse,
highlights, recency and query escaping.
"""

from __future__ import annotations

import gzip
import json
from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.errors import BadQuery
from indexer.pipeline import build
from indexer.settings import Settings
from search_api.searcher import Searcher, SearchRequest
from tests.helpers import REUTERS, WIKINEWS, shared_data

# Byte-identical bodies: the first three pairs were sent minutes apart (one story, collapsed); the
# Fed and Bundesbank items are the same boilerplate sent on other days (other news, kept apart).
COPIES = [("reuters-32", "reuters-55"), ("reuters-491", "reuters-495"), ("reuters-12456", "reuters-12471")]
REPEATS = ["reuters-522", "reuters-8344", "reuters-1971", "reuters-7031"]
NEAR = ("reuters-9915", "reuters-10038")  # a story and its "(CORRECTED)" re-send: bodies differ a little
OTHERS = 22  # further Reuters articles, the first of corpus-00 not listed above
WIKI = 6
REUTERS_SOURCE = "Reuters newswire 1987 (Reuters-21578, Distribution 1.0)"


def _records() -> list[dict]:
    wanted = {a for pair in COPIES for a in pair} | set(REPEATS) | set(NEAR)
    chosen, others = [], []
    for path in sorted(shared_data(REUTERS).glob("corpus-0*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                if record["id"] in wanted:
                    chosen.append(record)
                elif len(others) < OTHERS and path.name == "corpus-00.jsonl.gz":
                    others.append(record)
    wiki = [json.loads(line) for line in shared_data(WIKINEWS).read_text(encoding="utf-8").splitlines()[:WIKI]]
    for record in wiki:
        record["source"] = "Wikinews"
    return chosen + others + wiki


@pytest.fixture(scope="module")
def small(tmp_path_factory, embedder) -> Searcher:
    folder = tmp_path_factory.mktemp("reuters-small")
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in _records()), encoding="utf-8")
    settings = Settings(index_dir=folder / "index", cache_dir="none")
    build([corpus], settings, embedder, progress=False)
    searcher = Searcher.open(settings.index_dir, settings, embedder)
    yield searcher
    searcher.close()


def ids(result) -> list[str]:
    return [h.article_id for h in result.hits]


def search(searcher: Searcher, q: str, **options):
    return searcher.search(SearchRequest(q=q, **options))


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_wire_copies_collapse_into_one_hit_listing_the_other(small, mode):
    result = search(small, "senators introduce export licensing reform bill", mode=mode, k=5)
    top = result.hits[0]
    assert top.article_id == "reuters-32" and top.duplicates == ["reuters-55"]
    assert "reuters-55" not in ids(result)
    apart = search(small, "senators introduce export licensing reform bill", mode=mode, k=5, collapse=False)
    assert ids(apart)[:2] == ["reuters-32", "reuters-55"]  # equal scores, ties by id
    assert all(h.duplicates == [] for h in apart.hits)


def test_a_corrected_resend_collapses_with_the_original(small):
    a, b = (small.article(aid) for aid in NEAR)
    assert a["body"] != b["body"] and a["duplicates"] == [NEAR[1]] and b["duplicates"] == [NEAR[0]]
    hits = search(small, "Mobil to upgrade refinery unit", k=5).hits
    assert {hits[0].article_id, *hits[0].duplicates} == set(NEAR)
    assert not set(NEAR) & {h.article_id for h in hits[1:]}


def test_same_text_sent_on_other_days_stays_apart(small):
    result = search(small, "Bundesbank leaves credit policies unchanged", k=10)
    bundesbank = [h for h in result.hits if h.title.startswith("BUNDESBANK")]
    assert [h.article_id for h in bundesbank] == ["reuters-12456", "reuters-1971", "reuters-7031"]
    assert bundesbank[0].duplicates == ["reuters-12471"]
    fed = [h.article_id for h in search(small, "Fed customer repurchase agreements", k=10).hits]
    assert {"reuters-522", "reuters-8344"} <= set(fed)
    assert small.article("reuters-491")["duplicates"] == ["reuters-495"]
    assert small.article("reuters-522")["duplicates"] == []


@pytest.mark.parametrize("mode", ["hybrid", "dense"])
def test_selective_filters_still_return_every_matching_article(small, mode):
    # Six Wikinews articles among ~40: a source filter must give all six, not the few in a global top k.
    result = search(small, "stock market trading and oil prices", mode=mode, k=10, sources=("Wikinews",))
    assert len(result.hits) == WIKI and result.ranked == WIKI
    assert {h.source for h in result.hits} == {"Wikinews"}
    day = search(small, "oil", mode=mode, k=20, since=date(1987, 3, 2), until=date(1987, 3, 2))
    assert {h.article_id for h in day.hits} == {"reuters-491", "reuters-522"}  # 495 is collapsed into 491
    assert day.hits[[h.article_id for h in day.hits].index("reuters-491")].duplicates == ["reuters-495"]


def test_keyword_filters_apply_inside_the_query(small):
    result = search(small, "Bundesbank credit policies", mode="keyword", k=10, since=datetime(1987, 3, 10))
    found = ids(result)
    assert found[:2] == ["reuters-12456", "reuters-7031"]  # equal scores, ties by id; 12471 collapsed
    assert "reuters-1971" not in found and "reuters-12471" not in found


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_pages_are_slices_of_one_ranking(small, mode):
    whole = ids(search(small, "bank interest rates and the dollar", mode=mode, k=30))
    pages = [ids(search(small, "bank interest rates and the dollar", mode=mode, k=7, offset=o)) for o in range(0, 30, 7)]
    flat = [a for page in pages for a in page]
    assert len(set(flat)) == len(flat)  # no article on two pages
    assert flat[:30] == whole and len(whole) == min(30, search(small, "bank interest rates and the dollar",
                                                                mode=mode, k=1).ranked)


def test_highlights_are_offsets_of_matching_sentences(small):
    hit = search(small, "Ford second quarter output plans", k=1).hits[0]
    assert hit.article_id == "reuters-491"
    (start, end), = hit.highlights
    sentence = hit.text[start:end]
    assert "Ford" in sentence and "second quarter" in sentence
    assert {"ford", "second", "quarter"} <= set(hit.matched_terms) and "output" not in hit.matched_terms
    article = small.article(hit.article_id)
    assert article["body"][hit.start : hit.end] == hit.text


def test_matched_passages_counts_other_passages_of_a_long_article(small):
    hit = search(small, "BankAmerica equity offer", k=3, collapse=False).hits[0]
    assert hit.article_id in ("reuters-4", "reuters-16")
    assert hit.matched_passages >= 1  # a 2,800-character article has several passages


def test_recency_favours_newer_articles_relative_to_now(small):
    q = "Bundesbank leaves credit policies unchanged"
    plain = ids(search(small, q, k=3))
    old = search(small, q, k=3, recency_half_life_days=1.0, now=datetime(1987, 3, 5, 12))
    assert plain[0] == "reuters-12456" and ids(old)[0] == "reuters-1971"  # the April copies are weeks from `now`
    newest = search(small, q, k=3, recency_half_life_days=30.0)  # now = the newest article, a 2019 Wikinews one
    assert {h.source for h in newest.hits} == {"Wikinews"}  # 1987 articles are 32 years before `now`


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.lists(st.sampled_from(list('ab "*^:()-+<>\'.,{}') + ["AND", "OR", "NOT", "NEAR", "title:", "oil"]),
                  min_size=1, max_size=15).map("".join))
def test_fts_syntax_never_raises(small, q):
    for mode in ("keyword", "hybrid"):
        try:
            result = search(small, q, mode=mode, k=5)
        except BadQuery as exc:
            assert exc.field == "q" and not q.strip()
        else:
            assert len(result.hits) <= 5


def test_bad_dates_name_the_field(small):
    with pytest.raises(BadQuery) as exc:
        search(small, "oil", since=date(1987, 5, 1), until=date(1987, 4, 1))
    assert exc.value.field == "since"



def test_a_reranker_reorders_the_top_fused_hits(small):
    from tests.helpers import WordOverlap

    reranking = Searcher(small.version, small.embedder, small.settings.replace(rerank_depth=5), WordOverlap())
    plain = search(reranking, "Ford second quarter output plans", k=8)
    again = search(reranking, "Ford second quarter output plans", k=8, rerank=True)
    assert set(ids(again)[:5]) == set(ids(plain)[:5]) and ids(again)[5:] == ids(plain)[5:]
    top = [h.score for h in again.hits[:5]]
    assert top == sorted(top, reverse=True) and all(float(s).is_integer() for s in top)  # word-overlap counts


def test_time_zone_aware_bounds_and_now_are_taken_as_utc(small):
    from datetime import timedelta, timezone

    plus2 = timezone(timedelta(hours=2))
    # 1987-03-03 01:00 at UTC+2 is 1987-03-02 23:00 UTC: the Ford and Fed items of March 2 are in.
    late = search(small, "oil", mode="dense", k=20, since=datetime(1987, 3, 2, 12, tzinfo=plus2),
                  until=datetime(1987, 3, 3, 1, tzinfo=plus2))
    assert {h.article_id for h in late.hits} == {"reuters-491", "reuters-522"}
    q = "Bundesbank leaves credit policies unchanged"
    aware = search(small, q, k=3, recency_half_life_days=1.0, now=datetime(1987, 3, 5, 14, tzinfo=plus2))
    assert ids(aware)[0] == "reuters-1971"


def test_a_datetime_until_includes_that_instant(small):
    published = small.article("reuters-491")["published"]
    exact = search(small, "oil", mode="dense", k=20, since=published, until=published)
    assert "reuters-491" in ids(exact)
    assert all(small.article(a)["published"] == published for a in ids(exact))
