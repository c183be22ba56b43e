"""The one error hierarchy: each message says what went wrong and what to do about it."""

from __future__ import annotations


class NewsearchError(Exception):
    """Base of every error a user can cause or fix; the CLI prints it on one line."""

    http_status = 500


class ConfigError(NewsearchError):
    """A setting or flag has a value that cannot work."""

    http_status = 500


class SourceError(NewsearchError):
    """A corpus file or record cannot be read (fatal only with --strict)."""

    http_status = 422


class IndexNotFound(NewsearchError):
    """No published index where one was expected."""

    http_status = 503


class IndexMismatch(NewsearchError):
    """The index was built with another model or format, or its files are damaged."""

    http_status = 503


class BadQuery(NewsearchError):
    """A search request that cannot be answered as asked."""

    http_status = 422

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ArticleNotFound(NewsearchError):
    """No article with the requested id in the published index."""

    http_status = 404


class Unauthorized(NewsearchError):
    """A protected route was called without a valid key."""

    http_status = 401


class RequestTooLarge(NewsearchError):
    """A request body over the configured limit."""

    http_status = 413


class RequestRejected(NewsearchError):
    """Any other 4xx answer of the server (the Python client raises it with the server's message)."""

    http_status = 400


class ServerError(NewsearchError):
    """The server could not be reached, or answered 5xx, after the Python client's retries."""

    http_status = 503


class IndexBusy(NewsearchError):
    """Another build, update or gc is writing the index folder, or a re-index job is already running."""

    http_status = 409


class StorageError(NewsearchError):
    """The index folder cannot be read or written: a damaged file, a read-only folder or a full disk."""

    http_status = 503


class IndexDamaged(StorageError):
    """A version's files stopped reading after it was opened and verified (damaged or removed under it)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason  # the storage engine's own words, for the server's message
