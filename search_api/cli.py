"""`news-search`: serve the HTTP API or run one query from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from indexer.cli import run
from indexer.settings import Settings


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the index and serve until interrupted."""
    import uvicorn

    from search_api.app import SearcherHolder, create_app

    settings = Settings.from_env(index_dir=args.index_dir, host=args.host, port=args.port)
    holder = SearcherHolder(settings)
    holder.load()  # fail fast, with one line, before the server starts
    # access_log=False: search_api/ops.py writes one JSON line per request instead of uvicorn's text line.
    uvicorn.run(create_app(settings, holder), host=settings.host, port=settings.port, log_level=args.log_level,
                access_log=False)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """Search in-process and print the hits."""
    from search_api.searcher import Searcher, SearchRequest

    settings = Settings.from_env(index_dir=args.index_dir)
    searcher = Searcher.open(settings.index_dir, settings)
    result = searcher.search(SearchRequest(q=args.text, k=args.k, mode=args.mode))
    if args.json:
        print(json.dumps({"query": result.query, "index_version": result.index_version, "took_ms": result.took_ms,
                          "hits": [vars(h) for h in result.hits]}, indent=2, default=str))
        return 0
    print(f"{len(result.hits)} hits from {result.index_version} in {result.took_ms:.0f} ms")
    for hit in result.hits:
        date = hit.published.date().isoformat() if hit.published else "undated"
        sentence = hit.text[hit.highlights[0][0]:hit.highlights[0][1]] if hit.highlights else hit.text[:200]
        print(f"{hit.rank:>3}. {hit.score:.4f}  {hit.title}  [{hit.article_id}, {date}]\n       {sentence}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of news-search."""
    parser = argparse.ArgumentParser(prog="news-search", description="Serve or query a newsearch index.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve the HTTP API")
    p.add_argument("--index-dir", type=Path, help="index folder (NEWSEARCH_INDEX_DIR)")
    p.add_argument("--host", help="address to listen on (NEWSEARCH_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (NEWSEARCH_PORT, default 8000)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("query", help="search from the shell")
    p.add_argument("text", help="the query")
    p.add_argument("--index-dir", type=Path, help="index folder (NEWSEARCH_INDEX_DIR)")
    p.add_argument("-k", type=int, default=10, help="number of hits")
    p.add_argument("--mode", choices=["hybrid", "dense", "keyword"])
    p.add_argument("--json", action="store_true", help="print the response as JSON")
    p.set_defaults(func=cmd_query)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of news-search."""
    return run(argv, build_parser)


if __name__ == "__main__":
    sys.exit(main())
