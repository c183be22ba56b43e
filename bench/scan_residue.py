"""Scan: markup and wire residue in the corpora, before and after indexer/clean.py.

For each corpus (Wikinews sample, Reuters-21578, the project's corpus/) counts, per residue rule of
indexer.clean.RESIDUE_RULES, the articles it touches, the lines it drops and the characters it removes, and,
per residue detector below, the articles whose cleaned body still matches it. Writes
bench/results/scan-residue-<cpu kind>.json (counts only: no Reuters text). Run: `.venv/bin/python -m bench.scan_residue`;
`--examples N` prints N before/after lines per rule for a spot check (stdout only).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from bench.common import REUTERS, ROOT, commit, machine_facts, result_path, write_result
from indexer.clean import RESIDUE_RULES, clean_article, normalize_text
from indexer.sources import CorpusReader

WIKINEWS = ROOT.parent / "shared" / "data" / "wikinews" / "wikinews_sample.jsonl"
CORPORA = {"wikinews": [WIKINEWS], "reuters": sorted(REUTERS.glob("corpus-*.jsonl.gz")), "corpus": [ROOT / "corpus"]}

# What should not survive cleaning; each is counted on the cleaned bodies.
DETECTORS = {
    "doubled parentheses": r"\(\(|\)\)",
    "wiki template or link": r"\{\{|\}\}|\[\[|\]\]|\{w\|",
    "wiki bold/italic or heading": r"(?m)'''|''[A-Za-z]|^==",
    "html tag or entity": r"</?(?:a|b|i|p|div|span|br|img)\b[^>]*>|&(?:amp|lt|gt|nbsp|quot|#\d+);",
    "language tag": r"\b[A-Z][a-z]+ language:",
    "photo credit": r"(?i)\b(?:image|photo|picture)s?\s*(?:credit|courtesy)?\s*:",
    "byline": r"(?m)^(?:By|BY) [A-Z][\w.'-]+(?: [A-Z][\w.'-]+){0,3}$",
    "section heading": r"(?im)^(?:sources?|related news|external links|references|see also|sister links)\s*:?$",
    "wire signature": r"(?im)^reuters?\d*\W*$| REUTER\W*$",
    "wire take marker": r"(?im)^more\W*$",
    "correction notice": r"(?i)(?:--?|\()\s*correct(?:s|ing)\b",
    "separator line": r"(?m)^[-=*_~]{3,}$",
    "legend swatch": r"[\u2580-\u259f]",
    "footnote mark": r"[a-z.,;)]\[\d{1,3}\]",
    "url": r"https?://",
}


def rule_counts(bodies: dict[str, str], examples: int = 0) -> dict[str, dict[str, int]]:
    """Per rule (applied in order to each normalised line): articles touched, lines dropped, characters removed."""
    touched: dict[str, set[str]] = defaultdict(set)
    dropped: dict[str, int] = defaultdict(int)
    removed: dict[str, int] = defaultdict(int)
    shown: dict[str, int] = defaultdict(int)
    for article_id, body in bodies.items():
        for line in normalize_text(body).split("\n"):
            for name, rule in RESIDUE_RULES:
                if not line:
                    break
                after = rule(line)
                if after != line:
                    touched[name].add(article_id)
                    removed[name] += len(line) - len(after)
                    dropped[name] += not after
                    if shown[name] < examples:
                        shown[name] += 1
                        at = max(0, next((i for i, (a, b) in enumerate(zip(line, after)) if a != b), len(after)) - 80)
                        print(f"[{name}] {article_id}\n  - {line[at:at + 300]!r}\n  + {after[at:at + 300]!r}")
                line = after
    return {name: {"articles": len(touched[name]), "lines_dropped": dropped[name], "chars_removed": removed[name]}
            for name, _ in RESIDUE_RULES}


def detector_counts(bodies: dict[str, str]) -> dict[str, int]:
    """Per detector, how many of these bodies still match it."""
    return {name: sum(1 for body in bodies.values() if re.search(pattern, body)) for name, pattern in DETECTORS.items()}


def scan(paths: list[Path], examples: int = 0) -> dict:
    """One corpus: rule counts on the raw bodies, detector counts before and after cleaning."""
    raws = list(CorpusReader(paths))
    raw = {r.id: r.body for r in raws}
    cleaned = {r.id: clean_article(r).body for r in raws}
    return {"articles": len(raws), "chars_raw": sum(map(len, raw.values())),
            "chars_cleaned": sum(map(len, cleaned.values())), "rules": rule_counts(raw, examples),
            "residue_before": detector_counts(raw), "residue_after": detector_counts(cleaned)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpora", nargs="+", choices=list(CORPORA), default=list(CORPORA))
    parser.add_argument("--examples", type=int, default=0, help="before/after lines to print per rule")
    parser.add_argument("--out", type=Path, help="default bench/results/scan-residue-<cpu kind>.json")
    args = parser.parse_args()
    result = {"benchmark": "scan_residue", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "commit": commit(), "machine": machine_facts(), "corpora": {name: scan(CORPORA[name], args.examples) for name in args.corpora}}
    write_result(args.out or result_path("scan-residue", facts=result["machine"]), result)
    for name, found in result["corpora"].items():
        print(f"\n{name}: {found['articles']} articles")  # noqa: T201
        print("| rule | articles | lines dropped | chars removed |\n|---|---|---|---|")  # noqa: T201
        for rule, c in found["rules"].items():
            print(f"| {rule} | {c['articles']} | {c['lines_dropped']} | {c['chars_removed']} |")  # noqa: T201
        left = {k: (found["residue_before"][k], v) for k, v in found["residue_after"].items()
                if v or found["residue_before"][k]}
        print("residue detectors, articles before -> after cleaning:", left)  # noqa: T201


if __name__ == "__main__":
    main()
