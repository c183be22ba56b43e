"""NEWSEARCH_STORE chooses the backend; an unknown one is refused naming the valid ones."""

from __future__ import annotations

import subprocess
import sys

import pytest

from indexer.errors import ConfigError, IndexNotFound, StorageError
from indexer.settings import Settings
from indexer.storage import STORES, open_store
from indexer.storage.local import LocalStore
from indexer.storage.milvus_wire import connect


def test_the_default_store_is_local(tmp_path):
    settings = Settings.from_env({"NEWSEARCH_INDEX_DIR": str(tmp_path)})
    store = open_store(settings)
    assert settings.store == "local" and isinstance(store, LocalStore) and store.index_dir == tmp_path
    assert store.versions() == []


def test_an_unknown_store_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"NEWSEARCH_STORE must be one of local.*not 'cassandra'") as err:
        Settings.from_env({"NEWSEARCH_STORE": "cassandra"})
    assert all(name in str(err.value) for name in STORES)


def test_a_milvus_lite_file_open_in_another_process_is_one_clear_error(tmp_path, capfd):
    path = tmp_path / "m.db"
    holder = subprocess.Popen(  # another process with Milvus Lite open on the file, as a running server has
        [sys.executable, "-c", f"from pymilvus import MilvusClient; c = MilvusClient({str(path)!r}); print('open', "
                               "flush=True); import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StorageError, match="open in another process .* `milvus-lite server`"):
            connect(str(path))
        assert "Traceback" not in capfd.readouterr().err  # Milvus Lite's own log of the failure is kept quiet
    finally:
        holder.communicate("", timeout=60)
    connect(str(path)).close()  # free again: opened here


def test_a_reader_never_creates_a_milvus_lite_file_at_a_mistyped_path(tmp_path):
    uri = tmp_path / "no" / "such" / "m.db"
    settings = Settings(index_dir=tmp_path / "index", store="milvus", milvus_uri=str(uri))
    with pytest.raises(IndexNotFound, match="no Milvus Lite database at .*m.db"):
        open_store(settings, create=False)
    assert not (tmp_path / "no").exists() and not (tmp_path / "index").exists()
