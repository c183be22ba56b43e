"""Draw the article pairs to judge for story quality (ids only): candidate neighbours within a time window at
several cosine levels, plus random pairs in the window (some sharing a Reuters topic). Writes JSON lines of
a, b, stratum, cosine; the labels are added by a person reading both articles (bench/stories_rule.md)."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from bench.stories_data import BASE_INDEX, load_indexed

BINS = ((0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01))
WINDOW_DAYS = 3.0


def window_pairs(vectors: np.ndarray, days: np.ndarray, floor: float, block: int = 2048) -> list[tuple[int, int, float]]:
    """Pairs (i < j) within WINDOW_DAYS with cosine >= floor."""
    out = []
    for start in range(0, len(vectors), block):
        sims = vectors[start : start + block] @ vectors.T
        close = np.abs(days[start : start + block, None] - days[None, :]) <= WINDOW_DAYS
        rows, cols = np.nonzero((sims >= floor) & close)
        keep = cols > rows + start
        out.extend((int(r) + start, int(c), float(sims[r, c])) for r, c in zip(rows[keep], cols[keep]))
    return out


def main() -> None:
    """Sample and write the pairs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index-dir", type=Path, default=BASE_INDEX)
    parser.add_argument("--per-bin", type=int, default=60)
    parser.add_argument("--random", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/stories_pairs.jsonl"))
    args = parser.parse_args()
    data = load_indexed(args.index_dir)
    dated = [i for i, p in enumerate(data.published) if p is not None]
    days = np.full(len(data.ids), 1e9)
    days[dated] = [data.published[i].timestamp() / 86400 for i in dated]
    rng = random.Random(17)
    pairs = [(i, j, s) for i, j, s in window_pairs(data.vectors, days, BINS[0][0])
             if not (data.dup_groups[i] and data.dup_groups[i] == data.dup_groups[j])]
    rows = []
    for lo, hi in BINS:
        pool = sorted(p for p in pairs if lo <= p[2] < hi)
        rows += [(i, j, s, f"cos{lo:.1f}") for i, j, s in rng.sample(pool, min(args.per_bin, len(pool)))]
    order = sorted(dated, key=lambda i: days[i])
    topics_of = [set(t) for t in data.topics]
    for name, need_topic in (("random", False), ("random-same-topic", True)):
        got = 0
        while got < args.random:
            a = rng.choice(order)
            near = [b for b in order if b != a and abs(days[b] - days[a]) <= WINDOW_DAYS
                    and (not need_topic or topics_of[a] & topics_of[b])]
            if near:
                b = rng.choice(near)
                i, j = min(a, b), max(a, b)
                rows.append((i, j, float(data.vectors[i] @ data.vectors[j]), name))
                got += 1
    with args.out.open("w") as fh:
        for i, j, s, stratum in rows:
            fh.write(json.dumps({"a": data.ids[i], "b": data.ids[j], "stratum": stratum, "cosine": round(s, 4)}) + "\n")


if __name__ == "__main__":
    main()
