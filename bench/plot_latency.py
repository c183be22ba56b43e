"""Plot p50 search latency against corpus size per index type, from one CPU kind's bench/results/index-by-scale-*-<cpu kind>.json.

Each approximate type is drawn at its cheapest setting that keeps recall@10 >= 0.95 against exact (on all
queries and on the dev queries alone). Writes bench/results/index-by-scale-latency-<cpu kind>.png (needs the `bench` extra: matplotlib).
"""

from __future__ import annotations

import argparse
import json

from bench.common import RESULTS, cpu_kind

TARGET = 0.95


def cheapest(runs: list[dict]) -> dict | None:
    """The fastest run at or above the recall target."""
    good = [r for r in runs if min(r["recall@10"], r["recall@10_dev_queries"]) >= TARGET]
    return min(good, key=lambda r: r["threads1"]["p50_ms"]) if good else None


def series(kind: str) -> dict[str, list[tuple[int, float, str]]]:
    """Per index family: (passages, p50 ms, label of the setting), ordered by size."""
    out: dict[str, list[tuple[int, float, str]]] = {}
    for path in sorted(RESULTS.glob(f"index-by-scale-*-{kind}.json")):
        result = json.loads(path.read_text())
        for row in result["types"]:
            run = cheapest(row["runs"])
            if run is not None:
                label = f"{row['param']}={run['value']}" if row["param"] else "exact"
                out.setdefault(row["family"], []).append((result["passages"], run["threads1"]["p50_ms"], label))
    return {family: sorted(points) for family, points in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cpu", help="the CPU kind whose files to plot (default: this machine's)")
    kind = parser.parse_args().cpu or cpu_kind()
    import matplotlib  # the `bench` extra: imported only to draw, so --help works without it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for family, points in series(kind).items():
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ax.plot(xs, ys, marker="o", label=family)
        for x, y, label in points:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("passages (28k real Reuters; 100k and 1M perturbed copies)")
    ax.set_ylabel("p50 search latency, ms (1 thread, k=10)")
    ax.set_title(f"FAISS search latency by corpus size at recall@10 >= {TARGET}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = RESULTS / f"index-by-scale-latency-{kind}.png"
    fig.savefig(out, dpi=120)
    print(out)


if __name__ == "__main__":
    main()
