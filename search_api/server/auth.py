"""API keys: `Authorization: Bearer KEY` (or `X-API-Key: KEY`) checked in constant time; keys are never logged.
The checks are `async def` so FastAPI runs them on the event loop, not through the thread pool.

NEWSEARCH_API_KEYS protects the search routes when set; NEWSEARCH_ADMIN_KEY protects /admin/*.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from indexer.errors import Unauthorized
from search_api.errors import AdminDisabled, Forbidden

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="newsearch"'}
_bearer = HTTPBearer(auto_error=False, description="one of NEWSEARCH_API_KEYS (or NEWSEARCH_ADMIN_KEY for /admin)")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key, for clients that cannot "
                                                                        "send a bearer token")


async def presented_key(bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                  header: Annotated[str | None, Depends(_header)]) -> str | None:
    """The key a request carries: the bearer token, else the X-API-Key header."""
    return bearer.credentials if bearer else header


def key_matches(key: str | None, keys: tuple[str, ...]) -> bool:
    """Whether `key` is one of `keys`, comparing against every key in constant time."""
    given = (key or "").encode()
    found = False
    for candidate in keys:
        found |= hmac.compare_digest(given, candidate.encode())
    return found and key is not None


async def require_api_key(request: Request, key: Annotated[str | None, Depends(presented_key)]) -> None:
    """When NEWSEARCH_API_KEYS is set, the request must carry one of them (else 401)."""
    keys = request.app.state.settings.api_keys
    if keys and not key_matches(key, keys):
        reason = "missing" if key is None else "unknown"
        raise Unauthorized(f"{reason} API key: send one of NEWSEARCH_API_KEYS as `Authorization: Bearer KEY` "
                           "or in the X-API-Key header")


async def require_admin_key(request: Request, key: Annotated[str | None, Depends(presented_key)],
                      x_admin_key: Annotated[str | None, Header()] = None) -> None:
    """/admin/* needs NEWSEARCH_ADMIN_KEY in X-Admin-Key (or as a bearer token).

    With no admin key configured the routes answer 404 as if they did not exist; a missing key is
    401, a wrong one 403.
    """
    admin = request.app.state.settings.admin_key
    if not admin:
        raise AdminDisabled("admin endpoints are disabled; set NEWSEARCH_ADMIN_KEY on the server to enable them")
    given = x_admin_key or key
    if given is None:
        raise Unauthorized("send the admin key (NEWSEARCH_ADMIN_KEY) in the X-Admin-Key header")
    if not key_matches(given, (admin,)):
        raise Forbidden("the admin key sent does not match NEWSEARCH_ADMIN_KEY")
