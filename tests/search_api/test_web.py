"""The web search page, driven in Debian's headless Chromium by Playwright, against a real server.

The index holds corpus/ plus articles whose title and body contain <script> and <img onerror> markup.
Screenshots land in var/screenshots/ for a developer to look at.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest

from indexer.pipeline import build
from tests.helpers import CORPUS, ROOT
from tests.search_api.live_server import serve_index

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google, and this machine refuses it.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "var" / "screenshots"
SEED_QUERY = "Syrian army retakes Palmyra with Russian air support"
SEED_TITLE = "Russia-backed Syrian army carry on anti-ISIS push"
HOSTILE = [
    {"id": "markup-1", "title": "Harbour bridge <script>window.__pwned = 1</script> repairs approved",
     "body": "The city council approved the harbour bridge repairs <img src=x onerror=\"window.__pwned = 2\"> "
             "after a long debate about the budget.\n\nCouncillors said <script>document.title = 'owned'</script> "
             "the bridge would close for two months while the steel deck is replaced.",
     "date": "2020-05-01T09:00:00Z", "source": "Harbour <b>Gazette</b>", "url": "javascript:window.__pwned = 3"},
    {"id": "markup-2", "title": "Ferry timetable changes during bridge works",
     "body": "Extra ferries will run across the harbour while the bridge is closed for repairs.",
     "date": "2020-05-03T09:00:00Z", "source": "Harbour <b>Gazette</b>", "url": "https://example.org/ferry"},
    {"id": "astral-1", "title": "Volcano near the town",  # characters beyond U+FFFF before the highlight
     "body": "\U0001F600" * 12 + " Markets were calm today and traders went home early. Meanwhile the volcano "
             "erupted violently near the town.", "date": "2020-05-04T09:00:00Z", "source": "Emoji Wire"},
]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, corpus_index, corpus_settings, embedder) -> Path:
    """corpus/ plus the hostile articles, embedded through a copy of the corpus index's cache."""
    folder = tmp_path_factory.mktemp("web")
    extra = folder / "hostile.jsonl"
    extra.write_text("".join(json.dumps(a) + "\n" for a in HOSTILE), encoding="utf-8")
    shutil.copytree(corpus_index / "cache", folder / "cache")
    settings = corpus_settings.replace(index_dir=folder / "index", cache_dir=str(folder / "cache"))
    build([CORPUS, extra], settings, embedder, progress=False)
    return settings.index_dir


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: run `make install` as root (it apt-get installs chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=FLAGS, viewport={"width": 1100, "height": 1400})
        yield context
        context.close()


@pytest.fixture(scope="module")
def server(index_dir, corpus_settings, embedder):
    with serve_index(index_dir, corpus_settings.replace(index_dir=index_dir), embedder) as url:
        yield url


@pytest.fixture
def page(browser_context):
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    tab.close()
    assert errors == [], f"the page raised JavaScript errors: {errors}"


def settle(page, action) -> None:
    """Do `action`, wait for the search it starts, then for the page to draw the answer."""
    with page.expect_response(lambda r: "/search?" in r.url):
        action()
    page.wait_for_selector("#status:not(:has-text('Searching'))")


def search(page, query: str) -> None:
    page.fill("#q", query)
    settle(page, lambda: page.press("#q", "Enter"))


def set_filter(page, selector: str, value: str) -> None:
    page.fill(selector, value)
    settle(page, lambda: page.dispatch_event(selector, "change"))


def titles(page) -> list[str]:
    return page.locator("#results .hit h2").all_inner_texts()


@pytest.mark.slow
def test_search_then_filter_by_date_then_page_two(page, server):
    page.goto(server + "/")
    page.wait_for_selector("#index-info:has-text('54 articles')")  # corpus/ and HOSTILE
    search(page, SEED_QUERY)
    assert titles(page)[0] == SEED_TITLE
    first = page.locator("#results .hit").first
    assert "Palmyra" in first.locator("mark").inner_text()
    assert first.locator(".date").inner_text() == "undated" and first.locator(".score").inner_text().startswith("score")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "search-page.png"), full_page=True)

    set_filter(page, "#since", "2019-01-01")
    set_filter(page, "#until", "2019-12-31")
    dates = page.locator("#results .hit .date").all_inner_texts()
    assert len(dates) == 10 and all("2019-01-01" <= d <= "2019-12-31" for d in dates)
    assert SEED_TITLE not in titles(page)

    page_one = titles(page)
    settle(page, lambda: page.click("#next"))
    page.wait_for_selector("#page-info:has-text('Page 2 of')")
    assert page.locator("#results .hit .rank").first.inner_text() == "#11"
    assert not set(page_one) & set(titles(page))
    assert all("2019-01-01" <= d <= "2019-12-31" for d in page.locator("#results .hit .date").all_inner_texts())
    assert re.search(r"page=2", page.url) and "since=2019-01-01" in page.url
    page.screenshot(path=str(SHOTS / "search-page-2.png"), full_page=True)

    settle(page, page.go_back)  # history works: back to page 1 of the filtered search
    page.wait_for_selector("#page-info:has-text('Page 1 of')")
    assert titles(page) == page_one


@pytest.mark.slow
def test_no_close_match_shows_the_nearest_without_marks(page, server):
    page.goto(server + "/")
    search(page, "xqzv plorb frumious snorkeldink")
    assert page.inner_text("#status").startswith("No close matches; nearest shown")
    assert page.locator("#results .hit").count() == 10 == page.locator("#results .hit.weak").count()
    assert page.locator("#results mark").count() == 0
    search(page, SEED_QUERY)
    assert "close match" in page.inner_text("#status") and page.locator("#results .hit").first.get_attribute("class") == "hit"
    page.screenshot(path=str(SHOTS / "search-page-no-close-match.png"), full_page=True)


@pytest.mark.slow
def test_markup_inside_articles_is_shown_as_text(page, server):
    page.goto(server + "/")
    search(page, "harbour bridge repairs council")
    hit = page.locator("#results .hit", has_text="Harbour bridge").first
    assert hit.locator("h2").inner_text() == HOSTILE[0]["title"]  # the tags are visible text
    assert "<img src=x onerror=" in hit.locator(".passage").inner_text()
    assert hit.locator(".source").inner_text() == "Harbour <b>Gazette</b>"
    assert hit.locator("h2 a").count() == 0  # a javascript: url is not made a link
    hit.locator("button.read").click()
    hit.locator(".extra h3").wait_for()
    assert "<script>document.title = 'owned'</script>" in hit.locator(".extra").inner_text()
    assert page.evaluate("window.__pwned") is None and page.title() == "newsearch"
    assert page.locator("#results script, #results img, #results b").count() == 0
    page.screenshot(path=str(SHOTS / "search-page-markup.png"), full_page=True)


@pytest.mark.slow
def test_the_highlight_marks_the_servers_sentence_after_emoji(page, server):
    page.goto(server + "/")
    search(page, "volcano erupted violently near the town")
    hit = page.locator("#results .hit", has_text="Volcano near the town").first
    assert hit.locator(".passage mark").all_inner_texts() == ["Meanwhile the volcano erupted violently near the town."]


@pytest.mark.slow
def test_the_page_keeps_to_the_servers_limits(page, index_dir, corpus_settings, embedder):
    # NEWSEARCH_MAX_K=5, results ranked 12 deep: pages of 5, 5 and 2; "More from this article" asks for 5.
    settings = corpus_settings.replace(index_dir=index_dir, max_k=5, candidates=12)
    with serve_index(index_dir, settings, embedder) as url:
        page.goto(url + "/?q=election+results")  # a shared link: its search waits for the limits
        page.wait_for_selector("#page-info:has-text('Page 1 of 3')")
        assert len(titles(page)) == 5 and page.locator("#status.error").count() == 0
        for expected in (5, 2):
            settle(page, lambda: page.click("#next"))
            assert len(titles(page)) == expected
        assert page.locator("#next").is_disabled() and page.locator("#status.error").count() == 0
        first = page.locator("#results .hit").first
        first.locator("button.more").click()
        first.locator(".extra h3").wait_for()
        assert "Error" not in first.locator(".extra").inner_text()


@pytest.mark.slow
def test_more_from_article_empty_results_and_errors(page, server):
    page.goto(server + "/?q=" + SEED_QUERY.replace(" ", "+"))  # a shared link runs its search
    page.wait_for_selector("#results .hit")
    first = page.locator("#results .hit").first
    first.locator("button.more").click()
    first.locator(".extra h3").wait_for()
    assert re.match(r"Other matching passages \(\d+\)", first.locator(".extra h3").inner_text())
    assert first.locator(".extra .passage").count() >= 1

    set_filter(page, "#since", "2030-01-01")
    page.wait_for_selector("#status.empty")
    assert "No results for" in page.inner_text("#status") and "removing the date" in page.inner_text("#status")

    set_filter(page, "#until", "2029-01-01")
    page.wait_for_selector("#status.error")
    assert "since must be before until" in page.inner_text("#status")
    assert page.get_attribute("#since", "aria-invalid") == "true"


@pytest.mark.slow
def test_page_asks_for_and_uses_an_api_key(page, index_dir, corpus_settings, embedder):
    settings = corpus_settings.replace(index_dir=index_dir, api_keys=("page-key",))
    with serve_index(index_dir, settings, embedder) as url:
        csp = httpx.get(url + "/").headers["content-security-policy"]
        assert "script-src 'sha256-" in csp and "unsafe-inline" not in csp
        page.goto(url + "/")
        search(page, "gas explosion")
        page.wait_for_selector("#status.error")
        assert "needs an API key" in page.inner_text("#status") and page.locator("#settings[open]").count() == 1
        page.fill("#api-key", "page-key")
        settle(page, lambda: page.dispatch_event("#api-key", "change"))
        page.wait_for_selector("#results .hit")
        assert "Magnitogorsk" in titles(page)[0]


def test_story_grouping_and_timeline(page, server):
    page.goto(f"{server}/?q=" + SEED_QUERY.replace(" ", "+") + "&group=story")
    page.wait_for_selector("li.hit")
    assert page.input_value("#group") == "story"
    first = page.locator("li.hit").first
    assert re.search(r"story: \d+ articles?, ", first.locator(".meta .story").inner_text())
    first.locator("button.follow").click()
    page.wait_for_selector("ol.timeline li")
    heading = first.locator(".extra h3").first.inner_text()
    assert heading.startswith("Story timeline: ")
    assert first.locator("ol.timeline li.current").inner_text().endswith(SEED_TITLE)
    assert first.locator("ul.related li").count() >= 1  # related coverage from other stories
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "story-timeline.png"), full_page=True)
    first.locator("button.more").click()  # group=story on the page, group=none for one article's passages
    from playwright.sync_api import expect

    expect(first.locator(".extra h3").first).to_contain_text("passage")
