"""The server's settings: the one settings object of the indexer (indexer/settings.py) plus what only the server
reads (its address, API keys, CORS, request limits, re-index paths, alert webhooks), from the same NEWSEARCH_*
variables. The indexer never sees these fields.
"""

from __future__ import annotations

import difflib
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, fields

from indexer.errors import ConfigError
from indexer.settings import DEPRECATED, ENV_PREFIX, Settings, check_ranges


@dataclass(frozen=True)
class ServerSettings(Settings):
    """Every tunable of a `news-search serve` process: the indexer's settings and the server's own. Each field's
    docstring is its user documentation (docs/configuration.md is generated from them)."""

    host: str = "127.0.0.1"
    """Address `news-search serve` listens on."""
    port: int = 8000
    """Port `news-search serve` listens on."""
    api_keys: tuple[str, ...] = ()
    """Comma-separated keys; when set, the search routes need `Authorization: Bearer KEY` or `X-API-Key: KEY`;
    empty: search is open."""
    admin_key: str = ""
    """Key of the `/admin` routes, sent in `X-Admin-Key`; empty: the admin routes are disabled (404)."""
    cors_origins: tuple[str, ...] = ()
    """Comma-separated origins allowed to call the API from a browser; empty: no cross-origin access."""
    max_body_bytes: int = 65536
    """Larger request bodies get 413."""
    max_header_bytes: int = 32768
    """Larger request lines and headers get 431 (docs/reliability.md)."""
    header_timeout: float = 10.0
    """Seconds for a request's headers to arrive (from the connection or its first byte), else 408; also closes
    idle connections."""
    body_timeout: float = 30.0
    """Seconds for a request's body to arrive after its headers, else 408."""
    keep_alive_timeout: float = 5.0
    """Seconds an idle kept-alive connection stays open."""
    max_connections: int = 512
    """Open connections and requests served at once; more get 503."""
    reindex_paths: tuple[str, ...] = ()
    """Comma-separated corpus paths `POST /admin/reindex` reads when the request names none."""
    alert_webhook_attempts: int = 5
    """POSTs of one batch of an alert's matches to its webhook before giving up (docs/alerts.md)."""
    alert_webhook_backoff: float = 2.0
    """Seconds before a webhook's second attempt, doubling after each failure."""
    alert_webhook_timeout: float = 10.0
    """Seconds a webhook has to answer one POST."""


    def validate(self) -> None:
        """Raise ConfigError naming the variable when a value cannot work."""
        super().validate()
        check_ranges(self, SERVER_RANGES)
        for name, keys in (("api_keys", self.api_keys), ("admin_key", (self.admin_key,) if self.admin_key else ())):
            if any(not key.strip() or key != key.strip() for key in keys):
                # HTTP strips a header value's spaces, so such a key could never match: every request a 401.
                raise ConfigError(f"NEWSEARCH_{name.upper()} holds a key that is blank or begins or ends with "
                                  "spaces; no request could send it (leave the variable unset for none)")
        for origin in self.cors_origins:
            if origin != "*" and not is_origin(origin):
                raise ConfigError(f"NEWSEARCH_CORS_ORIGINS: {origin!r} is not an origin; give scheme://host[:port] "
                                  "(no path; compared as written, so no * inside), or * for any")


def is_origin(text: str) -> bool:
    """Whether `text` is an origin as a browser sends it: scheme://host[:port], any scheme (an extension's too),
    an IPv6 host in brackets; nothing else."""
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port past 65535
    except ValueError:
        return False
    return bool(parts.scheme and parts.hostname) and not (
        parts.path or parts.query or parts.fragment or "@" in parts.netloc or "*" in parts.netloc
        or any(c.isspace() for c in text) or text.endswith(":"))


# Allowed range of every numeric server setting, as indexer.settings.RANGES for the indexer's.
SERVER_RANGES: dict[str, tuple[float, float, str]] = {
    "port": (1, 65535, "a TCP port number"),
    "max_body_bytes": (1024, 2**31, "bytes"),
    "max_header_bytes": (1024, 2**24, "bytes"),
    "header_timeout": (0.1, 86400, "seconds"),
    "body_timeout": (0.1, 86400, "seconds"),
    "keep_alive_timeout": (0.1, 86400, "seconds"),
    "max_connections": (1, 1_000_000, "connections"),
    "alert_webhook_attempts": (1, 100, "POSTs of one batch to a webhook before giving up"),
    "alert_webhook_backoff": (0, 3600, "seconds before the second attempt, doubling after"),
    "alert_webhook_timeout": (0.1, 600, "seconds"),
}


# NEWSEARCH_ variables read elsewhere than the settings: the notebook's server address and key (docs/client.md).
OTHER_VARIABLES = ("URL", "CLIENT_API_KEY")


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each NEWSEARCH_ variable no setting reads: a misspelt NEWSEARCH_API_KEY is ignored, and
    search is left open without one."""
    env = os.environ if env is None else env
    known = [f.name.upper() for f in fields(ServerSettings)] + list(DEPRECATED) + list(OTHER_VARIABLES)
    warnings = []
    for variable in sorted(v for v in env if v.startswith(ENV_PREFIX)):
        name = variable[len(ENV_PREFIX):]
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {ENV_PREFIX}{near[0]}?)" if near else " (docs/configuration.md lists them)"
            warnings.append(f"{variable} is not a setting and is ignored{hint}")
    return warnings
