"""The one status table: each error's HTTP status, and the client's error for each status, from the same table."""

from __future__ import annotations

import inspect

import pytest

from indexer import alerts_store, errors
from indexer.errors import (
    ArticleNotFound,
    BadQuery,
    IndexDamaged,
    NewsearchError,
    RequestRejected,
    RequestTooLarge,
    ServerError,
    StoryNotFound,
    Unauthorized,
)
from search_api import errors as server_errors
from search_api.client import error_for
from search_api.errors import AdminDisabled, Forbidden, JobNotFound, client_error, status_for, status_of

# The statuses the API has always answered with (docs/searching.md, the OpenAPI schema); the table must keep them.
EXPECTED = {"NewsearchError": 500, "ConfigError": 500, "SourceError": 422, "IndexNotFound": 503,
            "IndexMismatch": 503, "BadQuery": 422, "ArticleNotFound": 404, "StoryNotFound": 404,
            "Unauthorized": 401, "RequestTooLarge": 413, "RequestRejected": 400, "ServerError": 503,
            "IndexBusy": 409, "StorageError": 503, "IndexDamaged": 503, "AlertNotFound": 404,
            "AdminDisabled": 404, "Forbidden": 403, "JobNotFound": 404}


def error_classes() -> dict[str, type[NewsearchError]]:
    """Every NewsearchError class the indexer and the server define."""
    found = {}
    for module in (errors, alerts_store, server_errors):
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, NewsearchError) and value.__module__ == module.__name__:
                found[name] = value
    return found


def test_every_error_has_the_status_it_always_had():
    classes = error_classes()
    assert set(classes) == set(EXPECTED), "a new error class needs its status here and in search_api/errors.py"
    assert {name: status_for(cls) for name, cls in classes.items()} == EXPECTED
    assert status_of(IndexDamaged("damaged", "checksum")) == 503 and status_of(BadQuery("q: empty", "q")) == 422


def test_no_status_is_left_in_the_indexer():
    assert all(not hasattr(cls, "http_status") for cls in error_classes().values())


@pytest.mark.parametrize("error, path, raised", [
    (BadQuery("k: too large", "k"), "/search", BadQuery),
    (Unauthorized("missing API key"), "/search", Unauthorized),
    (Forbidden("wrong admin key"), "/admin/reload", Unauthorized),
    (StoryNotFound("no story s1"), "/stories/s1", StoryNotFound),
    (ArticleNotFound("no article a1"), "/articles/a1", ArticleNotFound),
    (alerts_store.AlertNotFound("no alert"), "/alerts/a1", alerts_store.AlertNotFound),
    (JobNotFound("no job"), "/admin/jobs/x", RequestRejected),
    (AdminDisabled("admin off"), "/admin/reload", RequestRejected),
    (RequestTooLarge("too large"), "/search", RequestTooLarge),
    (errors.IndexBusy("busy"), "/admin/reindex", RequestRejected),
    (errors.StorageError("disk"), "/search", ServerError),
])
def test_the_client_raises_for_each_answer_the_error_its_status_maps_back_to(error, path, raised):
    status = status_of(error)
    assert client_error(status, path) is raised
    made = error_for(status, {"detail": str(error), "field": getattr(error, "field", None)}, path)
    assert type(made) is raised and made.status_code == status and str(error) in str(made)


def test_fastapis_own_400_is_a_bad_query_to_the_client():
    assert client_error(400, "/search") is BadQuery
    assert client_error(418, "/search") is RequestRejected and client_error(504, "/search") is ServerError
