"""Alerts end to end on real Wikinews articles with the real model: matches only among an update's new and changed
articles, the same ranking and floor as /search, kept across restarts, new versions and gc; a valid Atom feed."""

from __future__ import annotations

import feedparser
import pytest

from indexer.alerts_store import Alert, AlertNotFound, AlertStore, Match, alerts_path
from indexer.gc import collect
from indexer.pipeline import build
from indexer.storage.folders import current_version
from indexer.update import update
from search_api.alerts.batch import evaluate
from search_api.alerts.worker import AlertWorker
from search_api.holder import SearcherHolder
from search_api.searcher import SearchRequest
from search_api.server.alerts import atom
from search_api.settings import ServerSettings
from tests.helpers import wikinews, write_jsonl

FIRST = 150  # articles in the first build; the update adds the next ADDED and changes one
ADDED = 20


@pytest.fixture(scope="module")
def updated(tmp_path_factory, embedder):
    """An index of FIRST articles with three alerts saved, then updated with ADDED new articles and one changed."""
    tmp = tmp_path_factory.mktemp("alerts")
    records = wikinews()
    settings = ServerSettings(index_dir=tmp / "index", max_k=200, reload_interval=0)
    build([write_jsonl(tmp / "day1" / "a.jsonl", records[:FIRST])], settings, embedder, progress=False)
    first = current_version(settings.index_dir)
    store = AlertStore(settings.index_dir)
    new, old = records[FIRST + 3], records[10]
    alerts = {"new": store.create(new["title"], ""), "old": store.create(old["title"], ""),
              "changed": store.create(records[20]["title"], "", min_relevance=0.0)}
    store.close()
    changed = dict(records[20], body=records[20]["body"] + "\n\nThe figures were corrected on the following day.")
    day2 = records[:20] + [changed] + records[21 : FIRST + ADDED]
    report = update([write_jsonl(tmp / "day2" / "a.jsonl", day2)], settings, embedder, progress=False)
    holder = SearcherHolder(settings, embedder)
    holder.load()
    worker = AlertWorker(settings, holder)
    evaluated = worker.run_once()
    yield {"settings": settings, "alerts": alerts, "report": report, "holder": holder, "first": first,
           "records": records, "evaluated": evaluated, "worker": worker, "tmp": tmp}
    holder.close()


def matches(settings: ServerSettings, alert_id: str):
    store = AlertStore(settings.index_dir)
    try:
        return store.matches(alert_id)
    finally:
        store.close()


def test_matches_only_new_and_changed_articles(updated):
    s, alerts, records = updated["settings"], updated["alerts"], updated["records"]
    assert updated["evaluated"] == 1 and updated["report"].added == ADDED and updated["report"].changed == 1
    brought = {r["id"] for r in records[FIRST : FIRST + ADDED]} | {records[20]["id"]}
    version = current_version(s.index_dir)
    every = [m for a in alerts.values() for m in matches(s, a.id)]
    assert every and {m.article_id for m in every} <= brought
    assert {m.version for m in every} == {version}
    assert records[FIRST + 3]["id"] in {m.article_id for m in matches(s, alerts["new"].id)}
    # The article whose headline the "old" alert is was indexed before: it is never a match.
    assert records[10]["id"] not in {m.article_id for m in matches(s, alerts["old"].id)}
    changed = {m.article_id: m for m in matches(s, alerts["changed"].id)}
    assert records[20]["id"] in changed and changed[records[20]["id"]].title == records[20]["title"]


def test_same_ranking_and_floor_as_search(updated):
    """Evaluated against every article, an alert matches exactly the /search hits whose relevance clears the floor."""
    holder, records = updated["holder"], updated["records"]
    with holder.use() as searcher:
        ids = [r["id"] for r in records[: FIRST + ADDED]]
        for query, mode in [(records[5]["title"], "hybrid"), ("earthquake damage and casualties", "dense"),
                            ("football championship final", "keyword")]:
            alert = Alert("t", query, "", 0.0, mode=mode)
            found = {m.article_id: m.relevance for m in evaluate(searcher, [alert], ids, "vX")}
            result = searcher.search(SearchRequest(q=query, k=200, mode=mode))
            expected = {h.article_id: h.relevance for h in result.hits if h.relevance >= result.min_relevance}
            assert found.keys() == expected.keys(), (query, mode)
            assert all(abs(found[a] - expected[a]) <= 2e-4 for a in found)


def test_kept_across_restart_new_version_and_gc(updated, embedder):
    s, alerts = updated["settings"], updated["alerts"]
    before = {a: [(m.article_id, m.version) for m in matches(s, a.id)] for a in alerts.values()}
    store = AlertStore(s.index_dir)  # a restarted server opens the file again
    assert [a.id for a in store.alerts()] == [a.id for a in alerts.values()]
    store.close()
    records = updated["records"]
    extra = write_jsonl(updated["tmp"] / "day3" / "a.jsonl", records[FIRST + ADDED : FIRST + ADDED + 5])
    update([extra], s, embedder, progress=False)
    updated["holder"].reload()
    assert updated["worker"].run_once() == 1
    report = collect(s, keep=1)
    assert report.removed and alerts_path(s.index_dir).is_file()
    for alert in alerts.values():
        after = [(m.article_id, m.version) for m in matches(s, alert.id)]
        assert set(before[alert]) <= set(after)
        assert {aid for aid, v in after if v == current_version(s.index_dir)} <= {r["id"] for r in records[FIRST + ADDED :]}


def test_no_alerts_file_no_batch(tmp_path, embedder):
    """An index nobody saved an alert on gets no alerts file from updates."""
    records = wikinews()
    settings = ServerSettings(index_dir=tmp_path / "index")
    build([write_jsonl(tmp_path / "a" / "a.jsonl", records[:5])], settings, embedder, progress=False)
    update([write_jsonl(tmp_path / "b" / "a.jsonl", records[:7])], settings, embedder, progress=False)
    assert not alerts_path(settings.index_dir).exists()


def test_of_two_requests_deleting_one_alert_only_the_first_succeeds(tmp_path):
    first, second = AlertStore(tmp_path), AlertStore(tmp_path)  # two requests' stores on one alerts file
    try:
        alert = first.create("wildfire", "key")
        assert second.get(alert.id, "key") == alert  # both found it before either deleted it
        first.delete(alert.id, "key")
        second.get = lambda *_: alert  # the second request's lookup ran before the first one's delete
        with pytest.raises(AlertNotFound):
            second.delete(alert.id, "key")
    finally:
        first.close()
        second.close()


def test_unpublished_batch_is_never_evaluated(tmp_path):
    store = AlertStore(tmp_path)
    store.stage("v2", "v1", ["x"])
    store.stage("v3", "v1", ["y"])  # v2's update died before publishing; v3 started from v1 again
    assert store.pending("v1") == []
    assert [b.version for b in store.pending("v3")] == ["v3"]
    store.mark_published("v2")
    assert [b.version for b in store.pending("v3")] == ["v2", "v3"]
    store.close()


def test_feed_parses_back(updated):
    s, alert = updated["settings"], updated["alerts"]["new"]
    found = matches(s, alert.id)
    document = atom(alert, found, f"http://127.0.0.1/alerts/{alert.id}/feed.atom")
    feed = feedparser.parse(document)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10" and alert.query in feed.feed.title
    assert [e.title for e in feed.entries] == [m.title for m in found]
    assert [e.summary for e in feed.entries] == [m.passage for m in found]
    assert all(e.id.startswith(f"urn:newsearch:match:{alert.id}:") for e in feed.entries)


def test_feed_of_hostile_article_text_is_well_formed_xml_and_links_only_the_web(updated):
    alert = updated["alerts"]["new"]
    hostile = [Match(alert.id, f"h-{i}", "v9", i, "lava \uffff flows \x1b on", title, None, None, url, 1.0, 0.5)
               for i, (title, url) in enumerate([("Volcano \uffff erupts \ufffe at dawn", "https://example.org/b4\x1b"),
                                                 ("Lava <b>", "javascript:alert(1)"),
                                                 ("Ash", "HTTPS://example.org/ash"),
                                                 ("Smoke", "http://[oops/x"), ("Dust", "https://example.org/a\tb")])]
    document = atom(alert, hostile, f"http://127.0.0.1/alerts/{alert.id}/feed.atom")
    feed = feedparser.parse(document)
    assert not feed.bozo, feed.get("bozo_exception")
    assert [e.title for e in feed.entries] == ["Volcano   erupts   at dawn", "Lava <b>", "Ash", "Smoke", "Dust"]
    assert [e.link for e in feed.entries] == ["http://127.0.0.1/articles/h-0", "http://127.0.0.1/articles/h-1",
                                              "HTTPS://example.org/ash", "http://127.0.0.1/articles/h-3",
                                              "http://127.0.0.1/articles/h-4"]
    assert feed.entries[0].summary == "lava   flows   on"
