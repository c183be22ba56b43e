"""A Filter applied to a Catalog in memory: articles' dates and sources as arrays, so a date or source filter
becomes passage ids with a few vector operations instead of a query per request. Pure.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from indexer.storage.base import Catalog, Filter


def epoch(value: datetime | None) -> float:
    """Seconds since 1970 of a naive-UTC (or aware) datetime; NaN for None."""
    if value is None:
        return float("nan")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return (value - datetime(1970, 1, 1)).total_seconds()


class CatalogFilter:
    """The passages of a Catalog whose article passes a Filter."""

    def __init__(self, catalog: Catalog):
        self.passage_ids = catalog.passage_ids
        self.owners = catalog.owners
        self.times = np.array([epoch(d) for d in catalog.published], dtype=np.float64)
        self.sources = np.array(catalog.sources, dtype=object)

    def passages(self, filter: Filter) -> np.ndarray:
        """Ids of the passages whose article was published in [since, before) by one of the sources."""
        keep = np.ones(len(self.times), dtype=bool)
        with np.errstate(invalid="ignore"):  # undated (NaN) articles fail any date bound
            if filter.since is not None:
                keep &= self.times >= epoch(filter.since)
            if filter.before is not None:
                keep &= self.times < epoch(filter.before)
        if filter.sources:
            keep &= np.isin(self.sources, list(filter.sources))
        return self.passage_ids[keep[self.owners]]
