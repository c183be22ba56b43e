"""Prometheus metrics of one app: requests and latency per route and status, search latency per mode,
query embedding time, and the served index (version, articles, passages) read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Seconds; searches here take milliseconds to about a second on a shared 2-core CPU.
BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IndexCollector(Collector):
    """Gauges of the index being served, read from the holder on each scrape (so reloads show at once)."""

    def __init__(self, current: Callable[[], Any]):
        self._current = current

    def collect(self) -> Iterator[Metric]:
        """The served version (as an info-style gauge), its articles and passages; nothing when none is loaded."""
        searcher = self._current()
        if searcher is None:
            return
        manifest = searcher.version.manifest
        info = GaugeMetricFamily("newsearch_index_info", "the index version being served (value is always 1)",
                                 labels=["version", "model"])
        info.add_metric([searcher.name, str(manifest["model"].get("name", ""))], 1)
        yield info
        yield GaugeMetricFamily("newsearch_index_articles", "articles in the served index",
                                value=manifest["counts"]["articles"])
        yield GaugeMetricFamily("newsearch_index_passages", "passages (vectors) in the served index",
                                value=manifest["counts"]["passages"])


class Metrics:
    """The metrics of one app, in a registry of its own (two apps in one process never collide)."""

    def __init__(self, current: Callable[[], Any], fault: Callable[[], str | None] = lambda: None):
        self.registry = CollectorRegistry()
        self.storage_errors = Counter("newsearch_storage_errors", "requests failed because the served index "
                                      "could not be read", registry=self.registry)
        readable = Gauge("newsearch_index_readable", "1 while the served index reads, 0 after a storage error "
                         "until a readable version is swapped in", registry=self.registry)
        readable.set_function(lambda: 0.0 if fault() else 1.0)
        self.requests = Counter("newsearch_http_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("newsearch_http_request_duration_seconds", "HTTP request latency",
                                 ["route", "method", "status"], buckets=BUCKETS, registry=self.registry)
        self.searches = Histogram("newsearch_search_duration_seconds", "time to answer one search, by mode",
                                  ["mode"], buckets=BUCKETS, registry=self.registry)
        self.embedding = Histogram("newsearch_query_embedding_seconds", "time to embed one query with the model",
                                   buckets=BUCKETS, registry=self.registry)
        self.registry.register(IndexCollector(current))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency."""
        labels = (route, method, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def observe_search(self, mode: str, seconds: float) -> None:
        """One answered search in `mode`."""
        self.searches.labels(mode).observe(seconds)

    def watch_embedder(self, embedder: Any) -> None:
        """Time every query the embedder encodes from now on (the app that last served a request owns it)."""
        if embedder is not None and getattr(embedder, "on_query", None) != self.embedding.observe:
            embedder.on_query = self.embedding.observe
