"""The embedding model: tokenizing, length-sorted batching and pooling around a backend's forward pass.

Passages are embedded with their article title as context; vectors are L2-normalised float32.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from indexer.backends import (
    AUTO,
    Runtime,
    check_backend,
    load_runtime,
    nominal_precision,
    precision,
    query_backend_for,
    vectors_kind,
)
from indexer.errors import ConfigError
from indexer.files import write_whole
from indexer.models import resolve_model
from indexer.settings import Settings
from indexer.wordpieces import load_tokenizer

# Batches are padded to a multiple of this many word pieces. In bf16 a text's vector otherwise depends on how
# far its batch was padded (the attention sum over positions ends in a tail the kernel rounds differently);
# with whole blocks of 16 a text gets the same vector in any batch, alone or as a query, for a small share of
# throughput (bench/RESULTS.md, "Batching and padding").
PAD_MULTIPLE = 16
# In a folder `news-index adapt` wrote: {"passages": the model that embeds passages, "query_min_words": n}. The
# folder itself is a query encoder trained against that model's passage vectors (docs/adapt.md).
ADAPTED_FILE = "newsearch-adapted.json"
_WORD = re.compile(r"\w+")


def model_file(path: Path, folder: Path) -> bool:
    """A file of the model itself: nothing hidden (download caches keep etags and timestamps there)."""
    return not any(part.startswith(".") for part in path.relative_to(folder).parts)


def model_key(name: str, kind: str) -> str:
    """Identity of a model's vectors: its name, plus their kind (backends.vectors_kind) unless that is torch
    fp32 (whose vectors indexes and caches made before backends existed hold under the bare name)."""
    return name if kind == "torch" else f"{name}@{kind}"


def word_count(text: str) -> int:
    """Words in a query or headline, as an adapted encoder's length rule counts them."""
    return len(_WORD.findall(text))


def read_adapted(folder: Path) -> dict:
    """What an adapted query encoder's folder says about its passages ({} for any other model)."""
    path = folder / ADAPTED_FILE
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        return {"passages": str(found["passages"]), "query_min_words": int(found.get("query_min_words", 0))}
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); re-run news-index adapt into a new folder") from None


def folder_fingerprint(folder: Path, export_dir: Path) -> str:
    """A hash of a model folder's files: two folders with one name but other weights differ here.

    Remembered in the export folder under the files' names, sizes and modification times, so a process
    whose model files are unchanged does not read them all again.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file() and model_file(p, folder))
    listing = json.dumps([str(folder.resolve())] + [
        [str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files])
    memo = export_dir / "fingerprints" / hashlib.sha256(listing.encode()).hexdigest()[:24]
    with contextlib.suppress(OSError):
        return memo.read_text().strip()
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\x00")
        with open(path, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    found = digest.hexdigest()[:16]
    with contextlib.suppress(OSError):  # a read-only cache only costs the hashing
        write_whole(memo, found)
    return found


def built_precision(model: dict) -> str:
    """The precision a manifest's model section records. Versions older than the field hold torch's vectors
    (no backend recorded) or fp32 ones: until the field came, every build ran on CPUs without bf16."""
    return model.get("precision") or nominal_precision(model.get("backend", "torch"))


def built_kind(model: dict) -> str:
    """The vectors kind a manifest's model section records (see built_precision for older versions)."""
    return vectors_kind(model.get("backend", "torch"), built_precision(model))


def configured_dim(folder: Path) -> int | None:
    """The vector size a sentence-transformers folder's modules.json and module configs imply, or None when a
    module is not one of those read here (Transformer, Pooling, Dense, Normalize)."""
    modules = folder / "modules.json"
    if not modules.is_file():
        return None
    dim = None
    for module in json.loads(modules.read_text()):
        kind = module.get("type", "").rsplit(".", 1)[-1]
        config = folder / module.get("path", "") / "config.json"
        if kind == "Pooling" and config.is_file():
            dim = _pooled_dim(json.loads(config.read_text()))
        elif kind == "Dense" and config.is_file():
            dim = json.loads(config.read_text()).get("out_features")
        elif kind not in ("Transformer", "Normalize"):
            return None
        if kind in ("Pooling", "Dense") and not dim:
            return None
    return dim


def _pooled_dim(pooling: dict) -> int | None:
    """A Pooling module's output size: sentence-transformers before 6 wrote one flag per mode (each mode adds a
    block), 6 writes the mode by name; anything else is left to a forward pass."""
    if "word_embedding_dimension" in pooling:
        modes = sum(1 for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True)
        return pooling["word_embedding_dimension"] * max(modes, 1)
    if isinstance(pooling.get("pooling_mode"), str) and "embedding_dimension" in pooling:
        return pooling["embedding_dimension"]
    return None


def with_context(title: str, text: str) -> str:
    """The text the model sees for a passage: its article title, then the passage."""
    return f"{title}\n\n{text}" if title else text


def embedding_text(title: str, text: str, titled: bool) -> str:
    """What the model reads for a passage of an index: under its article's title when the index embeds titles
    (its manifest's chunking.title_context, set by fields=title+body), else the passage alone."""
    return with_context(title, text) if titled else text


class Embedder:
    """Encodes passages on the configured backend and queries on the query backend; loads each runtime on first
    use, never at import."""

    pad_multiple = PAD_MULTIPLE  # bench/embed_batching.py measures others

    def __init__(self, model: str | Path | None = None,
                 batch_size: int = Settings.batch_size, threads: int = 0, backend: str = Settings.backend, export_dir: Path | None = None,
                 query_backend: str = Settings.query_backend,  # empty: backends.query_backend_for(backend)
                 openvino_precision: str = Settings.openvino_precision):
        check_backend(backend, allow_auto=True)
        if query_backend:
            check_backend(query_backend, "NEWSEARCH_QUERY_BACKEND")
        self.requested = (backend, openvino_precision)  # auto: measured on first use (indexer/doctor.py)
        self.query_setting = query_backend
        self.export_dir = export_dir or Settings().export_path
        # A known name (a packaged model, unpacked into the export folder if it ships split) or a folder.
        self.model_path, self.name = resolve_model(model, self.export_dir)
        if not (self.model_path / "config.json").is_file():
            raise ConfigError(f"{self.model_path} is not a sentence-transformers model folder (no config.json)")
        # An adapted query encoder embeds queries; its base model embeds passages, and short queries, which are
        # unlike the headlines it was trained on (docs/adapt.md).
        self.adapted = read_adapted(self.model_path)
        self.passage_path, self.passage_name = (resolve_model(self.adapted["passages"], self.export_dir)
                                                if self.adapted else (self.model_path, self.name))
        self.batch_size = batch_size
        self.threads = threads
        self.on_query: Callable[[float], None] | None = None  # told the seconds each query took (metrics)

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        """The embedder the settings describe."""
        return cls(settings.model, settings.batch_size, settings.threads,
                   settings.backend, settings.export_path, settings.query_backend, settings.openvino_precision)

    @cached_property
    def choice(self) -> tuple[str, str]:
        """(backend, NEWSEARCH_OPENVINO_PRECISION) this embedder runs: as set, or with NEWSEARCH_BACKEND=auto
        the fastest within the quality gate on this machine, measured once and kept (indexer/doctor.py)."""
        backend, openvino = self.requested
        if backend != AUTO:
            return backend, openvino
        from indexer.doctor import chosen

        picked = chosen(self.passage_path, self.passage_fingerprint, self.export_dir, self.threads, self.batch_size, openvino)
        return picked.backend, picked.openvino_precision

    @property
    def backend(self) -> str:
        """The passages' backend (a name of backends.BACKENDS, never auto)."""
        return self.choice[0]

    @property
    def openvino_precision(self) -> str:
        """The OpenVINO precision asked for: auto, fp32 or bf16."""
        return self.choice[1]

    @cached_property
    def query_backend(self) -> str:
        """The queries' backend: NEWSEARCH_QUERY_BACKEND, or the default for the passages' backend."""
        return self.query_setting or query_backend_for(self.backend, self.openvino_precision)

    @cached_property
    def precision(self) -> str:
        """The arithmetic the passages' backend runs in on this machine (fp32, bf16 or int8)."""
        return precision(self.backend, self.openvino_precision)

    @property
    def kind(self) -> str:
        """The passages' backend, with the precision when the CPU picked one its name does not say."""
        return vectors_kind(self.backend, self.precision)

    @property
    def key(self) -> str:
        """Whose vectors these are, for cache keys: the model that embeds passages, and their kind unless it is
        torch fp32 (an adapted query encoder's index shares its base model's cached passages)."""
        return model_key(self.passage_name, self.kind)

    @cached_property
    def runtime(self) -> Runtime:
        """The backend's forward pass, loaded (and the model exported, if it needs that) on first use."""
        return load_runtime(self.backend, self.passage_path, self.passage_fingerprint, self.export_dir, self.threads,
                            self._input_names, openvino=self.openvino_precision)

    @cached_property
    def query_runtime(self) -> Runtime:
        """The forward pass for queries: the query backend's, tuned for one short text at a time."""
        return self._query_runtime_of(self.model_path, self.fingerprint)

    @cached_property
    def short_query_runtime(self) -> Runtime:
        """The forward pass for queries shorter than an adapted encoder's training headlines: the base model's."""
        if not self.adapted:
            return self.query_runtime
        return self._query_runtime_of(self.passage_path, self.passage_fingerprint)

    def _query_runtime_of(self, folder: Path, fingerprint: str) -> Runtime:
        # The passages' forward pass serves their model's queries where the query backend is the same one (an
        # OpenVINO query runtime is compiled for one short text at a time, so it is not shared).
        if folder == self.passage_path and self.query_backend == self.backend and self.backend != "openvino":
            return self.runtime
        return load_runtime(self.query_backend, folder, fingerprint, self.export_dir, self.threads,
                            self._input_names, queries=True, variable="NEWSEARCH_QUERY_BACKEND",
                            openvino=self.openvino_precision)

    def is_short(self, query: str) -> bool:
        """Whether an adapted encoder leaves `query` to its base model: fewer words than nearly all the headlines
        it was trained on."""
        return bool(self.adapted) and word_count(query) < self.adapted["query_min_words"]

    def load(self, queries: bool = False) -> None:
        """Load the passages' runtime (with `queries`, the queries' one) now rather than at first use (servers
        and benchmarks time it apart)."""
        _ = (self.query_runtime, self.short_query_runtime) if queries else self.runtime
        _ = self.dim

    @cached_property
    def fingerprint(self) -> str:
        """The model folder's fingerprint (folder_fingerprint): what a manifest records."""
        return folder_fingerprint(self.model_path, self.export_dir)

    @cached_property
    def passage_fingerprint(self) -> str:
        """The fingerprint of the folder that embeds passages (the model's own, unless it is an adapted query
        encoder)."""
        return self.fingerprint if self.passage_path == self.model_path else folder_fingerprint(self.passage_path,
                                                                                                self.export_dir)

    def _input_names(self) -> list[str]:
        """The model's input names, which only an ONNX export needs (asked for then: it imports transformers)."""
        return list(self.tokenizer.model_input_names)

    @cached_property
    def tokenizer(self):  # noqa: ANN201
        """The model's own tokenizer (the word pieces sentence-transformers makes), for sizing and encoding."""
        return load_tokenizer(self.model_path)

    @cached_property
    def dim(self) -> int:
        """Embedding dimension: from the model's files where they say it, else from a runtime already loaded (a
        server loads only the queries' one)."""
        known = configured_dim(self.model_path)
        if known:
            return known
        loaded = "runtime" in self.__dict__ or "query_runtime" not in self.__dict__
        return int((self.runtime if loaded else self.query_runtime)(self._feeds([[0]]))[0].shape[0])

    @cached_property
    def max_tokens(self) -> int:
        """Word pieces the model reads before truncating (special tokens included)."""
        config = self.model_path / "sentence_bert_config.json"
        if config.is_file():
            limit = json.loads(config.read_text()).get("max_seq_length")
            if limit:
                return int(limit)
        return int(min(self.tokenizer.model_max_length, 512))

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text`, without the [CLS]/[SEP] the model adds."""
        return len(self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised float32 vectors, shape (len(texts), dim).

        Texts are tokenized once, then run longest first in batches padded only to their own longest
        text (rounded up to `pad_multiple`), so a batch of short passages costs what short passages cost.
        """
        return self._encode(texts, self.runtime)

    def _encode(self, texts: Sequence[str], runtime: Runtime) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_tokens)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        # A runtime with several streams runs batches side by side: give each stream one when there are few.
        streams = getattr(runtime, "streams", 1)
        size = max(1, min(self.batch_size, -(-len(ids) // streams)))
        batches = [order[start : start + size] for start in range(0, len(order), size)]
        feeds = (self._feeds([ids[i] for i in rows]) for rows in batches)  # made as the runtime takes them
        many = getattr(runtime, "many", None)
        for rows, vectors in zip(batches, many(feeds) if many else map(runtime, feeds)):
            out[rows] = vectors
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.maximum(norms, 1e-12), dtype=np.float32)

    def _feeds(self, ids: list[list[int]]) -> dict[str, np.ndarray]:
        """One padded batch: token ids, attention mask and (for BERT-like models) segment ids."""
        longest = max(len(row) for row in ids)
        # Never past what the model reads (its position table may end there).
        width = min(-(-longest // self.pad_multiple) * self.pad_multiple, max(self.max_tokens, longest))
        input_ids = np.full((len(ids), width), self.tokenizer.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for r, row in enumerate(ids):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Many query vectors in batches, shape (len(queries), dim): what encode_query gives each, up to padding."""
        out = np.zeros((len(queries), self.dim), dtype=np.float32)
        short = [self.is_short(query) for query in queries]
        for flag, runtime in ((False, self.query_runtime), (True, self.short_query_runtime)):
            rows = [i for i, found in enumerate(short) if found == flag]
            if rows:
                out[rows] = self._encode([queries[i] for i in rows], runtime)
        return out

    def encode_query(self, query: str) -> np.ndarray:
        """One query vector, shape (dim,)."""
        started = time.perf_counter()
        vector = self._encode([query], self.short_query_runtime if self.is_short(query) else self.query_runtime)[0]
        if self.on_query is not None:
            self.on_query(time.perf_counter() - started)
        return vector
