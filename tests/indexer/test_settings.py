"""The one settings object: env variables, flags on top, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.errors import ConfigError
from indexer.settings import Settings


def test_env_then_flags():
    env = {"NEWSEARCH_INDEX_DIR": "/data/idx", "NEWSEARCH_PORT": "9000", "NEWSEARCH_API_KEYS": "a, b",
           "NEWSEARCH_RRF_K": "30", "OTHER": "x"}
    s = Settings.from_env(env, port=9100, host=None)
    assert s.index_dir == Path("/data/idx") and s.port == 9100 and s.api_keys == ("a", "b") and s.rrf_k == 30
    assert s.host == "127.0.0.1"


@pytest.mark.parametrize("env, message", [
    ({"NEWSEARCH_PORT": "eighty"}, "NEWSEARCH_PORT='eighty' is not a valid int"),
    ({"NEWSEARCH_FIELDS": "title"}, "NEWSEARCH_FIELDS must be one of"),
    ({"NEWSEARCH_CHUNK_TOKENS": "1000"}, "NEWSEARCH_CHUNK_TOKENS"),
])
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
