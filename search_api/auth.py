"""API keys: `Authorization: Bearer KEY` (or `X-API-Key: KEY`) checked in constant time; keys are never logged.

NEWSEARCH_API_KEYS protects the search routes when set; NEWSEARCH_ADMIN_KEY protects /admin/*.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from indexer.errors import Unauthorized

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="newsearch"'}
_bearer = HTTPBearer(auto_error=False, description="one of NEWSEARCH_API_KEYS (or NEWSEARCH_ADMIN_KEY for /admin)")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key, for clients that cannot "
                                                                        "send a bearer token")


def presented_key(bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
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


def require_api_key(request: Request, key: Annotated[str | None, Depends(presented_key)]) -> None:
    """When NEWSEARCH_API_KEYS is set, the request must carry one of them (else 401)."""
    keys = request.app.state.settings.api_keys
    if keys and not key_matches(key, keys):
        reason = "missing" if key is None else "unknown"
        raise Unauthorized(f"{reason} API key: send one of NEWSEARCH_API_KEYS as `Authorization: Bearer KEY` "
                           "or in the X-API-Key header")


def require_admin_key(request: Request, key: Annotated[str | None, Depends(presented_key)]) -> None:
    """/admin/* needs NEWSEARCH_ADMIN_KEY; with no admin key configured the admin routes are closed."""
    admin = request.app.state.settings.admin_key
    if not admin:
        raise Unauthorized("admin endpoints are disabled: set NEWSEARCH_ADMIN_KEY on the server to enable them")
    if not key_matches(key, (admin,)):
        raise Unauthorized("missing or wrong admin key: send NEWSEARCH_ADMIN_KEY as `Authorization: Bearer KEY`")
