"""Where ids sit in a large sorted id array, found block by block: `np.searchsorted`'s answer for a batch of ids,
without its ~20 scattered memory reads per id over a million-entry array (cache misses: bench/RESULTS.md, "Hybrid
at 1M passages"). Pure."""

from __future__ import annotations

import numpy as np

BLOCK = 64  # ids per block: 512 bytes, read in one sweep once the block is found among the blocks' first ids


class SortedIds:
    """A sorted int64 array held in BLOCK-long rows (the last padded), with each row's first id kept apart."""

    def __init__(self, ids: np.ndarray):
        n = len(ids)
        padded = np.full(-(-n // BLOCK) * BLOCK, np.iinfo(np.int64).max, dtype=np.int64)
        padded[:n] = ids
        self.ids = padded[:n]  # the ids themselves, contiguous
        self._blocks = padded.reshape(-1, BLOCK)
        self._firsts = np.ascontiguousarray(self._blocks[:, 0])

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """np.searchsorted(ids, keys) (side "left") of a 1-d array of keys: how many ids are smaller than each."""
        keys = np.asarray(keys, dtype=np.int64)
        if not len(self.ids):
            return np.zeros(len(keys), dtype=np.intp)
        # The last block starting below a key holds every smaller id not in the blocks before it.
        block = np.searchsorted(self._firsts, keys) - 1
        inside = (self._blocks[np.maximum(block, 0)] < keys[:, None]).sum(axis=1)
        return np.where(block < 0, 0, block * BLOCK + inside)
