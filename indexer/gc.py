"""`news-index gc`: remove old versions, abandoned build folders, stale temporary, lease and job
files, and (on request) cached embeddings that no kept version uses. Never the published version, never
one that a living server or job holds a lease on. Works before anything is published too (a killed first build).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from indexer.cache import EmbeddingCache, cache_key, cache_path
from indexer.embed import built_kind, embedding_text, model_key
from indexer.errors import ConfigError, IndexNotFound
from indexer.jobs import modified, stale_job_files
from indexer.leases import LEASES, leased_versions, read_leases, writer_lock
from indexer.settings import Settings
from indexer.storage import open_store
from indexer.storage.base import Store
from indexer.storage.folders import VERSION_NAME


@dataclass
class GcReport:
    """What gc removed and what it kept, and why."""

    published: str | None  # None: nothing published yet
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)  # old enough to go, but leased by a server or job
    abandoned: list[str] = field(default_factory=list)
    temp_files: int = 0
    expired_leases: int = 0
    job_records: int = 0
    cache_pruned: int | None = None
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for a human."""
        verb = "would remove" if self.dry_run else "removed"
        head = f"published {self.published}" if self.published else "nothing is published yet"
        lines = [f"{head}; kept {len(self.kept)} version(s)" + (f": {', '.join(self.kept)}" if self.kept else ""),
                 f"{verb} {len(self.removed)} old version(s)" + (f": {', '.join(self.removed)}" if self.removed else "")]
        if self.in_use:
            lines.append(f"still in use by a server or job (kept): {', '.join(self.in_use)}")
        if self.abandoned or self.temp_files:
            lines.append(f"{verb} {len(self.abandoned)} unfinished build folder(s) and {self.temp_files} temporary file(s)")
        if self.expired_leases:
            lines.append(f"{verb} {self.expired_leases} expired lease(s) of stopped servers")
        if self.job_records:
            lines.append(f"{verb} {self.job_records} file(s) of finished re-index jobs")
        if self.cache_pruned is not None:
            lines.append(f"{verb} {self.cache_pruned} cached embedding(s) no kept version uses")
        return "\n".join(lines + self.notes)


def needed_keys(store: Store, versions: list[str]) -> set[bytes]:
    """Cache keys of every passage of some versions, as their builds computed them."""
    keys: set[bytes] = set()
    for name in versions:
        version = store.open(name, verify=False)
        try:
            built = version.manifest["model"]
            model = model_key(built["name"], built_kind(built))
            titled = version.manifest["chunking"].get("title_context", False)
            for title, text in version.text.passage_texts():
                keys.add(cache_key(model, embedding_text(title, text, titled)))
        finally:
            version.close()
    return keys


def prune_cache(settings: Settings, store: Store, kept: list[str], dry_run: bool) -> int:
    """Drop cached vectors that none of the kept versions needs; returns how many."""
    path = cache_path(settings)
    if path is None or not path.is_file():
        return 0
    keep = needed_keys(store, kept)
    dim = store.manifest(kept[-1])["model"]["dim"]
    cache = EmbeddingCache(path, dim)
    try:
        if dry_run:
            return sum(1 for (k,) in cache.conn.execute("SELECT key FROM vectors") if k not in keep)
        return cache.prune(keep)
    finally:
        cache.close()


def stale_lease_files(index_dir: Path, grace_seconds: float) -> list[Path]:
    """Temporary files of a lease that was killed midway, older than the grace period."""
    now = time.time()
    return [p for p in (index_dir / LEASES).glob("*.tmp")
            if VERSION_NAME.match(p.name) and now - modified(p, now) > grace_seconds]


def published_or_none(store: Store) -> str | None:
    """The published version, or None before the first publish (a damaged CURRENT still raises)."""
    try:
        return store.current()
    except IndexNotFound:
        return None


def collect(settings: Settings, keep: int = 2, grace_seconds: float | None = None, prune_cache_too: bool = False,
            dry_run: bool = False) -> GcReport:
    """Remove what is no longer needed (see module doc); holds the writer lock while it works."""
    index_dir = settings.index_dir
    if keep < 0:
        raise ConfigError("--keep must be 0 or more (the published version is always kept)")
    if not index_dir.is_dir():
        what = "is not a folder" if index_dir.exists() else "does not exist"
        raise IndexNotFound(f"{index_dir} {what}; nothing to collect")
    grace = settings.gc_grace_seconds if grace_seconds is None else grace_seconds
    store = open_store(settings)
    with writer_lock(index_dir, "gc"):
        published = published_or_none(store)
        versions = store.versions()
        if published is not None and published not in versions:
            # A typo in a hand-edited CURRENT: the versions it did not name would all look old.
            raise IndexNotFound(f"CURRENT in {index_dir} names {published}, which is not a complete version here "
                                f"({', '.join(versions) or 'there is none'}); write the name of the version to serve "
                                "into CURRENT, then run gc again (it removed nothing)")
        newest = set(versions[-keep:]) if keep else set()
        in_use = leased_versions(index_dir, settings.lease_seconds)
        report = GcReport(published, dry_run=dry_run)
        for name in versions:
            # Without a published version (CURRENT lost or a first build killed) nothing says which
            # complete version is wanted, so all stay; only unfinished folders and temp files go.
            if name == published or name in newest or published is None:
                report.kept.append(name)
            elif name in in_use:
                report.kept.append(name)
                report.in_use.append(name)
            else:
                report.removed.append(name)
        report.abandoned = store.unfinished(grace)
        temps = stale_lease_files(index_dir, grace)
        expired = [lease for lease in read_leases(index_dir) if not lease.alive(settings.lease_seconds)]
        job_files = stale_job_files(index_dir, grace)
        report.temp_files = store.remove_temporary(grace, dry_run) + len(temps)
        report.expired_leases, report.job_records = len(expired), len(job_files)
        if not dry_run:
            for name in report.removed + report.abandoned:
                store.remove(name)
            for path in temps + [lease.path for lease in expired] + job_files:
                path.unlink(missing_ok=True)
        if prune_cache_too and published is not None:
            report.cache_pruned = prune_cache(settings, store, report.kept, dry_run)
        elif prune_cache_too:
            report.notes.append("cache not pruned: nothing is published, and its embeddings let the next build resume")
    return report
