"""What a Ray actor of `--engine ray` with a Milvus server uses to write passage rows itself: its own client of the
version's passage collection, the base version's vectors (to carry them over), and the build, comparison with the
base version's digest and insertion of rows. The driver plans and checks the job (milvus_write.MilvusWriter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer.records import Article, Passage
from indexer.storage.milvus_schema import id_filter, passage_row, versioned, visible
from indexer.storage.milvus_wire import calls, connect, fetch_all

ROWS_PER_INSERT = 256  # rows per insert, as the driver's (milvus_write.BATCH)


class PassageRows:
    """A writer of one version's passage rows from another process; `job` comes from MilvusWriter.worker_job."""

    def __init__(self, job: dict[str, Any]):
        self.client = connect(job["uri"], job["token"])
        self.collection, self.seq, self.base_seq = job["collection"], job["seq"], job["base_seq"]

    def base_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The dense vectors the base version holds for these passage ids (exact float32, as inserted)."""
        if not ids or not self.base_seq:
            return {}
        rows = fetch_all(self.client, self.collection, ["id", "dense"],
                         f"({visible(self.base_seq)}) and {id_filter('id', ids)}")
        return {int(r["id"]): np.asarray(r["dense"], dtype=np.float32) for r in rows}

    def insert(self, items: Sequence[tuple[Passage, Article, str | None]], vectors: np.ndarray) -> list[int]:
        """Write the rows of (passage, its article, the base row's digest) whose digest differs from the base's;
        returns the ids of the passages written. Upserts (by key "<id>@<seq>"): a batch Ray runs again after a
        worker died mid-batch replaces its rows instead of doubling them."""
        rows, ids = [], []
        for (passage, article, old_digest), vector in zip(items, vectors):
            row = versioned(passage_row(passage, vector, article), self.seq)
            if row["digest"] != old_digest:
                rows.append(row)
                ids.append(int(passage.id))
        with calls(self.collection):
            for start in range(0, len(rows), ROWS_PER_INSERT):
                self.client.upsert(self.collection, rows[start : start + ROWS_PER_INSERT])
        return ids

    def close(self) -> None:
        """Close the client."""
        self.client.close()
