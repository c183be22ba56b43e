"""BackgroundLoop: the daemon thread of the index watcher and the alerts worker (start, wake, stop, failures)."""

from __future__ import annotations

import logging
import threading

from indexer.background import BackgroundLoop

log = logging.getLogger("newsearch.test-background")
LONG = 60.0  # a wait no test sits out: only wake or stop ends it


class Steps:
    """A step that counts its calls, fails while `failure` is set, and lets a test wait for the nth call."""

    def __init__(self):
        self.calls = 0
        self.failure: Exception | None = None
        self._called = threading.Condition()

    def __call__(self) -> float:
        failure = self.failure  # read before the test hears of the call and changes it
        with self._called:
            self.calls += 1
            self._called.notify_all()
        if failure is not None:
            raise failure
        return LONG

    def wait_for(self, n: int) -> bool:
        with self._called:
            return self._called.wait_for(lambda: self.calls >= n, timeout=10)


def test_start_runs_the_first_step_then_waits_until_woken():
    steps = Steps()
    loop = BackgroundLoop("test", steps, log, "failed", retry=LONG)
    loop.start()
    try:
        assert steps.wait_for(1) and loop.running
        loop.wake()
        assert steps.wait_for(2)
    finally:
        loop.stop()
    assert not loop.running and steps.calls == 2


def test_start_and_stop_are_idempotent_and_a_stopped_loop_stays_stopped():
    steps = Steps()
    loop = BackgroundLoop("test", steps, log, "failed", first_wait=LONG)
    loop.stop()  # before start: nothing to join
    loop.start()
    assert not loop.running and steps.calls == 0

    loop = BackgroundLoop("test", steps, log, "failed", first_wait=LONG)
    loop.start()
    thread = loop._thread
    loop.start()
    assert loop._thread is thread and loop.running
    loop.stop()
    loop.stop()
    assert not loop.running and steps.calls == 0  # stopped during the first wait: no step ran
    loop.start()
    assert not loop.running


def test_a_failing_step_is_logged_once_per_reason_and_the_thread_lives_on(caplog):
    steps = Steps()
    steps.failure = RuntimeError("disk hiccup")
    loop = BackgroundLoop("test", steps, log, "cannot load", retry=LONG)
    with caplog.at_level(logging.WARNING, logger=log.name):
        loop.start()
        try:
            assert steps.wait_for(1)
            loop.wake()
            assert steps.wait_for(2) and loop.running
            steps.failure = None
            loop.wake()
            assert steps.wait_for(3)
        finally:
            loop.stop()
    assert [r.getMessage() for r in caplog.records] == ["cannot load: RuntimeError: disk hiccup"]
    assert loop.last_error is None  # the third step succeeded
