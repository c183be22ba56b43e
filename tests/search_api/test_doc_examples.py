"""The README's and the docs' examples run against what `make serve` serves: a real server over corpus/."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import httpx
import pytest

from tests.search_api.live_server import serve_index

ROOT = Path(__file__).resolve().parents[2]
SERVED = "http://127.0.0.1:8000"
# Pages whose examples search corpus/ (indexing.md serves Reuters, operations.md needs an admin key).
PAGES = ("README.md", "docs/searching.md", "docs/ranking.md")


@pytest.fixture(scope="module")
def base(corpus_index, corpus_settings, embedder):
    with serve_index(corpus_index, corpus_settings, embedder) as url:
        yield url


def curl_gets(text: str) -> list[str]:
    """The addresses of the plain `curl URL` (GET) examples in a page."""
    return re.findall(rf"^\s*curl '?({re.escape(SERVED)}/[^'\s]*)'?\s*$", text, re.MULTILINE)


@pytest.mark.parametrize("page", PAGES)
def test_every_curl_example_answers_on_the_served_corpus(base, page):
    urls = curl_gets((ROOT / page).read_text(encoding="utf-8"))
    assert urls, f"{page} has no curl example"
    for url in urls:
        r = httpx.get(url.replace(SERVED, base), timeout=60)
        assert r.status_code == 200, (url, r.text)
        if "/search?" in url:
            assert r.json()["hits"], url


def test_the_readme_search_finds_its_story_and_its_python_example_runs(base):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (url,) = [u for u in curl_gets(readme) if "/search?" in u]
    top = httpx.get(url.replace(SERVED, base), timeout=60).json()["hits"][0]
    assert "Magnitogorsk" in top["title"]
    (code,) = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code.replace(SERVED, base), {})
    out = printed.getvalue()
    assert out.startswith("1 Russia-backed Syrian army") and "Palmyra" in out.splitlines()[0]
    assert re.findall(r"^(\d) ", out, re.MULTILINE) == ["1", "2", "3"]  # rank, title, sentence: three hits
