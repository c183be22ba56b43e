"""A daemon thread that runs one step over and over until stopped: the index watcher, the alerts worker and the
lease heartbeat of an update."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from indexer.errors import NewsearchError


class BackgroundLoop:
    """Calls `step` in a daemon thread, first after `first_wait` seconds, then after the seconds each call returns
    (sooner when woken), until stopped. A step that raises is retried after `retry` seconds and logged once per
    distinct reason, which `last_error` holds until a step succeeds: the thread outlives any failure."""

    def __init__(self, name: str, step: Callable[[], float], log: logging.Logger, failure: str,
                 first_wait: float = 0.0, retry: float = 5.0, join_timeout: float = 10.0):
        self.name, self._step, self._log, self._failure = name, step, log, failure
        self._first_wait, self._retry, self._join_timeout = first_wait, retry, join_timeout
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """Whether stop was called: a long step checks it between its parts."""
        return self._stop.is_set()

    def start(self) -> None:
        """Start the thread; a second call, or a call after stop, does nothing."""
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Run the step now rather than at the end of the current wait."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread, letting a step in flight finish (waiting at most join_timeout seconds); idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self._join_timeout)

    def _run(self) -> None:
        wait = self._first_wait
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                wait = self._step()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - a failed step must not end the thread
                reason = str(exc) if isinstance(exc, NewsearchError) else f"{type(exc).__name__}: {exc}"
                if reason != self.last_error:
                    self._log.warning("%s: %s", self._failure, reason)
                self.last_error, wait = reason, self._retry
