"""The server's alerts thread: evaluates the batches updates staged once their version is served, then POSTs each
alert's matches of a batch to its webhook, retrying with exponential backoff. Runs beside the requests, never in
them, and never in the update: publishing a version waits for none of this.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence

import httpx

from indexer.alerts_store import Alert, AlertStore, Delivery, Match, alerts_path
from indexer.background import BackgroundLoop
from search_api.alerts.batch import evaluate
from search_api.holder import SearcherHolder
from search_api.searcher import Searcher
from search_api.settings import ServerSettings

log = logging.getLogger("newsearch.alerts")


def payloads(alerts: Sequence[Alert], matches: Sequence[Match], version: str) -> list[tuple[str, str, str]]:
    """(alert id, webhook URL, JSON body) for each alert with a webhook and matches in this batch."""
    by_alert: dict[str, list[dict]] = {}
    for m in matches:
        by_alert.setdefault(m.alert_id, []).append({k: v for k, v in vars(m).items() if k != "alert_id"})
    return [(a.id, a.webhook, json.dumps({"alert_id": a.id, "query": a.query, "version": version,
                                          "matches": by_alert[a.id]}, ensure_ascii=False))
            for a in alerts if a.webhook and a.id in by_alert]


def backoff_delay(attempts: int, base: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base * 2 ** (attempts - 1)."""
    return base * 2 ** max(attempts - 1, 0)


def drain(store: AlertStore, searcher: Searcher) -> int:
    """Evaluate every pending batch whose version is published up to the served one; returns how many."""
    batches = store.pending(searcher.name)
    done = 0
    for i, batch in enumerate(batches):
        # An article changed again by a later batch is matched there, once, as the version serving it now.
        later = {aid for b in batches[i + 1 :] for aid in b.article_ids}
        ids = [aid for aid in batch.article_ids if aid not in later]
        alerts = [a for a in store.alerts() if a.created <= batch.staged]
        matches = evaluate(searcher, alerts, ids, batch.version)
        if store.record(batch.version, matches, payloads(alerts, matches, batch.version)):
            done += 1
            log.info("alerts: batch %s (%d articles) gave %d match(es) for %d alert(s)", batch.version, len(ids),
                     len(matches), len(alerts))
    return done


# Webhooks POSTed at once: a receiver that never answers delays the others of its group by one timeout at most.
WEBHOOKS_AT_ONCE = 8


async def _post(client: httpx.AsyncClient, delivery: Delivery) -> str | None:
    """POST one delivery's JSON; None on a 2xx answer, else why it failed. Only the status line and headers are
    read: a receiver's body, however large or slow, is never read into memory."""
    async with client.stream("POST", delivery.url, content=delivery.payload.encode(),
                             headers={"Content-Type": "application/json", "User-Agent": "newsearch-alerts"}) as response:
        return None if response.is_success else f"HTTP {response.status_code}"


async def _post_all(deliveries: Sequence[Delivery], timeout: float) -> list[str | None]:
    async with httpx.AsyncClient(timeout=timeout) as client:

        async def one(d: Delivery) -> str | None:
            try:
                return await asyncio.wait_for(_post(client, d), timeout)
            except TimeoutError:
                return f"no answer within {timeout:g} s"
            except Exception as exc:  # noqa: BLE001 - any failure of one POST is that delivery's error, retried
                return f"{type(exc).__name__}: {exc}"[:500]

        return list(await asyncio.gather(*(one(d) for d in deliveries)))


def send(deliveries: Sequence[Delivery], timeout: float) -> list[str | None]:
    """POST each delivery at once, each given `timeout` seconds in all; None for each 2xx answer, else why not.

    httpx's timeout bounds each read, so a receiver sending a byte a second would hold a POST for as long as it
    likes: each POST is cancelled at the deadline, which closes its connection (no POST outlives its attempt,
    so a late success is never sent again as a retry)."""
    return asyncio.run(_post_all(deliveries, timeout)) if deliveries else []


def deliver(store: AlertStore, settings: ServerSettings, stopping: Callable[[], bool] = lambda: False,
            at_once: int = WEBHOOKS_AT_ONCE) -> int:
    """Attempt every due delivery once, `at_once` at a time, until `stopping`; returns how many were delivered."""
    delivered = 0
    due = store.due()
    for start in range(0, len(due), at_once):
        if stopping():
            break
        group = [d for d in due[start : start + at_once] if store.still_pending(d.id)]  # not deleted meanwhile
        for d, error in zip(group, send(group, settings.alert_webhook_timeout)):
            attempts = d.attempts + 1
            retry = (time.time() + backoff_delay(attempts, settings.alert_webhook_backoff)
                     if error is not None and attempts < settings.alert_webhook_attempts else None)
            store.attempted(d.id, error, retry)
            if error is None:
                delivered += 1
            elif retry is None:
                log.warning("alert %s: webhook %s failed %d time(s), giving up: %s", d.alert_id, d.url, attempts,
                            error)
            else:
                log.info("alert %s: webhook %s failed (%s); attempt %d in %.1fs", d.alert_id, d.url, error,
                         attempts + 1, retry - time.time())
    return delivered


class AlertWorker:
    """A thread that evaluates staged batches and sends webhooks, woken by a swap or every poll interval."""

    def __init__(self, settings: ServerSettings, holder: SearcherHolder):
        self.settings = settings
        self.holder = holder
        # stop waits for the group of POSTs in flight (each bounded by NEWSEARCH_ALERT_WEBHOOK_TIMEOUT), at most 30 s.
        self._loop = BackgroundLoop("alerts", self._step, log, "alerts: evaluation or delivery failed, retrying later",
                                    join_timeout=30)

    def run_once(self) -> int:
        """Evaluate what is pending and attempt due deliveries; returns the batches evaluated."""
        if not alerts_path(self.settings.index_dir).is_file() or not self.holder.loaded:
            return 0
        store = AlertStore(self.settings.index_dir)
        try:
            with self.holder.use() as searcher:
                done = drain(store, searcher)
            deliver(store, self.settings, lambda: self._loop.stopping)
            return done
        finally:
            store.close()

    def _next_wait(self) -> float:
        poll = self.settings.reload_interval if self.settings.reload_interval > 0 else 5.0
        if not alerts_path(self.settings.index_dir).is_file():
            return poll
        store = AlertStore(self.settings.index_dir)
        try:
            due = store.next_due()
        finally:
            store.close()
        return poll if due is None else min(poll, max(due - time.time(), 0.05))

    def _step(self) -> float:
        self.run_once()
        return self._next_wait()

    @property
    def last_error(self) -> str | None:
        """Why the last evaluation or delivery failed, until one succeeds."""
        return self._loop.last_error

    def wake(self) -> None:
        """Look for work now (after a swap to a new version)."""
        self._loop.wake()

    def start(self) -> None:
        """Run in a background thread."""
        self._loop.start()

    def stop(self) -> None:
        """Stop the thread (a delivery in flight finishes first)."""
        self._loop.stop()
