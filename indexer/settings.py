"""The one settings object: defaults, overridden by NEWSEARCH_* environment variables, then by CLI flags.

No other module reads the environment. The server's own settings (address, keys, limits, webhooks) extend it in
search_api/settings.py: the indexer never sees them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

from indexer.backends import check_backend, check_openvino_precision
from indexer.errors import ConfigError
from indexer.models import DEFAULT_MODEL
from indexer.storage import STORES
from indexer.storage.faiss_vectors import FLAT_LIMIT, HNSW_LIMIT

ENV_PREFIX = "NEWSEARCH_"
# Variables of earlier releases still read, under the setting that replaced them (docs/configuration.md).
DEPRECATED = {"MODEL_PATH": "model"}
FIELD_CHOICES = ("title+body", "body")


@dataclass(frozen=True)
class Settings:
    """Every tunable of newsearch. Each field's docstring is its user documentation: docs/configuration.md
    is generated from them (docs/hooks/settings_page.py), so a new field needs one."""

    index_dir: Path = Path("var/index")
    """Index folder: the published version is the one its `CURRENT` file names."""
    store: str = "local"
    """Storage backend of index versions: `local` (FAISS + SQLite folders) or `milvus` (collections behind an
    alias; docs/storage.md, docs/milvus.md)."""
    model: str = DEFAULT_MODEL
    """Embedding model: `all-MiniLM-L6-v2`, `all-mpnet-base-v2` (its packages installed) or a sentence-transformers
    model folder; nothing is downloaded (docs/models.md)."""
    chunk_tokens: int = 200
    """Most word pieces of the model's tokenizer in one passage."""
    chunk_overlap: int = 1
    """Sentences repeated at the start of the next passage."""
    lead_sentences: int = 2
    """An untitled article's lead (every article's with `fields=body`) of this many sentences is also a passage
    of its own; 0: never (docs/indexing.md)."""
    fields: str = "title+body"
    """What is embedded and keyword-indexed: `title+body`, or `body` to leave titles out."""
    batch_size: int = 16
    """Passages per embedding batch (batched longest first, each batch padded to its own longest, rounded up to
    16 word pieces); the default is the fastest measured (bench/RESULTS.md, "Batching and padding")."""
    cache_dir: str = ""
    """Embedding cache folder; empty: `<index_dir>/cache`; `none`: no cache."""
    threads: int = 0
    """Threads of the embedding backend, also per query; 0: its default (every core)."""
    backend: str = "auto"
    """Embedding runtime: `auto` (the fastest measured on this CPU that passes the quality gate; `news-index
    doctor`), `openvino`, `torch` (fp32), `torch-bf16`, `onnx`, `onnx-int8` (docs/performance.md)."""
    query_backend: str = ""
    """Runtime that embeds queries, one of the same names; empty: `onnx` for fp32 `openvino`/`onnx` passages,
    else the passages' own backend."""
    openvino_precision: str = "auto"
    """OpenVINO's arithmetic: `auto` (bf16 where the CPU has bf16 instructions, else fp32), `fp32`, `bf16`."""
    export_dir: str = ""
    """Where the model exported to ONNX (and OpenVINO's compiled cache) is kept, and all-mpnet-base-v2 unpacked;
    empty: `~/.cache/newsearch/models`."""
    max_query_chars: int = 1000
    """Longer queries get 422."""
    max_k: int = 100
    """Most hits in one page; larger `k` gets 422."""
    default_mode: str = "hybrid"
    """Ranking mode when a request names none: `hybrid`, `dense` or `keyword`."""
    rrf_k: int = 60
    """Rank offset `k` of reciprocal rank fusion, `Σ w/(k + rank)`."""
    dense_weight: float = 1.0
    """Weight of the dense ranking in fusion."""
    keyword_weight: float = 1.0
    """Weight of the keyword (BM25) ranking in fusion."""
    pool_temperature: float = 0.03
    """Dense article score: the soft maximum of its passages' cosines at this temperature; 0: the best passage."""
    candidates: int = 200
    """Results ranked per retriever before fusion; pages reach this deep (`offset + k` at most this)."""
    title_weight: float = 1.0
    """BM25 weight of the title column against the body."""
    lead_weight: float = 1.0
    """BM25 weight of the lead (an article's opening sentences), counted on top of the body."""
    keyword_stop_words: bool = True
    """Leave stop words out of the keyword query (unless nothing else is left; docs/evaluation.md)."""
    min_relevance: float = 0.04
    """Calibrated relevance a hit needs to count in `total` and be highlighted; chosen on the dev sets' tune half
    (docs/relevance.md; bench/RESULTS.md, "Relevance calibration")."""
    rerank_depth: int = 50
    """Fused results a configured `Reranker` re-scores when a request asks for `rerank`."""
    reload_interval: float = 5.0
    """Seconds between a server's checks of `CURRENT` for a newly published version, at least 0.1; 0: never."""
    gc_grace_seconds: float = 3600.0
    """`news-index gc` leaves unfinished folders, temporary files and finished jobs' files younger than this."""
    lease_seconds: float = 60.0
    """A server's or job's claim on a version expires this long after its last heartbeat."""
    checkpoint_passages: int = 256
    """Embedded passages committed to the cache at a time: what a killed job keeps."""
    engine: str = "local"
    """Batch engine of build and update: `local` or `ray` (docs/scaling.md)."""
    ray_address: str = ""
    """Ray cluster to join (e.g. `ray://head:10001`); empty: start a local Ray instance for the job."""
    flat_limit: int = FLAT_LIMIT
    """Passages from which builds use the approximate IVF-SQ8 index instead of exact search (docs/scaling.md)."""
    hnsw_limit: int = HNSW_LIMIT
    """Passages from which builds use an HNSW graph over 8-bit codes; 0: never."""
    nprobe: int = 0
    """IVF lists probed per query; 0: chosen from the corpus size (docs/scaling.md)."""
    ef_search: int = 0
    """HNSW candidates kept per query; 0: the measured default (docs/scaling.md)."""
    mmap: bool = False
    """Memory-map the vector index instead of reading it into memory (read-only, shared between processes)."""
    milvus_uri: str = ""
    """With `store=milvus`: a Milvus Lite file (`.db`; empty: `<index_dir>/milvus.db`) or `http(s)://host:19530`
    of a Milvus server or cluster (docs/milvus.md)."""
    milvus_token: str = ""
    """Token of a Milvus server (`user:password` or an API key); empty for Milvus Lite."""
    milvus_collection: str = "newsearch"
    """Prefix of this index's Milvus collection and alias names."""
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from NEWSEARCH_* variables, then apply non-None overrides (CLI flags)."""
        env = os.environ if env is None else env
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for old, name in DEPRECATED.items():
            if env.get(ENV_PREFIX + old):
                values[name] = _parse(name, env[ENV_PREFIX + old], hints[name])
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw, hints[f.name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)}")
        settings = cls(**values)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (None values are ignored)."""
        new = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        new.validate()
        return new

    @property
    def export_path(self) -> Path:
        """Folder of the model files a backend exports (ONNX, OpenVINO's compiled cache), shared by every
        index on the machine: exports are keyed by the model's fingerprint."""
        if self.export_dir:
            return Path(self.export_dir)
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "newsearch" / "models"

    def assign(self, pairs: Sequence[str]) -> Settings:
        """A copy with `name=value` pairs applied, each value parsed as its NEWSEARCH_ variable would be."""
        hints = get_type_hints(type(self))
        changes: dict[str, Any] = {}
        for pair in pairs:
            name, sep, raw = pair.partition("=")
            name = name.strip().lower()
            if not sep or name not in hints:
                raise ConfigError(f"{pair!r} is not NAME=VALUE with NAME a setting (see docs/configuration.md)")
            changes[name] = _parse(name, raw.strip(), hints[name])
        return self.replace(**changes)

    def validate(self) -> None:
        """Raise ConfigError naming the variable when a value cannot work."""
        if self.fields not in FIELD_CHOICES:
            raise ConfigError(f"NEWSEARCH_FIELDS must be one of {FIELD_CHOICES}, not {self.fields!r}")
        if self.default_mode not in ("hybrid", "dense", "keyword"):
            raise ConfigError("NEWSEARCH_DEFAULT_MODE must be hybrid, dense or keyword")
        check_backend(self.backend, allow_auto=True)
        check_openvino_precision(self.openvino_precision)
        if self.query_backend:
            check_backend(self.query_backend, "NEWSEARCH_QUERY_BACKEND")
        if self.store not in STORES:
            raise ConfigError(f"NEWSEARCH_STORE must be one of {', '.join(STORES)}, not {self.store!r}")
        if self.engine not in ("local", "ray"):
            raise ConfigError(f"NEWSEARCH_ENGINE must be local or ray, not {self.engine!r}")
        check_ranges(self, RANGES)
        if 0 < self.reload_interval < MIN_RELOAD_INTERVAL:
            # Each check reads CURRENT and renews leases: a microsecond interval is a busy loop beside the searches.
            raise ConfigError(f"NEWSEARCH_RELOAD_INTERVAL must be 0 (never reload) or at least {MIN_RELOAD_INTERVAL:g} "
                              f"seconds, not {self.reload_interval!r}")
        if self.candidates < self.max_k:
            raise ConfigError(f"NEWSEARCH_CANDIDATES ({self.candidates}) must be at least NEWSEARCH_MAX_K "
                              f"({self.max_k}), or a page of max_k hits could never be ranked")
        if self.dense_weight == self.keyword_weight == 0:
            raise ConfigError("NEWSEARCH_DENSE_WEIGHT and NEWSEARCH_KEYWORD_WEIGHT cannot both be 0 "
                              "(hybrid search would rank nothing); set one above 0")


# Allowed range of every numeric setting: (lowest, highest, what the number means); checked by validate. Every
# range is finite: a value past what the code can compute with (an RRF offset of 10**400 overflows a float) is
# refused at start rather than met by a search.
YEAR = 365 * 24 * 3600
MIN_RELOAD_INTERVAL = 0.1
RANGES: dict[str, tuple[float, float, str]] = {
    "chunk_tokens": (16, 510, "word pieces per passage"),
    "chunk_overlap": (0, 3, "sentences"),
    "lead_sentences": (0, 5, "sentences; 0: no lead passage"),
    "batch_size": (1, 4096, "passages per embedding batch"),
    "threads": (0, 1024, "embedding threads; 0: the backend's default"),
    "max_query_chars": (1, 1_000_000, "characters"),
    "max_k": (1, 10000, "hits per request"),
    "rrf_k": (1, 1_000_000, "rank offset of reciprocal rank fusion; 60 is usual"),
    "dense_weight": (0, 1000, "weight of the dense ranking in fusion"),
    "keyword_weight": (0, 1000, "weight of the keyword ranking in fusion"),
    "pool_temperature": (0, 100, "0: best passage only"),
    "candidates": (1, 10000, "results ranked per retriever"),
    "title_weight": (0, 1000, "BM25 weight; 0 ignores titles"),
    "lead_weight": (0, 1000, "BM25 weight; 0 ignores the lead"),
    "min_relevance": (0, 1, "calibrated relevance a hit needs to count as a match"),
    "rerank_depth": (1, 10000, "hits re-scored"),
    "reload_interval": (0, YEAR, "seconds; 0: never reload"),
    "gc_grace_seconds": (0, YEAR, "seconds"),
    "lease_seconds": (1, YEAR, "seconds"),
    "checkpoint_passages": (1, 10**9, "passages"),
    "flat_limit": (0, 10**12, "passages; 0: always approximate"),
    "hnsw_limit": (0, 10**12, "passages; 0: never HNSW"),
    "nprobe": (0, 65536, "IVF lists probed per query; 0: automatic"),
    "ef_search": (0, 65536, "HNSW candidates per query; 0: automatic"),
}


def check_ranges(settings: Any, ranges: Mapping[str, tuple[float, float, str]]) -> None:
    """Raise ConfigError naming the variable and its range for the first value outside its range."""
    for name, (low, high, note) in ranges.items():
        value = getattr(settings, name)
        if not (low <= value <= high and (isinstance(value, int) or math.isfinite(value))):
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be between {bound(low)} and {bound(high)} ({note}), "
                              f"not {value!r}")


def bound(value: float) -> str:
    """A range's end as a person reads it: 1,000,000 rather than 1e+06 (and a port as 65535)."""
    if value != int(value):
        return f"{value:g}"
    return f"{int(value):,}" if value >= 100_000 else str(int(value))


def _boolean(raw: str) -> bool:
    word = raw.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def integer(raw: str) -> int:
    """An integer as a person writes it: Python's int() also reads "1_0" as 10, and digits of other scripts
    ("١٠"), which in a flag or a variable are a typo or a paste, not ten."""
    if "_" in raw or not raw.isascii():
        raise ValueError(raw)
    return int(raw)


def number(raw: str) -> float:
    """A decimal number, without the underscores and other scripts' digits float() accepts (see `integer`)."""
    if "_" in raw or not raw.isascii():
        raise ValueError(raw)
    return float(raw)


def path_arg(raw: str) -> Path:
    """A path flag, never empty: Path("") is the working directory, which gc would sweep and build publish into."""
    if not raw.strip():
        raise argparse.ArgumentTypeError("must not be empty (give . for the working directory)")
    return Path(raw)


def _parse(name: str, raw: str, kind: Any) -> Any:
    try:
        if kind is Path:
            return Path(raw)
        if kind is bool:
            return _boolean(raw)
        if kind is int:
            return integer(raw)
        if kind is float:
            return number(raw)
        if kind == tuple[str, ...]:
            parts = tuple(part.strip() for part in raw.split(",") if part.strip())
            if not parts:  # " , ": set, but to nothing (API keys set so would leave search open)
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} lists nothing; leave it unset, or give "
                                  "values separated by commas")
            return parts
        return raw
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind.__name__}") from None
