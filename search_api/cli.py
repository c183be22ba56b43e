"""`news-search`: serve the HTTP API or run one query from the shell."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from indexer.cli import OneLineParser, progress_wanted, run
from indexer.errors import ConfigError
from indexer.settings import FIELD_CHOICES, Settings, integer, path_arg
from search_api.client.types import NO_CLOSE_MATCH
from search_api.evaluation.harness import COLLAPSE_CHOICES, HALVES
from search_api.records import Mode
from search_api.settings import ServerSettings, unknown_variables


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the index and serve until interrupted."""
    import uvicorn

    from search_api.server.app import SearcherHolder, create_app
    from search_api.server.guard import server_options

    settings = ServerSettings.from_env(index_dir=args.index_dir, host=args.host, port=args.port)
    for warning in unknown_variables():
        print(f"news-search: warning: {warning}", file=sys.stderr)
    # The address first: a port in use fails in a moment with one line, not after the index and model are loaded;
    # requests that come while they load wait in the listen queue.
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(sock) for sock in listening_sockets(settings.host, settings.port,
                                                                            settings.max_connections)]
        holder = SearcherHolder(settings)
        holder.load()  # fail fast, with one line, before the server starts
        # access_log=False: search_api/server/ops.py writes one JSON line per request instead of uvicorn's text line.
        server = uvicorn.Server(uvicorn.Config(create_app(settings, holder), log_level=args.log_level, access_log=False,
                                               **server_options(settings)))
        host = f"[{settings.host}]" if ":" in settings.host else settings.host or "0.0.0.0"
        print(f"news-search: serving {holder.current.name} on http://{host}:{settings.port}", file=sys.stderr,
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops the server, as uvicorn.run has it
            server.run(sockets=sockets)
    return 0 if server.started else 1


def listening_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening TCP sockets on every address `host` names ("": all interfaces), as uvicorn would bind them;
    ConfigError saying what to change if one cannot be."""
    def refused(reason: str, hint: str) -> ConfigError:
        return ConfigError(f"cannot listen on {host}:{port}: {reason}; {hint}")

    where = "set --host (NEWSEARCH_HOST) to an address of this machine, e.g. 127.0.0.1"
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise refused(exc.strerror, where) from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, address in dict.fromkeys((f, k, p, a) for f, k, p, _, a in found):  # each once
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a restart need not wait
            if family == socket.AF_INET6:  # an IPv6 address serves IPv6 only; IPv4 gets its own socket
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)  # at once: a second server started meanwhile then fails here, not after loading
    except OSError as exc:
        for sock in sockets:
            sock.close()
        hint = ("another server listens there: stop it, or choose another --port (NEWSEARCH_PORT)"
                if exc.errno == errno.EADDRINUSE else f"{where}, and --port to one you may use")
        raise refused(exc.strerror or str(exc), hint) from None
    return sockets


def cmd_query(args: argparse.Namespace) -> int:
    """Search in-process and print the hits."""
    from search_api.searcher import Searcher, SearchRequest

    settings = Settings.from_env(index_dir=args.index_dir)
    searcher = Searcher.open(settings.index_dir, settings)
    result = searcher.search(SearchRequest(q=args.text, k=args.k, mode=args.mode))
    if args.json:
        print(json.dumps({**vars(result), "hits": [vars(h) for h in result.hits]}, indent=2, default=str))
        return 0
    matches = NO_CLOSE_MATCH if result.no_close_match else f"{result.total} close matches"
    print(f"{len(result.hits)} hits from {result.index_version} in {result.took_ms:.0f} ms; {matches}")
    for hit in result.hits:
        date = hit.published.date().isoformat() if hit.published else "undated"
        sentence = hit.text[hit.highlights[0][0]:hit.highlights[0][1]] if hit.highlights else hit.text[:200]
        print(f"{hit.rank:>3}. {hit.score:.4f}  {hit.title}  [{hit.article_id}, {date}]\n       {sentence}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Score retrieval modes on BEIR queries and qrels over an index of a corpus (built or reused)."""
    from indexer.embed import Embedder
    from search_api.evaluation.harness import evaluate_corpus, load_qrels, load_queries, set_name_of, split_half, table

    settings = Settings.from_env(fields=args.fields).assign(args.set)
    index_dir = args.index_dir or Path("var/eval") / f"{args.corpus[0].name.split('.')[0]}-{settings.fields.replace('+', '-')}"
    settings = settings.replace(index_dir=index_dir)
    if args.half and not args.split:
        raise ConfigError("--half needs --split (the split file, e.g. bench/dev_split.json)")
    if args.out:
        check_writable(args.out)  # an evaluation takes minutes: fail before it, not after
    queries, qrels = load_queries(args.queries), load_qrels(args.qrels)
    split = None
    if args.half:
        split = {"file": str(args.split), "set": args.split_set or set_name_of(args.queries), "half": args.half}
        queries, qrels = split_half(queries, qrels, args.split, split["set"], args.half)
    result, built = evaluate_corpus(args.corpus, settings, Embedder.from_settings(settings), queries, qrels,
                                    args.mode or ["dense", "keyword", "hybrid"], args.collapse, rebuild=args.rebuild,
                                    progress=progress_wanted(args))
    result.update({"corpus": [str(p) for p in args.corpus], "queries_file": str(args.queries),
                   "qrels_file": str(args.qrels), "split": split, "index_dir": str(index_dir), "built": built})
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(table(result, args.queries.name))
    if unasked := result["judged_not_asked"]:
        print(f"warning: {len(unasked)} judged query id(s) are not in {args.queries.name} and were not scored "
              f"(first: {unasked[0]!r}); check that the queries and qrels files belong together", file=sys.stderr)
    if result["seen_in_training"]:
        print(f"warning: {result['seen_in_training']} of {result['queries']} queries are headlines of judged articles "
              f"the model {settings.model} was adapted on; adapt with --exclude-ids the judged articles "
              "(docs/adapt.md) for figures that mean anything", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Paired comparison of two eval results on the same queries."""
    from search_api.evaluation.compare import compare, comparison_table, load_result

    a, b = load_result(args.a), load_result(args.b)
    found = compare(a, b, intersect=args.intersect, metrics=args.metric)
    if args.json:
        print(json.dumps({"a": str(args.a), "b": str(args.b), "comparison": found}, indent=2))
        return 0
    print(f"A = {args.a}\nB = {args.b}\n(paired bootstrap 95% interval of A - B; two-sided sign-flip randomization "
          "p, 10,000 permutations)")
    print(comparison_table(found))
    return 0


def check_writable(path: Path) -> None:
    """Raise the OSError that writing `path` would raise (a folder, no permission...), leaving no file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    with open(path, "a"):
        pass
    if not existed:
        path.unlink()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of news-search."""
    parser = OneLineParser(prog="news-search", description="Serve or query a newsearch index.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve the HTTP API")
    p.add_argument("--index-dir", type=path_arg, help="index folder (NEWSEARCH_INDEX_DIR)")
    p.add_argument("--host", help="address to listen on (NEWSEARCH_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=integer, help="port (NEWSEARCH_PORT, default 8000)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("query", help="search from the shell")
    p.add_argument("text", help="the query")
    p.add_argument("--index-dir", type=path_arg, help="index folder (NEWSEARCH_INDEX_DIR)")
    p.add_argument("-k", type=integer, default=10, help="number of hits")
    p.add_argument("--mode", choices=get_args(Mode))
    p.add_argument("--json", action="store_true", help="print the response as JSON")
    p.set_defaults(func=cmd_query)
    p = sub.add_parser("eval", help="score dense, keyword and hybrid retrieval on BEIR queries and qrels")
    p.add_argument("--corpus", type=path_arg, nargs="+", required=True, help="corpus files or folders to index")
    p.add_argument("--queries", type=path_arg, required=True, help="BEIR queries (JSON lines: _id, text)")
    p.add_argument("--qrels", type=path_arg, required=True, help="BEIR qrels (TSV: query-id, corpus-id, score)")
    p.add_argument("--fields", choices=FIELD_CHOICES, help="what is indexed (NEWSEARCH_FIELDS)")
    p.add_argument("--mode", action="append", choices=get_args(Mode),
                   help="repeatable; default all three")
    p.add_argument("--index-dir", type=path_arg, help="where the corpus index is built or reused (default var/eval/...)")
    p.add_argument("--rebuild", action="store_true", help="build even if the index holds this corpus already")
    p.add_argument("--collapse", choices=COLLAPSE_CHOICES, default="on",
                   help="on (default): score the hits as the server returns them (near-duplicates collapsed); "
                        "off: every article in its own place; expand: collapsed, then each hit's duplicates "
                        "credited right after it")
    p.add_argument("--split", type=path_arg, help="a split file (bench/dev_split.json) for --half")
    p.add_argument("--half", choices=HALVES, help="score only this half of the dev set in --split")
    p.add_argument("--split-set", help="the set of --split the queries belong to (default: from the queries "
                   "file name, headlines-queries.jsonl -> headlines)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a setting for this run, e.g. --set rrf_k=30 (repeatable)")
    p.add_argument("--out", type=path_arg, help="write the full result (per-query scores too) as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bars while building (none when stderr is not a terminal)")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("compare", help="paired significance test of two eval results (--out files) on the same "
                       "queries")
    p.add_argument("a", type=path_arg, help="first result (news-search eval --out)")
    p.add_argument("b", type=path_arg, help="second result, on the same queries")
    p.add_argument("--intersect", action="store_true", help="compare on the queries both scored when they differ")
    p.add_argument("--metric", action="append", help="repeatable; default every metric in the files")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of news-search."""
    return run(argv, build_parser)


if __name__ == "__main__":
    sys.exit(main())
