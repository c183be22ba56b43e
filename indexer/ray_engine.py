"""The `ray` batch engine: reading+cleaning, chunking and embedding run as Ray Data pipelines
(files -> read tasks; articles -> chunking actors; passages -> embedding actors, the batch
inference pattern of `map_batches` with a callable class). The driver keeps what needs the whole
corpus (one record per id, the embedding cache and its checkpoints, near-duplicates, writing).
Needs the optional extra: `pip install 'newsearch[ray]'`.
"""

from __future__ import annotations

import logging
import pickle
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from indexer.chunk import chunk_article
from indexer.embed import Embedder
from indexer.engines import EngineBase
from indexer.errors import ConfigError, SourceError
from indexer.records import Article, Passage
from indexer.sources import CorpusReader, Problem
from indexer.steps import (
    Corpus,
    chunk_options,
    clean_or_report,
    distinct,
    from_cache,
    keep_last,
    no_articles,
    place_block,
)

LOCAL_OBJECT_STORE = 256 * 1024 * 1024  # bytes; the pipeline holds text and 384-float vectors only


def read_files(batch: dict[str, np.ndarray]) -> dict[str, list]:
    """Ray task: read and clean some files; one row per article or skipped record, in file order."""
    out: dict[str, list] = {"order": [], "seq": [], "blob": []}
    for order, path, rel in zip(batch["order"], batch["path"], batch["rel"]):
        reader = CorpusReader([Path(path)])
        items: list[tuple[Article, str] | Problem] = []
        for raw in reader.read_file(Path(path), str(rel)):
            outcome = clean_or_report(raw, strict=False)
            items.append(outcome if isinstance(outcome, Problem) else (outcome, raw.origin))
        items.extend(reader.problems)
        for seq, item in enumerate(items):
            out["order"].append(int(order))
            out["seq"].append(seq)
            out["blob"].append(pickle.dumps(item))
    return out


class ChunkArticles:
    """Ray actor: splits articles into passages, sized with the model's own tokenizer (loaded once per actor)."""

    def __init__(self, model: str, export_dir: str, options: dict[str, int]):
        # The driver's own counter on this actor: an Embedder loads its tokenizer on first use, never the model.
        self.count_tokens = Embedder(model, export_dir=Path(export_dir)).count_tokens
        self.options = options

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        passages = [chunk_article(pickle.loads(blob), self.count_tokens, **self.options) for blob in batch["blob"]]
        return {"row": list(batch["row"]), "blob": [pickle.dumps(p) for p in passages]}


class EmbedPassages:
    """Ray actor: the embedding model, loaded once per actor, encoding batches of passage texts."""

    def __init__(self, model: str, export_dir: str, batch_size: int, backend: str, kind: str,
                 openvino_precision: str = "auto"):
        # One thread per actor: the pool runs one actor per CPU.
        self.embedder = Embedder(model, batch_size, 1, backend, Path(export_dir),
                                 openvino_precision=openvino_precision)
        if self.embedder.kind != kind:
            # A node whose CPU picks another precision would mix its vectors into the job's under the job's key.
            raise ConfigError(f"a Ray worker embeds with {self.embedder.kind} but the job embeds with {kind}; run "
                              f"the job on nodes of one CPU kind, or set NEWSEARCH_OPENVINO_PRECISION=fp32")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        return {"row": batch["row"], "vector": self.embedder.encode([str(t) for t in batch["text"]])}


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast, with one line, when a host:port cluster address does not answer (Ray itself retries for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" or another form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                          "`ray start --head` or fix --ray-address / NEWSEARCH_RAY_ADDRESS") from None


class RayEngine(EngineBase):
    """Runs the heavy steps on a Ray cluster (NEWSEARCH_RAY_ADDRESS) or a local Ray instance."""

    name = "ray"

    _started_ray = False

    def __enter__(self) -> RayEngine:
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray engine needs Ray: pip install 'newsearch[ray]' (or use --engine local)") from None
        if not ray.is_initialized():
            if self.settings.ray_address:
                check_reachable(self.settings.ray_address)
                try:
                    ray.init(address=self.settings.ray_address, logging_level="warning", log_to_driver=False)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise ConfigError(f"cannot join the Ray cluster at {self.settings.ray_address} ({exc}); "
                                      "check --ray-address / NEWSEARCH_RAY_ADDRESS") from None
            else:
                ray.init(num_cpus=2, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE,
                         logging_level="warning", log_to_driver=False)
            self._started_ray = True
        ray.data.DataContext.get_current().enable_progress_bars = self.progress
        if not self.progress:
            logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-stage progress lines either
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        import ray

        super().__exit__(*exc)
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def _actors(self):
        """An autoscaling actor pool of one to one-per-cluster-CPU actors."""
        import ray

        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        return ray.data.ActorPoolStrategy(min_size=1, max_size=cpus)

    def _dataset(self, items: list[dict[str, Any]], per_block: int):
        """A dataset of `items` split so that every actor of the pool gets work."""
        import ray

        blocks = max(2 * self._actors().max_size, -(-len(items) // per_block))
        return ray.data.from_items(items, override_num_blocks=min(len(items), blocks))

    def _model(self) -> dict[str, Any]:
        # The setting, not the driver's folder: a worker on another node finds (or unpacks) its own copy.
        return {"model": self.settings.model, "export_dir": str(self.embedder.export_dir)}

    def read(self, paths: Sequence[Path], strict: bool) -> Corpus:
        """Each file is read and cleaned by a Ray task; one record per id is kept on the driver."""
        import ray

        if self.on_progress:
            self.on_progress("reading", 0, 0)
        reader = CorpusReader(list(paths), strict=strict)
        files = reader.files()
        if not files:
            raise no_articles(paths, reader.problems)
        items = [{"order": i, "path": str(p), "rel": rel} for i, (p, rel) in enumerate(files)]
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), 200))
        rows = ds.map_batches(read_files, batch_size=1).take_all()
        rows.sort(key=lambda r: (r["order"], r["seq"]))
        decoded = [pickle.loads(r["blob"]) for r in rows]
        problems = reader.problems + [d for d in decoded if isinstance(d, Problem)]
        if strict and problems:
            raise SourceError(f"{problems[0]}; fix the file or run without --strict to skip it")
        articles, origins, replaced = keep_last(d for d in decoded if not isinstance(d, Problem))
        if not articles:
            raise no_articles(paths, problems)
        read_ok = {r["order"] for r, d in zip(rows, decoded) if not isinstance(d, Problem)}
        return Corpus(articles, problems + replaced, len(read_ok), origins)

    def chunk(self, articles: Sequence[Article]) -> dict[str, list[Passage]]:
        """Articles go to a pool of chunking actors, each holding the model's tokenizer."""
        if not articles:
            return {}
        if self.on_progress:
            self.on_progress("chunking", 0, len(articles))
        items = [{"row": i, "blob": pickle.dumps(a)} for i, a in enumerate(articles)]
        ds = self._dataset(items, 64).map_batches(
            ChunkArticles, batch_size=64, compute=self._actors(), num_cpus=1,
            fn_constructor_kwargs={**self._model(), "options": chunk_options(self.settings)})
        out: dict[str, list[Passage]] = {}
        for row in ds.take_all():
            out[articles[row["row"]].id] = pickle.loads(row["blob"])
        return out

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Uncached texts go to a pool of embedding actors; each returned block is checkpointed in the cache."""
        out, todo = from_cache(texts, self.embedder, self.cache)
        rows_of = distinct(texts, todo)
        unique = list(rows_of)
        if not unique:
            return out, 0
        items = [{"row": i, "text": t} for i, t in enumerate(unique)]
        ds = self._dataset(items, self.settings.checkpoint_passages).map_batches(
            EmbedPassages, batch_size=self.settings.batch_size * 4, compute=self._actors(), num_cpus=1,
            fn_constructor_kwargs={**self._model(),
                                   "batch_size": self.settings.batch_size, "backend": self.embedder.backend,
                                   "kind": self.embedder.kind,
                                   "openvino_precision": self.embedder.openvino_precision})
        done = 0
        with tqdm(total=len(unique), desc="embedding (ray)", unit=" passages", disable=not self.progress) as bar:
            for batch in ds.iter_batches(batch_size=self.settings.checkpoint_passages, batch_format="numpy"):
                chunk = [unique[int(r)] for r in batch["row"]]
                vectors = np.asarray(batch["vector"], dtype=np.float32)
                place_block(out, rows_of, chunk, vectors, self.cache, self.embedder.key)
                done += len(chunk)
                bar.update(len(chunk))
                if self.on_progress:
                    self.on_progress("embedding", done, len(unique))
        return out, len(unique)
