"""GET /: the web search page, one self-contained HTML file (package data) calling the JSON API.

A Content-Security-Policy allows only the page's own inline script and style (by hash) and requests to this
server, so even markup that slipped into the page could not run.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = "static/search.html"
router = APIRouter()


@dataclass(frozen=True)
class Page:
    """The page's HTML and the security headers that go with it."""

    html: str
    headers: dict[str, str]


def csp_hashes(html: str, tag: str) -> list[str]:
    """CSP source expressions ('sha256-...') of each inline <tag> element's content."""
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies]


@cache
def page() -> Page:
    """The page read from the package once, on first request (never at import)."""
    html = (files("search_api") / PAGE).read_text(encoding="utf-8")
    policy = "; ".join([
        "default-src 'none'", "script-src " + " ".join(csp_hashes(html, "script")),
        "style-src " + " ".join(csp_hashes(html, "style")), "connect-src 'self'", "img-src 'self' data:",
        "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ])
    return Page(html, {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
                       "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def search_page() -> HTMLResponse:
    """The search page (it asks the API for everything it shows)."""
    p = page()
    return HTMLResponse(p.html, headers=p.headers)
