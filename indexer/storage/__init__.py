"""The storage layer: every read and write of an index version goes through a Store (indexer/storage/base.py).

`open_store(settings)` returns the backend NEWSEARCH_STORE names; see docs/storage.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from indexer.settings import Settings
    from indexer.storage.base import Store

STORES = ("local", "milvus")  # values of NEWSEARCH_STORE; a backend adds its name here and a branch in open_store


def open_store(settings: Settings, create: bool = True) -> Store:
    """The Store of settings.index_dir for the backend settings.store names. Readers (a query, a server, stats)
    pass create=False: a Milvus Lite file that does not exist is "no index published", not made at a typo's path."""
    from indexer.errors import ConfigError

    if settings.store == "local":
        from indexer.storage.local import LocalStore

        return LocalStore(settings)
    if settings.store == "milvus":
        from indexer.storage.milvus import MilvusStore

        return MilvusStore(settings, create=create)
    raise ConfigError(f"NEWSEARCH_STORE must be one of {', '.join(STORES)}, not {settings.store!r}")
