"""Benchmark: fit the calibrated relevance of search_api/ranking/relevance.py and measure its floor.

Runs every dev query (default settings, hybrid, one hit per article, wire copies collapsed) through the
real Searcher over the full Reuters indexes, records the relevance signals of each ranked hit and whether
it is judged relevant (the article or a collapsed copy), fits a logistic model on the TUNE half of both
sets (bench/dev_split.json; each set weighing the same), chooses the floor on the tune half, and reports
on the CHECK half: reliability table, Brier score, recall lost under the floor, queries wrongly flagged
"no close match". The off-corpus queries of bench/queries/off_corpus.jsonl run over the same indexes and
over corpus/: share flagged, false hits shown above the floor. Writes bench/results/relevance-calibration-<cpu kind>.json.
Run: `.venv/bin/python -m bench.calibrate_relevance [--index-dir SET=DIR ...]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import EVAL, ROOT, SETS, commit, index_dir, machine_facts, result_path, write_result
from indexer.embed import Embedder
from indexer.settings import Settings
from search_api.evaluation.harness import ensure_index, load_qrels, load_queries
from search_api.ranking import relevance
from search_api.searcher import Searcher, SearchRequest

SPLIT = ROOT / "bench" / "dev_split.json"
OFF_CORPUS = ROOT / "bench" / "queries" / "off_corpus.jsonl"
DEPTH = 200  # every ranked hit (settings.candidates): `total` and "no close match" look at all of them
TOP = 10  # hits a user sees; the calibration and the recall lost are measured on these
VARIANTS = [("cosine_z",), ("cosine_z", "coverage"), ("cosine_z", "coverage", "cosine_z*coverage"),
            ("cosine_z", "any_word"), ("cosine_z", "coverage", "cosine_gap"), ("cosine", "coverage")]
MAX_RECALL_LOST = 0.05  # the floor: the highest that hides at most this share of relevant top-10 hits (tune)
FLOORS = np.round(np.arange(0.01, 0.61, 0.01), 2)
OTHER_FLOORS = (0.1, 0.2, 0.3)  # the trade-off reported beside the chosen floor


def query_signals(searcher: Searcher, text: str, qrels: dict[str, int] | None) -> dict:
    """Signals and labels of every ranked hit of one query, best first."""
    req = SearchRequest(q=text, k=DEPTH)
    hits = searcher.search(req).hits
    keys = [h.article_id for h in hits]
    started = time.perf_counter()
    qvec = searcher.embedder.encode_query(text)
    embed_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    sig = searcher.signals(req, keys, qvec)
    relevance.relevance(sig)
    rate_ms = (time.perf_counter() - started) * 1000
    labels = [int(any((qrels or {}).get(a, 0) > 0 for a in [h.article_id, *h.duplicates])) for h in hits]
    return {"cosine": sig.cosine.tolist(), "coverage": sig.coverage.tolist(), "background": [
        sig.background_mean, sig.background_sd], "labels": labels, "rate_ms": rate_ms, "embed_ms": embed_ms}


def collect(searcher: Searcher, queries: dict[str, str], qrels: dict | None) -> dict[str, dict]:
    """query_signals of each query (judged ones only when qrels are given)."""
    return {qid: query_signals(searcher, text, qrels.get(qid) if qrels else None)
            for qid, text in queries.items() if qrels is None or qid in qrels}


def signals_of(record: dict) -> relevance.Signals:
    """The relevance.Signals of a recorded query's ranked hits."""
    return relevance.Signals(np.array(record["cosine"]), np.array(record["coverage"]), *record["background"])


def design(records: dict[str, dict], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and query index of the top hits of every recorded query."""
    xs, ys, groups = [], [], []
    for i, record in enumerate(records.values()):
        x = relevance.features(signals_of(record), names)[:TOP]  # of every ranked hit, as the Searcher rates them
        xs.append(x)
        ys.append(np.array(record["labels"][:TOP]))
        groups.append(np.full(len(x), i))
    return np.vstack(xs), np.concatenate(ys), np.concatenate(groups)


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1e-3) -> tuple[np.ndarray, float]:
    """Weighted logistic regression by Newton's method (IRLS); (weights, intercept)."""
    a = np.column_stack([x, np.ones(len(x))])
    beta = np.zeros(a.shape[1])
    ridge = l2 * np.eye(a.shape[1])
    ridge[-1, -1] = 0.0
    for _ in range(100):
        p = relevance.logistic(a[:, :-1], beta[:-1], beta[-1])
        grad = a.T @ (w * (p - y)) + ridge @ beta
        hess = (a * (w * p * (1 - p))[:, None]).T @ a + ridge
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return beta[:-1], float(beta[-1])


def set_weights(parts: list[np.ndarray]) -> np.ndarray:
    """Per-row weights giving each dev set the same total weight."""
    return np.concatenate([np.full(len(p), 1.0 / max(len(p), 1)) for p in parts])


def log_loss(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted mean negative log-likelihood."""
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return float(-(w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum() / w.sum())


def cross_validated(tune: dict[str, dict[str, dict]], names: tuple[str, ...], folds: int = 5) -> float:
    """Log loss of `names` by query folds within the tune half (both sets, equal weight)."""
    parts = {s: design(records, names) for s, records in tune.items()}
    losses = []
    for fold in range(folds):
        train = [(x[g % folds != fold], y[g % folds != fold]) for x, y, g in parts.values()]
        test = [(x[g % folds == fold], y[g % folds == fold]) for x, y, g in parts.values()]
        coef, b = fit_logistic(np.vstack([t[0] for t in train]), np.concatenate([t[1] for t in train]),
                               set_weights([t[1] for t in train]))
        x_test, y_test = np.vstack([t[0] for t in test]), np.concatenate([t[1] for t in test])
        losses.append(log_loss(relevance.logistic(x_test, coef, b), y_test, set_weights([t[1] for t in test])))
    return float(np.mean(losses))


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict]:
    """Per equal-width bin of predicted relevance: hits, mean prediction, observed share relevant."""
    out = []
    for b in range(bins):
        inside = (p >= b / bins) & ((p < (b + 1) / bins) | (b == bins - 1))
        if inside.any():
            out.append({"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "hits": int(inside.sum()),
                        "predicted": round(float(p[inside].mean()), 3), "observed": round(float(y[inside].mean()), 3)})
    return out


def bootstrap(values: list[tuple[float, float]], reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Ratio sum(a)/sum(b) over queries (pairs (a, b)) with a 95% bootstrap interval by query."""
    arr = np.array(values, dtype=np.float64).reshape(-1, 2)
    if len(arr) == 0 or arr[:, 1].sum() == 0:
        return 0.0, 0.0, 0.0
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(arr), size=(reps, len(arr)))
    ratios = arr[picks, 0].sum(1) / np.maximum(arr[picks, 1].sum(1), 1e-12)
    point = arr[:, 0].sum() / arr[:, 1].sum()
    return round(float(point), 4), round(float(np.quantile(ratios, 0.025)), 4), round(float(np.quantile(ratios, 0.975)), 4)


def wilson(hits: int, n: int) -> tuple[float, float, float]:
    """A share with its 95% Wilson interval."""
    if n == 0:
        return 0.0, 0.0, 0.0
    z, p = 1.96, hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(p, 4), round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


Model = tuple[tuple[str, ...], list[float], float]  # feature names, weights, intercept
SHIPPED: Model = (relevance.FEATURES, list(relevance.WEIGHTS), relevance.INTERCEPT)


def rated(records: dict[str, dict], model: Model) -> dict[str, np.ndarray]:
    """Relevance of every ranked hit of each query under `model`."""
    names, weights, intercept = model
    return {qid: relevance.logistic(relevance.features(signals_of(r), names), weights, intercept) if r["cosine"]
            else np.zeros(0) for qid, r in records.items()}


def floor_effects(records: dict[str, dict], floor: float, model: Model = SHIPPED) -> dict:
    """Recall lost (relevant top-10 hits below the floor) and queries flagged, over recorded dev queries."""
    rel = rated(records, model)
    lost = [(float(((rel[q][:TOP] < floor) & (np.array(r["labels"][:TOP]) == 1)).sum()),
             float(sum(r["labels"][:TOP]))) for q, r in records.items()]
    flagged = sum(bool(len(rel[q]) == 0 or rel[q].max() < floor) for q in records)
    return {"recall_lost": bootstrap(lost), "flagged": wilson(flagged, len(records)), "queries": len(records),
            "relevant_top10_hits": int(sum(b for _, b in lost))}


def off_corpus_effects(records: dict[str, dict], floor: float, model: Model = SHIPPED) -> dict:
    """Off-corpus queries: share flagged no-close-match, hits shown above the floor in the top 10."""
    rel = rated(records, model)
    shown = [(float((rel[q][:TOP] >= floor).sum()), 1.0) for q in records]
    flagged = {q for q in records if len(rel[q]) == 0 or rel[q].max() < floor}
    kinds = {str(r["_id"]): r["kind"] for r in map(json.loads, OFF_CORPUS.read_text().splitlines()) if r}
    by_kind = {kind: wilson(sum(q in flagged for q in records if kinds[q] == kind),
                            sum(kinds[q] == kind for q in records)) for kind in sorted({kinds[q] for q in records})}
    return {"queries": len(records), "flagged": wilson(len(flagged), len(records)), "flagged_by_kind": by_kind,
            "false_hits_above_floor_per_query": bootstrap(shown),
            "queries_with_a_false_hit_in_top10": wilson(sum(a > 0 for a, _ in shown), len(records)),
            "max_relevance_median": round(float(statistics.median(
                [float(rel[q].max()) if len(rel[q]) else 0.0 for q in records])), 4)}


def calibration_report(records: dict[str, dict], model: Model = SHIPPED) -> dict:
    """Brier score, log loss and reliability table of the top-10 hits, beside the constant base-rate forecast."""
    x, y, _ = design(records, model[0])
    p = relevance.logistic(x, model[1], model[2])
    base = np.full(len(y), y.mean())
    w = np.ones(len(y))
    return {"hits": int(len(y)), "relevant_share": round(float(y.mean()), 4), "mean_relevance": round(float(p.mean()), 4),
            "brier": round(float(((p - y) ** 2).mean()), 4), "brier_base_rate": round(float(((base - y) ** 2).mean()), 4),
            "log_loss": round(log_loss(p, y, w), 4), "reliability": reliability(p, y)}


def choose_floor(tune: dict[str, dict[str, dict]], model: Model) -> tuple[float, list[dict]]:
    """The highest floor hiding at most MAX_RECALL_LOST of the relevant top-10 hits in each set's tune half."""
    curve = [{"floor": float(f), **{s: floor_effects(r, float(f), model) for s, r in tune.items()}} for f in FLOORS]
    ok = [row["floor"] for row in curve if all(row[s]["recall_lost"][0] <= MAX_RECALL_LOST for s in tune)]
    return (max(ok) if ok else float(FLOORS[0])), curve


def fit(tune: dict[str, dict[str, dict]]) -> tuple[Model, dict[str, float]]:
    """Cross-validated log loss of each variant; the best one that does not read raw cosines, fitted on all of tune."""
    losses = {"+".join(names): round(cross_validated(tune, names), 5) for names in VARIANTS}
    # Compared, never chosen: raw cosines depend on the model's scale, and the gap to the best hit would make an
    # article's relevance depend on what else is ranked (the mode, the filters) (bench/RESULTS.md).
    names = min((v for v in VARIANTS if "cosine" not in v and "cosine_gap" not in v), key=lambda v: losses["+".join(v)])
    parts = [design(records, names) for records in tune.values()]
    coef, b = fit_logistic(np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                           set_weights([p[1] for p in parts]))
    return (names, [round(float(c), 4) for c in coef], round(b, 4)), losses


def load_records(path: Path) -> dict:
    """Recorded signals from an earlier run, or {}."""
    return json.loads(path.read_text()) if path.is_file() else {}


def record_all(index_dirs: dict[str, Path], embedder: Embedder, path: Path, only: list[str]) -> dict:
    """Signals of the dev queries (on each set's index) and the off-corpus ones (on every index and corpus/);
    with `only`, just those targets are recorded again, the others kept from `path`."""
    off = {str(r["_id"]): r for r in map(json.loads, OFF_CORPUS.read_text().splitlines()) if r}
    out: dict = load_records(path) if only else {}
    out.setdefault("dev", {})
    out.setdefault("off", {})
    corpus = Settings.from_env(index_dir=ROOT / "var" / "bench" / "relevance-corpus", cache_dir="")
    ensure_index([ROOT / "corpus"], corpus, embedder)
    targets = {**{name: (d, SETS[name]) for name, d in index_dirs.items()}, "corpus": (corpus.index_dir, "title+body")}
    for name, (folder, fields) in targets.items():
        if only and name not in only:
            continue
        settings = Settings.from_env(index_dir=folder, fields=fields, max_k=DEPTH)
        searcher = Searcher.open(folder, settings, embedder)
        try:
            if name in SETS:
                out["dev"][name] = collect(searcher, load_queries(EVAL / f"{name}-queries.jsonl"),
                                           load_qrels(EVAL / f"{name}-qrels.tsv"))
            wanted = "corpus" if name == "corpus" else "reuters"
            out["off"][name] = collect(searcher, {q: r["text"] for q, r in off.items() if wanted in r["off"]}, None)
        finally:
            searcher.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def halves(records: dict[str, dict[str, dict]]) -> tuple[dict, dict]:
    """The dev records split into the tune and check halves of bench/dev_split.json."""
    split = json.loads(SPLIT.read_text())["sets"]
    pick = lambda part: {s: {q: r for q, r in recs.items() if q in set(split[s][part])}  # noqa: E731
                         for s, recs in records.items()}
    return pick("tune"), pick("check")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index-dir", action="append", default=[], metavar="SET=DIR",
                        help="the full Reuters index of a dev set (default: var/bench/eval-reuters-<fields>)")
    parser.add_argument("--records", type=Path, default=ROOT / "var" / "bench" / "relevance-signals.json",
                        help="where the recorded signals are kept between runs")
    parser.add_argument("--reuse", action="store_true", help="refit from the recorded signals, run no query")
    parser.add_argument("--only", nargs="+", default=[], choices=[*SETS, "corpus"],
                        help="record these targets again, keep the others' recorded signals")
    args = parser.parse_args()
    dirs = {name: index_dir(fields) for name, fields in SETS.items()}
    dirs.update({k: Path(v) for k, v in (pair.split("=", 1) for pair in args.index_dir)})
    embedder = Embedder.from_settings(Settings.from_env())
    records = load_records(args.records) if args.reuse else record_all(dirs, embedder, args.records, args.only)
    tune, check = halves(records["dev"])
    model, losses = fit(tune)
    floor, curve = choose_floor(tune, model)
    shipped = (model[0] == relevance.FEATURES and np.allclose(model[1], relevance.WEIGHTS, atol=1e-3)
               and abs(model[2] - relevance.INTERCEPT) < 1e-3)
    result = {
        "benchmark": "calibrate_relevance", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(), "machine": machine_facts(),
        "indexes": {k: str(v) for k, v in dirs.items()}, "cv_log_loss_tune": losses,
        "fitted": {"features": model[0], "weights": model[1], "intercept": model[2]},
        "shipped_equals_fitted": bool(shipped), "floor": floor, "floor_rule": f"highest with recall lost <= "
        f"{MAX_RECALL_LOST} on the tune half of each set", "tune_curve": curve,
        "check": {s: {"calibration": calibration_report(r, model), **floor_effects(r, floor, model)}
                  for s, r in check.items()},
        "tune": {s: {"calibration": calibration_report(r, model), **floor_effects(r, floor, model)}
                 for s, r in tune.items()},
        "off_corpus": {name: off_corpus_effects(r, floor, model) for name, r in records["off"].items()},
        "other_floors": {str(f): {"check": {s: floor_effects(r, f, model) for s, r in check.items()},
                                  "off_corpus": {n: off_corpus_effects(r, f, model) for n, r in records["off"].items()}}
                         for f in OTHER_FLOORS},
        "relevance_ms_median_200_hits": round(statistics.median(
            r["rate_ms"] for recs in records["dev"].values() for r in recs.values()), 2),
    }
    write_result(result_path("relevance-calibration"), result)
    print(json.dumps({k: v for k, v in result.items() if k != "tune_curve"}, indent=1))
    if not shipped:
        print(f"search_api/ranking/relevance.py differs from this fit: FEATURES = {model[0]}, WEIGHTS = {tuple(model[1])}, "
              f"INTERCEPT = {model[2]}; and the floor {floor} (indexer/settings.py min_relevance)")


if __name__ == "__main__":
    main()
