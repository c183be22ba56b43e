"""The version being served and zero-downtime swaps: a new published version is opened in the
background and swapped in atomically; requests in flight finish on the version they started
with, which is closed only when its last request is done. Served versions hold leases so
`news-index gc` leaves them alone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from indexer.background import BackgroundLoop
from indexer.embed import Embedder
from indexer.errors import IndexNotFound
from indexer.leases import drop_lease, renew_lease, take_lease
from indexer.settings import Settings
from indexer.storage import open_store
from search_api.searcher import Searcher

log = logging.getLogger("newsearch.reload")


@dataclass
class Served:
    """One opened version and the requests using it."""

    searcher: Searcher
    owned: bool  # opened by the holder, so the holder closes it
    lease: object = None
    users: int = 0
    retired: bool = False


class SearcherHolder:
    """The searcher being served; swapped whole so a request keeps the version it started with."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.embedder = embedder
        self._served: Served | None = None
        self._all: list[Served] = []
        self._lock = threading.Lock()  # guards _served, users, retired
        self._reload_lock = threading.Lock()  # one load at a time
        interval, lease_tick = settings.reload_interval, settings.lease_seconds / 4
        self._tick = min(interval, lease_tick) if interval > 0 else lease_tick
        self._waited = 0.0  # since the last reload
        self._watcher = BackgroundLoop("index-watcher", self._watch, log, "cannot load the published version, still "
                                       "serving the old one", first_wait=self._tick, retry=self._tick)
        self.fault: str | None = None  # why the served version cannot be read; cleared by the next swap

    def load(self) -> Searcher:
        """Open the published version and serve it."""
        return self._open_and_swap(open_store(self.settings, create=False).current())

    def _open_and_swap(self, name: str) -> Searcher:
        """Lease `name`, then open and serve it; the lease comes first so gc cannot remove it mid-open."""
        if self.embedder is None:
            self.embedder = Embedder.from_settings(self.settings)
            self.embedder.load(queries=True)  # a server embeds queries only: never load the passages' runtime
        lease = self._take_lease(name)
        try:
            searcher = Searcher.open(self.settings.index_dir, self.settings, self.embedder, version=name)
        except BaseException:
            if lease is not None:
                drop_lease(lease)
            raise
        self.swap(searcher, owned=True, lease=lease)
        return searcher

    def _take_lease(self, name: str) -> object:
        try:
            return take_lease(self.settings.index_dir, name)
        except OSError as exc:  # a read-only index folder can still be served; gc just cannot see us
            log.warning("cannot write a lease for %s (%s); `news-index gc` will not know this server uses it",
                        name, exc)
            return None

    def swap(self, searcher: Searcher, owned: bool = False, lease: object = None) -> None:
        """Serve `searcher` from now on; the previous one closes when its last request ends."""
        served = Served(searcher, owned, lease)
        if served.lease is None:
            with contextlib.suppress(OSError):
                served.lease = take_lease(searcher.version.index_dir, searcher.name)
        with self._lock:
            old, self._served = self._served, served
            self._all.append(served)
            self.fault = None
            if old is not None:
                old.retired = True
        if old is not None:
            self._release_if_idle(old)

    @property
    def loaded(self) -> bool:
        """True once a version is being served."""
        return self._served is not None

    @property
    def current(self) -> Searcher:
        """The searcher new requests use (for a whole request, prefer `use`)."""
        served = self._served
        if served is None:
            raise IndexNotFound(f"no index is loaded from {self.settings.index_dir}; build one with "
                                f"`news-index build <corpus> --index-dir {self.settings.index_dir}` and restart")
        return served.searcher

    @contextlib.contextmanager
    def use(self) -> Iterator[Searcher]:
        """The current searcher, kept open until the block ends even if a swap happens meanwhile."""
        with self._lock:
            served = self._served
            if served is None:
                self.current  # noqa: B018 - raises the IndexNotFound that explains what to do
            served.users += 1
        try:
            yield served.searcher
        finally:
            with self._lock:
                served.users -= 1
            self._release_if_idle(served)

    def _release_if_idle(self, served: Served) -> None:
        with self._lock:
            if not served.retired or served.users or served not in self._all:
                return
            self._all.remove(served)
        if served.lease is not None:
            drop_lease(served.lease)
        if served.owned:
            served.searcher.close()

    def mark_damaged(self, name: str, reason: str) -> None:
        """Version `name` failed to read its files: not ready until a readable version is swapped in (the
        watcher retries the published one each interval); an older version still open is served meanwhile."""
        with self._lock:
            served = self._served
            if served is None or served.searcher.name != name:
                return  # already swapped away
            fallback = next((s for s in reversed(self._all) if s is not served and s.searcher.name != name), None)
            if fallback is None:
                self.fault = f"the served index {name} cannot be read ({reason})"
                return
            # A version still draining requests is whole in memory and on its own files: serve it again.
            fallback.retired, served.retired, self._served = False, True, fallback
        log.warning("index %s cannot be read (%s); serving %s again", name, reason, fallback.searcher.name)
        self._release_if_idle(served)

    def reload(self, force: bool = False) -> dict[str, str | bool | None]:
        """Serve the published version if it is not the one served (with `force`, open it again even if it
        is); returns what changed."""
        with self._reload_lock:
            previous = self._served.searcher.name if self._served else None
            published = open_store(self.settings, create=False).current()
            if published == previous and not force:
                return {"previous": previous, "current": published, "changed": False}
            self._open_and_swap(published)
            log.info("now serving %s (was %s)", published, previous)
            return {"previous": previous, "current": published, "changed": True}

    def renew_leases(self) -> None:
        """Heartbeat of every version still open (served or draining)."""
        with self._lock:
            leases = [s.lease for s in self._all if s.lease is not None]
        for lease in leases:
            with contextlib.suppress(OSError):
                renew_lease(lease)

    def _watch(self) -> float:
        """One tick of the watcher: renew the leases, and reload when reload_interval has passed; a failed reload leaves
        the old version serving (BackgroundLoop logs why)."""
        self.renew_leases()
        self._waited += self._tick
        interval = self.settings.reload_interval
        if interval > 0 and self._waited >= interval:
            self._waited = 0.0
            self.reload(force=self.fault is not None)
        return self._tick

    @property
    def last_error(self) -> str | None:
        """Why the watcher's last tick failed (a reload), until one succeeds."""
        return self._watcher.last_error

    def start_watching(self) -> None:
        """Poll CURRENT every reload_interval seconds (and renew leases) in a background thread."""
        self._watcher.start()

    def close(self) -> None:
        """Stop watching and release every version this holder opened."""
        self._watcher.stop()
        with self._lock:
            for served in self._all:
                served.retired = True
            pending = list(self._all)
        for served in pending:
            self._release_if_idle(served)
