"""The HTTP status of every error, in one table: the server answers with it (exception handlers, middleware) and
the Python client maps a status back to the error it raises. Also the errors only the server raises.
"""

from __future__ import annotations

from indexer.alerts_store import AlertNotFound
from indexer.errors import (
    ArticleNotFound,
    BadQuery,
    ConfigError,
    IndexBusy,
    IndexMismatch,
    IndexNotFound,
    NewsearchError,
    RequestRejected,
    RequestTooLarge,
    ServerError,
    SourceError,
    StorageError,
    StoryNotFound,
    Unauthorized,
)


class AdminDisabled(NewsearchError):
    """Admin routes are off: no NEWSEARCH_ADMIN_KEY is configured."""


class Forbidden(NewsearchError):
    """A key was sent but it is not the admin key."""


class JobNotFound(NewsearchError):
    """No job with that id in this server's memory."""


# An error's status is that of the first of its classes (its own, then its bases) listed here.
STATUS: dict[type[NewsearchError], int] = {
    NewsearchError: 500,
    ConfigError: 500,
    SourceError: 422,
    BadQuery: 422,
    RequestRejected: 400,
    Unauthorized: 401,
    Forbidden: 403,
    ArticleNotFound: 404,  # and StoryNotFound
    AlertNotFound: 404,
    JobNotFound: 404,
    AdminDisabled: 404,  # the admin routes answer as if they did not exist
    IndexBusy: 409,
    RequestTooLarge: 413,
    IndexNotFound: 503,
    IndexMismatch: 503,
    StorageError: 503,  # and IndexDamaged
    ServerError: 503,
}

# The errors the client raises for a 4xx, by status, the 404s by the route's path; a 403 (a wrong admin key) is an
# Unauthorized and FastAPI's own 400 a BadQuery to the client, whose caller acts the same on both. Any other 4xx is a
# RequestRejected, any 5xx a ServerError.
CLIENT_ERRORS: tuple[tuple[type[NewsearchError], str], ...] = (
    (BadQuery, ""), (Unauthorized, ""), (StoryNotFound, "/stories/"), (ArticleNotFound, "/articles/"),
    (AlertNotFound, "/alerts/"), (RequestTooLarge, ""))
CLIENT_ALIASES: dict[int, type[NewsearchError]] = {400: BadQuery, 403: Unauthorized}


def status_for(kind: type[NewsearchError]) -> int:
    """The HTTP status the server answers an error of this class with."""
    return next(STATUS[cls] for cls in kind.__mro__ if cls in STATUS)


def status_of(error: NewsearchError) -> int:
    """The HTTP status the server answers this error with."""
    return status_for(type(error))


def client_error(status: int, path: str) -> type[NewsearchError]:
    """The error class the Python client raises for an answer with this status from this route."""
    for kind, prefix in CLIENT_ERRORS:
        if status_for(kind) == status and path.startswith(prefix):
            return kind
    if status in CLIENT_ALIASES:
        return CLIENT_ALIASES[status]
    return RequestRejected if status < 500 else ServerError
