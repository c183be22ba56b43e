"""Files replaced whole: written under a temporary name beside the target, then renamed onto it, so a reader
never sees half a file and a killed writer leaves at most a `<name>.<random>.tmp` that gc removes."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file's data to disk."""
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def commit_file(tmp: Path, final: Path) -> None:
    """fsync a finished temporary file, then rename it to its final name."""
    fsync_file(tmp)
    os.replace(tmp, final)


def temporary_name(target: Path) -> Path:
    """A fresh `<target>.<random>.tmp` beside `target`: two writers of one target never share it."""
    return target.with_name(f"{target.name}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def replacing(target: Path, durable: bool = False) -> Iterator[Path]:
    """A temporary path to write; renamed onto `target` when the block succeeds, removed when it fails.

    `durable` also fsyncs the file before the rename and the folder after it, so the new file survives a
    power cut (index versions and CURRENT); status, lease and cache files only need readers to see it whole.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    try:
        yield tmp
        if durable:
            commit_file(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(target.parent)


def write_whole(target: Path, text: str, durable: bool = False) -> None:
    """Replace `target` by a file holding `text` (UTF-8), atomically (see `replacing`)."""
    with replacing(target, durable) as tmp:
        tmp.write_text(text, encoding="utf-8")
