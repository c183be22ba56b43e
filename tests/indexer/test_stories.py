"""Story clusters as pure functions: deterministic fake vectors and word sets, no model."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np

from indexer.stories import StoryParams, assign_stories, day_numbers, idf, keywords, overlap, summary

T0 = datetime(1987, 3, 2, 9, 0)
PARAMS = StoryParams(threshold=0.8, min_overlap=0.2, window_days=3.0, max_span_days=5.0)  # the keyword side on


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def corpus() -> tuple[list[str], list[datetime | None], np.ndarray, list[frozenset[str]]]:
    """Two events reported twice each, a templated report of another company, and an unrelated article."""
    rows = [  # id, hours after T0, vector, words
        ("a1", 0, unit(1, 0.1, 0, 0), "usair rejects twa takeover bid icahn"),
        ("b1", 2, unit(0, 1, 0.1, 0), "opec ministers meet in vienna on quotas"),
        ("a2", 20, unit(1, 0.15, 0.05, 0), "twa sues usair over poison pill takeover"),
        ("b2", 30, unit(0.05, 1, 0.1, 0), "opec vienna meeting agrees quotas ministers"),
        ("c1", 25, unit(1, 0.12, 0, 0.02), "preston corp 3rd qtr net shr revs"),  # close vector, other names
        ("d1", 40, unit(0, 0, 0, 1), "bahia cocoa review showers"),
    ]
    filler = [(f"z{i:02d}", 10 + i, unit(0, 0, 1, 0.1 * i), f"filler{i} report net shr qtr revs") for i in range(12)]
    rows += filler
    ids = [r[0] for r in rows]
    published = [T0 + timedelta(hours=r[1]) for r in rows]
    return ids, published, np.stack([r[2] for r in rows]), [frozenset(r[3].split()) for r in rows]


def test_articles_of_one_event_share_a_story_named_after_the_first():
    ids, published, vectors, words = corpus()
    stories = assign_stories(ids, published, vectors, words, params=PARAMS)
    assert stories["a1"] == stories["a2"] == "a1"
    assert stories["b1"] == stories["b2"] == "b1"
    assert stories["c1"] == "c1"  # near in meaning, but it names another company: the keyword side keeps it apart
    assert stories["d1"] == "d1"


def test_dense_alone_would_merge_the_templated_report():
    ids, published, vectors, words = corpus()
    loose = StoryParams(threshold=0.8, min_overlap=0.0, window_days=3.0, max_span_days=5.0)
    assert assign_stories(ids, published, vectors, words, params=loose)["c1"] == "a1"


def test_input_order_does_not_change_the_stories():
    ids, published, vectors, words = corpus()
    expected = assign_stories(ids, published, vectors, words, params=PARAMS)
    order = list(range(len(ids)))
    random.Random(3).shuffle(order)
    shuffled = assign_stories([ids[i] for i in order], [published[i] for i in order], vectors[order],
                              [words[i] for i in order], params=PARAMS)
    assert shuffled == expected


def test_time_window_and_story_span_stop_daily_reports_chaining():
    # The same daily report, one a day for ten days: each links to the day before, but no story spans more
    # than max_span_days, and nothing links across more than window_days.
    ids = [f"r{i}" for i in range(10)]
    published = [T0 + timedelta(days=i) for i in range(10)]
    vectors = np.stack([unit(1, 0.01 * i, 0, 0) for i in range(10)])
    words = [frozenset({"money", "market", "shortage", "bank", "england"})] * 10
    stories = assign_stories(ids, published, vectors, words, params=PARAMS)
    first = {s: min(i for i, a in enumerate(ids) if stories[a] == s) for s in set(stories.values())}
    assert all(i - first[stories[a]] <= PARAMS.max_span_days for i, a in enumerate(ids))
    assert len(set(stories.values())) >= 2
    far = assign_stories(["x", "y"], [T0, T0 + timedelta(days=4)], vectors[:2], words[:2], params=PARAMS)
    assert far == {"x": "x", "y": "y"}


def test_new_articles_join_earlier_stories_and_kept_ones_never_move():
    ids, published, vectors, words = corpus()
    first = assign_stories(ids[:2] + ids[4:], published[:2] + published[4:], np.delete(vectors, [2, 3], axis=0),
                           words[:2] + words[4:], params=PARAMS)
    again = assign_stories(ids, published, vectors, words, params=PARAMS, previous=first)
    assert {a: again[a] for a in first} == first
    assert again["a2"] == "a1" and again["b2"] == "b1"
    renamed = {a: f"old-{s}" for a, s in first.items()}  # whatever the kept stories were called
    assert assign_stories(ids, published, vectors, words, params=PARAMS, previous=renamed)["a2"] == "old-a1"


def test_copies_are_in_one_story_and_undated_articles_stand_alone():
    ids = ["p", "q", "u"]
    published = [T0, T0 + timedelta(days=30), None]
    vectors = np.stack([unit(1, 0, 0), unit(0, 1, 0), unit(1, 0, 0)])
    words = [frozenset({"x"})] * 3
    stories = assign_stories(ids, published, vectors, words, {"p": "p", "q": "p"}, PARAMS)
    assert stories == {"p": "p", "q": "p", "u": "u"}


def test_keywords_idf_and_overlap():
    words = keywords("USAIR REJECTS TWA BID", "USAir Group said its board rejected the bid. More text here.\n\nLater.")
    assert {"usair", "rejects", "twa", "board", "rejected"} <= words and "later" not in words
    weights = idf([frozenset({"net", "usair"}), frozenset({"net", "twa"}), frozenset({"net"})])
    assert weights["usair"] > weights["net"]
    assert overlap(frozenset({"net", "usair"}), frozenset({"net", "usair"}), weights) == 1.0
    assert overlap(frozenset({"net", "usair"}), frozenset({"net", "twa"}), weights) < 0.2
    assert overlap(frozenset(), frozenset(), weights) == 0.0


def test_summary_of_a_timeline():
    timeline = [{"title": "First", "published": T0, "source": "B"},
                {"title": "Second", "published": T0 + timedelta(days=1), "source": "A"},
                {"title": "Third", "published": None, "source": "B"}]
    assert summary("s", timeline) == {"id": "s", "articles": 3, "first_published": T0,
                                      "last_published": T0 + timedelta(days=1), "sources": ["A", "B"],
                                      "headline": "First"}


def test_day_numbers_are_utc_days_for_any_date_a_corpus_may_hold():
    # datetime.timestamp() read naive times in the machine's zone and failed on 0001-01-01, aborting a build.
    days = day_numbers([datetime(1, 1, 1), datetime(1970, 1, 2, 12), None, datetime(9999, 12, 31)])
    assert days[0] == -719162 and days[1] == 1.5 and np.isnan(days[2]) and days[3] == 2932896


def test_a_changed_article_that_leaves_its_story_starts_a_story_of_its_own_name():
    # a1 and a2 reported one event; then a1 was rewritten into something else (or deleted and its id reused).
    # a2 keeps the story a1 named; the new a1 must not join it by name.
    ids, published = ["a1", "a2", "a1~2"], [T0 + timedelta(days=2), T0, T0 + timedelta(days=3)]
    vectors = np.stack([unit(0, 1, 0), unit(1, 0, 0), unit(0, 0, 1)])
    stories = assign_stories(ids, published, vectors, None, params=StoryParams(), previous={"a2": "a1", "a1~2": "a1~2"})
    assert stories == {"a2": "a1", "a1": "a1~3", "a1~2": "a1~2"}
    assert assign_stories(ids, published, vectors, None, params=StoryParams()) == {i: i for i in ids}  # a rebuild
