"""`--engine ray` with a Milvus server: the passage rows of a version are built (stems, digest), compared with the
base version's and inserted by a pool of Ray actors, each with its own Milvus client, instead of by the driver.
MilvusWriter.add calls it while the Ray engine runs; Milvus Lite on a file cannot be shared, so it is not used then.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np

from indexer.records import Article, Passage
from indexer.storage.milvus_schema import passage_row, versioned
from indexer.storage.milvus_wire import calls, connect

ROWS_PER_TASK = 256  # passage rows per actor call and insert (as the driver's inserts)


def ray_running() -> bool:
    """Whether this process is a Ray driver (the ray engine has started or joined a cluster)."""
    try:
        import ray
    except ImportError:
        return False
    return ray.is_initialized()


class InsertPassages:
    """A Ray actor with a Milvus client: turns (passage, vector, article, base digest) into rows and inserts
    those whose digest differs from the base version's."""

    def __init__(self, uri: str, token: str, collection: str, seq: int):
        self.client = connect(uri, token)
        self.collection, self.seq = collection, seq

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        rows, ids = [], []
        for blob in batch["blob"]:
            passage, vector, article, old_digest = pickle.loads(blob)
            row = versioned(passage_row(passage, vector, article), self.seq)
            if row["digest"] != old_digest:
                rows.append(row)
                ids.append(int(passage.id))
        if rows:
            with calls(self.collection):
                self.client.insert(self.collection, rows)
        return {"id": np.array(ids, dtype=np.int64), "pid": np.full(len(ids), os.getpid(), dtype=np.int64)}


def insert_passages(job: dict[str, Any], items: list[tuple[Passage, np.ndarray, Article, str | None]],
                    ) -> tuple[set[int], set[int]]:
    """Insert the passage rows of `items` that differ from their base digest, on Ray actors; returns the ids
    written and the processes that wrote them. `job`: uri, token, collection, seq."""
    import ray

    if not items:
        return set(), set()
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    blobs = [{"blob": pickle.dumps(item)} for item in items]
    ds = ray.data.from_items(blobs, override_num_blocks=max(1, min(len(blobs) // ROWS_PER_TASK, 4 * cpus)))
    out = ds.map_batches(InsertPassages, batch_size=ROWS_PER_TASK, num_cpus=1, fn_constructor_kwargs=job,
                         compute=ray.data.ActorPoolStrategy(min_size=1, max_size=cpus))
    written: set[int] = set()
    pids: set[int] = set()
    for batch in out.iter_batches(batch_format="numpy"):
        written.update(batch["id"].tolist())
        pids.update(batch["pid"].tolist())
    return written, pids
