"""`news-index`: build and inspect indexes. Errors are one line on stderr: exit code 1 when the command
fails, 2 when the command line itself is wrong. `run` and `OneLineParser` serve news-search too.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from indexer.backends import AUTO, BACKENDS
from indexer.errors import ConfigError, NewsearchError
from indexer.settings import FIELD_CHOICES, Settings, integer, number, path_arg


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit code 2); --help stays whole.

    Subcommand parsers inherit the class, so their errors are one line too.
    """

    def error(self, message: str) -> NoReturn:
        """Print `prog: error: message` and exit 2, instead of argparse's usage block."""
        self.exit(2, f"{self.prog}: error: {' '.join(message.splitlines())} (see {self.prog} --help)\n")


def add_common(parser: argparse.ArgumentParser) -> None:
    """Flags every subcommand shares; each defaults to its NEWSEARCH_* variable."""
    parser.add_argument("--index-dir", type=path_arg, help="index folder (NEWSEARCH_INDEX_DIR, default var/index)")
    parser.add_argument("--model", "--model-path", dest="model",
                        help="embedding model: all-MiniLM-L6-v2 (default), all-mpnet-base-v2, or a sentence-transformers "
                             "model folder (NEWSEARCH_MODEL; docs/models.md)")


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """Flags that shape what is indexed."""
    parser.add_argument("paths", nargs="+", type=path_arg, help="corpus files or folders")
    parser.add_argument("--strict", action="store_true", help="stop at the first unreadable file or record")
    parser.add_argument("--fields", choices=FIELD_CHOICES, help="what is indexed (NEWSEARCH_FIELDS)")
    parser.add_argument("--chunk-tokens", type=integer, help="max word pieces per passage (NEWSEARCH_CHUNK_TOKENS)")
    parser.add_argument("--batch-size", type=integer, help="embedding batch size (NEWSEARCH_BATCH_SIZE)")
    parser.add_argument("--backend", choices=(AUTO, *BACKENDS),
                        help="embedding runtime (NEWSEARCH_BACKEND, default auto: measured, docs/performance.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (there are none when stderr is not a terminal)")
    parser.add_argument("--engine", choices=["local", "ray"], help="batch engine (NEWSEARCH_ENGINE, default local)")
    parser.add_argument("--ray-address", help="Ray cluster to join (NEWSEARCH_RAY_ADDRESS; default: a local Ray)")


def settings_from(args: argparse.Namespace) -> Settings:
    """Environment settings overridden by the flags that were given."""
    return Settings.from_env(
        index_dir=getattr(args, "index_dir", None), model=getattr(args, "model", None),
        fields=getattr(args, "fields", None), chunk_tokens=getattr(args, "chunk_tokens", None),
        batch_size=getattr(args, "batch_size", None), engine=getattr(args, "engine", None),
        backend=getattr(args, "backend", None),
        ray_address=getattr(args, "ray_address", None),
    )


def cmd_build(args: argparse.Namespace) -> int:
    """Build a new version from a corpus and publish it."""
    from indexer.embed import Embedder
    from indexer.pipeline import build

    settings = settings_from(args)
    report = build(args.paths, settings, Embedder.from_settings(settings), strict=args.strict, progress=progress_wanted(args))
    print_problems(report.problems)
    print(report.summary())
    return 0


def print_problems(problems: Sequence[object]) -> None:
    """Each skipped file or record on its own stderr line, `path[:line]: reason`."""
    for problem in problems:
        print(problem, file=sys.stderr)


def cmd_update(args: argparse.Namespace) -> int:
    """Bring the published version up to date with a corpus."""
    from indexer.doctor import following_index
    from indexer.embed import Embedder
    from indexer.jobs import StatusFile
    from indexer.update import update

    settings = following_index(settings_from(args))  # auto: the published version's backend
    status = StatusFile(args.status_file) if args.status_file else None
    report = update(args.paths, settings, Embedder.from_settings(settings), delete_missing=args.delete_missing,
                    strict=args.strict, progress=progress_wanted(args), on_progress=status.progress if status else None)
    if status:
        status.finish(report)
    print_problems(report.problems)
    print(report.summary())
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """Remove old versions, abandoned builds and (with --prune-cache) unneeded cached embeddings."""
    from indexer.gc import collect

    settings = settings_from(args).replace(gc_grace_seconds=args.grace)  # validated like the variable
    report = collect(settings, keep=args.keep, prune_cache_too=args.prune_cache, dry_run=args.dry_run)
    print(report.summary())
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Describe the published version."""
    from indexer.storage import open_store

    settings = settings_from(args)
    store = open_store(settings, create=False)
    version = store.open(verify=not args.fast)
    try:
        info = {"index_dir": str(settings.index_dir), "published": version.name,
                "versions": store.versions(), **{k: version.manifest.get(k) for k in
                ("created", "counts", "model", "chunking", "faiss", "files")}}
    finally:
        version.close()
    print(json.dumps(info, indent=2, default=str))
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    """Train a query encoder on a corpus' headlines into a model folder."""
    from indexer.adapt_train import STATE, AdaptOptions, adapt

    if args.max_articles is not None and args.max_articles < 1:
        raise ConfigError(f"--max-articles must be at least 1, not {args.max_articles} (leave it out to train on "
                          "every article)")
    given = {"epochs": args.epochs, "max_articles": args.max_articles,
             "max_length": args.max_length, "batch_size": args.train_batch_size, "learning_rate": args.learning_rate,
             "seed": args.seed}
    options = AdaptOptions(**{k: v for k, v in given.items() if v is not None})
    record = adapt(args.paths, args.out, settings_from(args), options, args.exclude_ids, progress=progress_wanted(args))
    corpus = record["corpus"]
    print(f"adapted {args.out}: {record['pairs']} headlines from {corpus['articles_used']} of {corpus['articles']} "
          f"articles ({corpus['untitled']} without a title, {record['excluded_ids']['left_out_with_copies']} "
          f"excluded with their copies, {corpus['same_body_copies']} same-body copies) against {record['passages']} "
          f"passages; {record['steps']} steps "
          f"in {record['seconds']['total']:.0f}s ({record['precision']}), peak {record['peak_rss_mb']} MB\n"
          f"fingerprint {record['fingerprint']}; record {args.out / STATE / 'record.json'}; "
          f"use it with NEWSEARCH_MODEL={args.out}")
    if unknown := record["excluded_ids"].get("not_in_corpus"):
        print(f"warning: {unknown} of the ids in {args.exclude_ids} are not articles of this corpus (nothing to "
              "leave out for them): check the file is the right one", file=sys.stderr)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Report the CPU, the measured backend choice and the caches (measuring first if needed)."""
    from indexer.doctor import chosen, report
    from indexer.embed import Embedder

    settings = settings_from(args)
    embedder = Embedder.from_settings(settings)
    choice = chosen(embedder.passage_path, embedder.passage_fingerprint, embedder.export_dir, embedder.threads,
                    embedder.batch_size, embedder.requested[1], remeasure=args.remeasure)
    print(report(choice, settings.backend, embedder.export_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of news-index."""
    parser = OneLineParser(prog="news-index", description="Build and manage newsearch indexes.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="index a corpus into a new version and publish it")
    add_common(p)
    add_build_options(p)
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("update", help="re-index only new and changed articles and publish a new version")
    add_common(p)
    add_build_options(p)
    p.add_argument("--delete-missing", action="store_true",
                   help="drop indexed articles that are not in the corpus (off: a partial corpus only adds)")
    p.add_argument("--status-file", type=path_arg, help=argparse.SUPPRESS)  # progress for POST /admin/reindex
    p.set_defaults(func=cmd_update)
    p = sub.add_parser("gc", help="remove old versions (never the published one or one a server uses)")
    add_common(p)
    p.add_argument("--keep", type=integer, default=2, help="newest complete versions to keep (default 2)")
    p.add_argument("--grace", type=number, help="age in seconds after which an unfinished build folder is "
                   "abandoned (NEWSEARCH_GC_GRACE_SECONDS, default 3600)")
    p.add_argument("--prune-cache", action="store_true", help="also drop cached embeddings no kept version uses")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    p.set_defaults(func=cmd_gc)
    p = sub.add_parser("stats", help="show the published version's manifest and counts")
    add_common(p)
    p.add_argument("--fast", action="store_true", help="skip checksum verification")
    p.set_defaults(func=cmd_stats)
    add_adapt_parser(sub)
    p = sub.add_parser("doctor", help="show the CPU, the measured backend choice and why, and the caches")
    add_common(p)
    p.add_argument("--remeasure", action="store_true", help="time the backends again and keep the new choice")
    p.set_defaults(func=cmd_doctor)
    return parser


def add_adapt_parser(sub) -> None:  # noqa: ANN001 - argparse's private subparsers type
    """The adapt subcommand and its options (defaults: indexer.adapt_train.AdaptOptions)."""
    p = sub.add_parser("adapt", help="train a query encoder on a corpus' own headlines (docs/adapt.md)")
    p.add_argument("paths", nargs="+", type=path_arg, help="corpus files or folders (articles with titles)")
    p.add_argument("--out", type=path_arg, required=True, help="new folder for the model (re-run to resume)")
    p.add_argument("--exclude-ids", type=path_arg, help="file of article ids (one a line) to leave out of training, "
                   "with their near copies: the judged articles of queries that are headlines")
    p.add_argument("--epochs", type=number, help="passes over the headlines (default 1)")
    p.add_argument("--max-articles", type=integer, help="train on a random sample of this many articles (default all)")
    p.add_argument("--max-length", type=integer, help="word pieces per training headline (default 64)")
    p.add_argument("--train-batch-size", type=integer, help="headlines per step (default 32)")
    p.add_argument("--learning-rate", type=number, help="peak learning rate (default 3e-5)")
    p.add_argument("--seed", type=integer, help="seed of sampling, shuffling and initialisation (default 13)")
    p.add_argument("--backend", choices=(AUTO, *BACKENDS), help="runtime embedding the base vectors (NEWSEARCH_BACKEND)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (there are none when stderr is not a terminal)")
    p.set_defaults(func=cmd_adapt)


def os_error_line(exc: OSError) -> str:
    """`path: reason` of a failed file operation, as the shell says it (the reason alone if no path)."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileExistsError) and exc.filename is not None and os.path.isfile(exc.filename):
        reason = "is a file, not a folder"  # mkdir's "File exists" for a file where a folder was asked for
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def progress_wanted(args: argparse.Namespace) -> bool:
    """Progress bars only for a person watching: not with --quiet, nor when stderr is a file or pipe, where the
    bars would come before a failing command's one error line."""
    return not args.quiet and sys.stderr.isatty()


def run(argv: Sequence[str] | None, parser_factory: Callable[[], argparse.ArgumentParser]) -> int:
    """Parse, dispatch, and turn NewsearchError, OSError and SQLite errors into one line on stderr and exit code 1."""
    parser = parser_factory()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, not at exit: a reader that left is then this function's BrokenPipeError
        return code
    except NewsearchError as exc:
        message = str(exc)
    except BrokenPipeError:  # the reader left (`news-index stats | head -1`): stop quietly, as a pipeline expects
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit would fail again
        return 141  # as a shell reports a process SIGPIPE ended
    except OSError as exc:  # an unusable path (a file given as a folder, no permission, disk full...)
        message = os_error_line(exc)
    except sqlite3.Error as exc:  # SQLite reports a full disk, a read-only or damaged file in its own errors
        message = (f"SQLite: {exc}; check free disk space and that the index folder is writable "
                   "(a damaged embedding cache, NEWSEARCH_CACHE_DIR or else <index>/cache, can be deleted: it only "
                   "saves time)")
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; the published index is unchanged", file=sys.stderr)
        return 130
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of news-index."""
    return run(argv, build_parser)


if __name__ == "__main__":
    sys.exit(main())
