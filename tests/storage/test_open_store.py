"""NEWSEARCH_STORE chooses the backend; an unknown one is refused naming the valid ones."""

from __future__ import annotations

import pytest

from indexer.errors import ConfigError
from indexer.settings import Settings
from indexer.storage import STORES, open_store
from indexer.storage.local import LocalStore


def test_the_default_store_is_local(tmp_path):
    settings = Settings.from_env({"NEWSEARCH_INDEX_DIR": str(tmp_path)})
    store = open_store(settings)
    assert settings.store == "local" and isinstance(store, LocalStore) and store.index_dir == tmp_path
    assert store.versions() == []


def test_an_unknown_store_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"NEWSEARCH_STORE must be one of local.*not 'cassandra'") as err:
        Settings.from_env({"NEWSEARCH_STORE": "cassandra"})
    assert all(name in str(err.value) for name in STORES)
