"""What story clustering costs at build time and how it grows: the first 5k, 10k and all 19k Reuters
articles in time order (as a corpus grows), with the default parameters (dense only) and with the keyword
side on. Wall and CPU time (the machine is shared: CPU time is the steadier figure) and peak memory (tracemalloc: Python and numpy allocations) of indexer.stories.article_stories,
given the article vectors a build has already. Writes bench/results/stories-cost-<cpu kind>.json."""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from bench.common import machine_facts, result_path, write_result
from bench.stories_data import BASE_INDEX, load_indexed
from indexer.records import Article
from indexer.stories import StoryParams, article_stories, story_order

SIZES = (5000, 10000, 19043)


def main() -> None:
    """Measure each size and write the result file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index-dir", type=Path, default=BASE_INDEX)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    machine = machine_facts()
    data = load_indexed(args.index_dir)
    order = story_order(data.ids, data.published)
    groups = {i: g for i, g in zip(data.ids, data.dup_groups) if g}
    rows = []
    for n in SIZES:
        keep = order[:n]
        articles = [Article(data.ids[i], data.titles[i], data.bodies[i], data.published[i], None, None, "")
                    for i in keep]
        kept = {a.id for a in articles}
        for name, params in (("dense", StoryParams()), ("dense+keywords", StoryParams(min_overlap=0.15))):
            mine = {a: g for a, g in groups.items() if a in kept}
            t0, c0 = time.perf_counter(), time.process_time()
            stories = article_stories(articles, data.vectors[keep], mine, params=params)
            seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
            tracemalloc.start()  # a second run for memory: tracing slows Python code down
            article_stories(articles, data.vectors[keep], mine, params=params)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            sizes = Counter(stories.values())
            rows.append({"articles": n, "variant": name, "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2), "peak_mb": round(peak / 2**20, 1),
                         "stories": len(sizes), "articles_in_multi_article_stories": sum(c for c in sizes.values() if c > 1),
                         "largest_story": max(sizes.values())})
            print(rows[-1])
    out = args.out or result_path("stories-cost", facts=machine)
    write_result(out, {"machine": machine, "index": str(args.index_dir), "rows": rows})


if __name__ == "__main__":
    main()
