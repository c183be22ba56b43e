"""Each index file damaged under a running `news-search serve` (issue 15): the vectors file and manifest.json
(truncated, bytes flipped, deleted) and CURRENT (emptied, bytes flipped, deleted, re-pointed). Every answer is a
200 from the version held in memory, or a 503 with a message; never a 500; /readyz names what is served; and the
server serves a good version as soon as one is published."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from indexer.storage.folders import current_version, publish
from tests.helpers import serve_process

QUERIES = [("oil prices", "hybrid"), ("apartment building collapsed", "dense"), ("election", "keyword")]
RELOAD = 0.3  # NEWSEARCH_RELOAD_INTERVAL: the watcher tries the published version this often


def truncate(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(0, len(data), 7):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def delete(path: Path) -> None:
    path.unlink()


def point(index_dir: Path, name: str) -> None:
    tmp = index_dir / "CURRENT.tmp"
    tmp.write_text(name + "\n")
    os.replace(tmp, index_dir / "CURRENT")


def damaged_copy_published(index_dir: Path, served: str, file: str, how) -> None:
    """A copy of the served version with `file` damaged (and the served one's own file damaged too), published."""
    shutil.copytree(index_dir / served, index_dir / "vbad")
    how(index_dir / "vbad" / file)
    how(index_dir / served / file)
    point(index_dir, "vbad")  # as a hand edit would: publish() itself refuses a version without a manifest


def repoint(text: bytes):
    def apply(index_dir: Path, served: str, file: str, how) -> None:
        (index_dir / "CURRENT").write_bytes(text)
    return apply


def remove_current(index_dir: Path, served: str, file: str, how) -> None:
    (index_dir / "CURRENT").unlink()


CASES = {
    **{f"{file}-{how.__name__}": (damaged_copy_published, file, how)
       for file in ("vectors.faiss", "manifest.json") for how in (truncate, flip, delete)},
    "CURRENT-emptied": (repoint(b""), "CURRENT", None),
    "CURRENT-flipped": (repoint(b"\xff\xfe\x00v2\xa5"), "CURRENT", None),
    "CURRENT-deleted": (remove_current, "CURRENT", None),
    "CURRENT-repointed-to-a-missing-version": (repoint(b"v20990101T000000000000Z-0000\n"), "CURRENT", None),
}


def probe(client: httpx.Client, served: str) -> list[str]:
    """Every route once: what went wrong (empty when each answer is a 200 from `served` or a 503 with a message)."""
    wrong = []
    for q, mode in QUERIES:
        r = client.get("/search", params={"q": q, "mode": mode, "k": 5})
        if r.status_code == 200 and r.json()["index_version"] != served:
            wrong.append(f"/search {mode} answered from {r.json()['index_version']}")
        elif r.status_code not in (200, 503) or (r.status_code == 503 and not r.json().get("detail")):
            wrong.append(f"/search {mode}: {r.status_code} {r.text[:200]}")
    for route in ("/stats", "/articles/wikinews-2019-001", "/readyz"):
        r = client.get(route)
        if r.status_code not in (200, 503) or (r.status_code == 503 and not r.json().get("detail")):
            wrong.append(f"{route}: {r.status_code} {r.text[:200]}")
    ready = client.get("/readyz")
    if ready.status_code == 200 and ready.json()["index_version"] != served:
        wrong.append(f"/readyz names {ready.json()['index_version']}, not the served {served}")
    return wrong


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_index_file_under_a_running_server_never_gives_a_500(case, corpus_index, tmp_path):
    index_dir = tmp_path / "idx"
    shutil.copytree(corpus_index, index_dir, symlinks=True)
    served = current_version(index_dir)
    shutil.copytree(index_dir / served, tmp_path / "pristine")
    damage, file, how = CASES[case]
    with serve_process(index_dir, reload_interval=str(RELOAD)) as base, httpx.Client(base_url=base, timeout=60) as client:
        assert probe(client, served) == []
        damage(index_dir, served, file, how)
        wrong = []
        for _ in range(5):  # across several of the watcher's attempts to load the damaged publication
            time.sleep(RELOAD)
            wrong += probe(client, served)
        assert wrong == []
        assert client.get("/readyz").status_code == 200  # the held version is whole in memory: still ready
        shutil.copytree(tmp_path / "pristine", index_dir / "vgood")  # a good version is published
        publish(index_dir, "vgood")
        deadline = time.monotonic() + 60
        while client.get("/readyz").json().get("index_version") != "vgood" and time.monotonic() < deadline:
            time.sleep(RELOAD)
        assert probe(client, "vgood") == []
