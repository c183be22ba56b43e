"""What every backend's manifest holds (format, model, chunking, counts, software) and the checks a reader
makes of it: the same format and the same embedding model as the process that opens it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from indexer import __version__
from indexer.errors import IndexMismatch

FORMAT = "newsearch-index"
FORMAT_VERSION = 2  # 2: articles_fts had a lead column (keyword/ replaced it; a version without gets one on open)


def rebuild_hint(index_dir: Path) -> str:
    """What to run to get a good index again."""
    return f"rebuild it with `news-index build <corpus> --index-dir {index_dir}`"


def base_manifest(version: str, model: dict[str, Any], chunking: dict[str, Any],
                  counts: dict[str, int]) -> dict[str, Any]:
    """What a reader needs to check any backend's version; a backend adds its index parameters and checksums."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model,
        "chunking": chunking,
        "counts": counts,
        "software": {"newsearch": __version__, "sentence_transformers": metadata.version("sentence-transformers")},
    }


def check_model(manifest: dict[str, Any], model_name: str, dim: int, index_dir: Path,
                fingerprint: str | None = None) -> None:
    """Refuse an index built with another embedding model (by name, dimension and, if known, files)."""
    built = manifest.get("model", {})
    fix = f"{rebuild_hint(index_dir)}, or set NEWSEARCH_MODEL to the model it was built with ({built.get('name')})"
    same_files = bool(fingerprint) and built.get("fingerprint") == fingerprint
    if (built.get("name") != model_name and not same_files) or built.get("dim") != dim:
        raise IndexMismatch(
            f"the index was built with model {built.get('name')} (dim {built.get('dim')}) but this process uses "
            f"{model_name} (dim {dim}); {fix}")
    if fingerprint and built.get("fingerprint") and built["fingerprint"] != fingerprint:
        raise IndexMismatch(
            f"the index was built with other files of model {model_name} (fingerprint {built['fingerprint']}, "
            f"this process has {fingerprint}); {fix}")
