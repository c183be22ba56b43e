"""The local store on disk: one folder per version, a manifest that describes it, and CURRENT naming
the published one. Writers never touch a published version; publishing is an atomic rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from indexer.errors import IndexMismatch, IndexNotFound, NewsearchError
from indexer.files import commit_file as commit_file  # storage/local.py commits its files through this module
from indexer.files import write_whole
from indexer.storage.manifest import FORMAT, FORMAT_VERSION, rebuild_hint

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
META = "meta.sqlite"
WRITER = "writer.json"  # pid and host of the process writing an unfinished version; removed when complete


def new_version_name() -> str:
    """Sortable by creation time, unique across concurrent writers."""
    return "v" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(2)


# What new_version_name gives: gc removes unfinished folders of that shape only, never a folder it did not make
# (pointed at a project folder, it had taken `var/` and `vendor/`).
VERSION_NAME = re.compile(r"v\d{8}T\d{12}Z-[0-9a-f]{4}")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """Size and checksum of one index file, as the manifest records them."""
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write manifest.json last: its presence marks the version complete."""
    write_whole(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n", durable=True)


def publish(index_dir: Path, version: str) -> None:
    """Make `version` the published one: CURRENT is replaced by an atomic rename."""
    if not (index_dir / version / MANIFEST).is_file():
        raise IndexNotFound(f"version {version} in {index_dir} is incomplete (no {MANIFEST}); {rebuild_hint(index_dir)}")
    write_whole(index_dir / CURRENT, version + "\n", durable=True)  # CURRENT.<random>.tmp until renamed


def publish_new(index_dir: Path, version: str) -> None:
    """Publish a version this job has just written; if that fails (a full disk), remove it: unpublished, it
    would only hold space."""
    try:
        publish(index_dir, version)
    except BaseException:
        try:
            published = current_version(index_dir)
        except NewsearchError:  # CURRENT missing or unreadable: this version is not it
            published = None
        if published != version:
            shutil.rmtree(index_dir / version, ignore_errors=True)
        raise


def current_version(index_dir: Path) -> str:
    """Name of the published version; IndexNotFound if there is none."""
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexNotFound(f"no index published in {index_dir}; build one with "
                            f"`news-index build <corpus> --index-dir {index_dir}`") from None
    except OSError as exc:  # a file where the folder should be, no permission: as the CLIs word an OSError
        raise IndexMismatch(f"{index_dir / CURRENT}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise IndexMismatch(f"{index_dir / CURRENT} is damaged (not text); {rebuild_hint(index_dir)}") from None
    if not name or "/" in name or name.startswith(".") or not name.isprintable() or " " in name:
        raise IndexMismatch(f"{index_dir / CURRENT} is damaged ({name!r}); {rebuild_hint(index_dir)}")
    return name


def list_versions(index_dir: Path) -> list[str]:
    """Complete versions (with a manifest), oldest first."""
    if not index_dir.is_dir():
        return []
    return sorted(p.name for p in index_dir.iterdir() if p.is_dir() and p.name.startswith("v") and (p / MANIFEST).is_file())


def read_manifest(folder: Path) -> dict[str, Any]:
    """The parsed manifest of a version folder, checked for format."""
    index_dir = folder.parent
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexNotFound(f"{folder} has no {MANIFEST}; {rebuild_hint(index_dir)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise IndexMismatch(f"{folder / MANIFEST} is damaged; {rebuild_hint(index_dir)}") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(
            f"{folder} is in format {manifest.get('format')} v{manifest.get('format_version')}, this newsearch "
            f"reads {FORMAT} v{FORMAT_VERSION}; {rebuild_hint(index_dir)}")
    return manifest


def verify_files(folder: Path, manifest: dict[str, Any]) -> None:
    """Compare each file's size and checksum with the manifest."""
    for name, entry in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise IndexMismatch(f"{path} is missing; {rebuild_hint(folder.parent)}")
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise IndexMismatch(f"{path} does not match its checksum in {MANIFEST} (damaged or modified); "
                                f"{rebuild_hint(folder.parent)}")


def stale_folders(index_dir: Path, grace_seconds: float) -> list[Path]:
    """Folders of builds that never completed (no manifest): at once if the process that wrote them (on this
    host) is gone, else once older than the grace period."""
    if not index_dir.is_dir():
        return []
    now = time.time()
    return [p for p in index_dir.iterdir()
            if p.is_dir() and VERSION_NAME.fullmatch(p.name) and not (p / MANIFEST).exists()
            and (now - p.stat().st_mtime > grace_seconds or writer_gone(p))]


def writer_gone(folder: Path) -> bool:
    """True if the build folder names its writer and that process no longer runs on this host."""
    try:
        writer = json.loads((folder / WRITER).read_text())
        if writer["host"] != socket.gethostname():
            return False
        os.kill(int(writer["pid"]), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError, KeyError, TypeError):  # no writer file, another owner's process: not known
        return False
    return False


