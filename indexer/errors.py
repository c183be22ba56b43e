"""The one error hierarchy: each message says what went wrong and what to do about it. Their HTTP statuses are
the server's (search_api/errors.py)."""

from __future__ import annotations


class NewsearchError(Exception):
    """Base of every error a user can cause or fix; the CLI prints it on one line."""

    # The HTTP status an error came with, and the request field it names (the Python client sets both; an error
    # raised before any request was answered has neither).
    status_code: int | None = None
    field: str | None = None


class ConfigError(NewsearchError):
    """A setting or flag has a value that cannot work."""


class SourceError(NewsearchError):
    """A corpus file or record cannot be read (fatal only with --strict)."""


class IndexNotFound(NewsearchError):
    """No published index where one was expected."""


class IndexMismatch(NewsearchError):
    """The index was built with another model or format, or its files are damaged."""


class BadQuery(NewsearchError):
    """A search request that cannot be answered as asked."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ArticleNotFound(NewsearchError):
    """No article with the requested id in the published index."""


class StoryNotFound(ArticleNotFound):
    """No story with that id in the served version."""


class Unauthorized(NewsearchError):
    """A protected route was called without a valid key."""


class RequestTooLarge(NewsearchError):
    """A request body over the configured limit."""


class RequestRejected(NewsearchError):
    """Any other 4xx answer of the server (the Python client raises it with the server's message)."""


class ServerError(NewsearchError):
    """The server could not be reached, or answered 5xx, after the Python client's retries."""


class IndexBusy(NewsearchError):
    """Another build, update or gc is writing the index folder, or a re-index job is already running."""


class StorageError(NewsearchError):
    """The index folder cannot be read or written: a damaged file, a read-only folder or a full disk."""


class IndexDamaged(StorageError):
    """A version's files stopped reading after it was opened and verified (damaged or removed under it)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason  # the storage engine's own words, for the server's message
