"""The `ray` batch engine: reading+cleaning, chunking and embedding run as Ray Data pipelines
(files -> read tasks; articles -> chunking actors; passages -> embedding actors, the batch
inference pattern of `map_batches` with a callable class). The driver keeps what needs the whole
corpus (one record per id, near-duplicates, the version). With a Milvus server the embedding actors
also write the passage rows themselves (`embed_and_write`), else vectors come back to the driver.
Needs the optional extra: `pip install 'newsearch[ray]'`.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from indexer import errors
from indexer.cache import EmbeddingCache, cache_path
from indexer.chunk import chunk_article
from indexer.embed import Embedder
from indexer.engines import EngineBase
from indexer.errors import ConfigError, NewsearchError, SourceError, StorageError
from indexer.records import Article, Passage
from indexer.sources import CorpusReader, Problem
from indexer.steps import (
    Corpus,
    chunk_options,
    clean_or_report,
    distinct,
    embed_all,
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


@dataclass
class ArticleJob:
    """One article's part of an embed_and_write job: its passages, what the model reads for each, the base
    version's digest of each (None: new) and whether its vector is carried over (the text is the base's)."""

    row: int  # the article's place in the job's list, for its vector sum
    article: Article  # body left out: a passage row needs only its date and source
    passages: list[Passage]
    texts: list[str]
    old_digests: list[str | None]
    carry: list[bool]


@dataclass
class Written:
    """What the actors of embed_and_write report: per-article sums of passage vectors, the passage ids written,
    the actors' processes, and the passages embedded and carried over."""

    sums: np.ndarray
    ids: set[int] = field(default_factory=set)
    writers: set[int] = field(default_factory=set)
    embedded: int = 0
    carried: int = 0


class EmbedAndWrite(EmbedPassages):
    """Ray actor: embeds whole articles' passages (through the embedding cache, which it opens itself),
    inserts the rows that differ from the base version's into Milvus with its own client, and returns only
    each article's vector sum and the ids written."""

    def __init__(self, job: dict[str, Any], cache: str | None, **model: Any):
        from indexer.storage.milvus_ray import PassageRows

        super().__init__(**model)
        self.cache_file = cache
        self.rows = PassageRows(job)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        e = self.embedder
        # SQLite in WAL mode: the driver and every actor of a machine may share the file (docs/scaling.md). Opened
        # per batch: Ray Data may call an actor from another thread each time, and a connection stays in its own.
        self.cache = EmbeddingCache(Path(self.cache_file), e.dim, e.key, e.fingerprint) if self.cache_file else None
        try:
            return self._write([pickle.loads(blob) for blob in batch["blob"]])
        finally:
            if self.cache is not None:
                self.cache.close()

    def _write(self, jobs: list[ArticleJob]) -> dict[str, Any]:
        texts = [t for j in jobs for t in j.texts]
        carry = [i for i, c in enumerate(c for j in jobs for c in j.carry) if c]
        vectors = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        if carry:
            vectors[carry] = self._carried([p.id for j in jobs for p in j.passages], texts, carry)
        fresh = sorted(set(range(len(texts))) - set(carry))
        embedded = 0
        if fresh:
            vectors[fresh], embedded = embed_all([texts[i] for i in fresh], self.embedder, self.cache, progress=False)
        items = [(p, j.article, old) for j in jobs for p, old in zip(j.passages, j.old_digests)]
        written = set(self.rows.insert(items, vectors))
        owners = np.repeat(np.arange(len(jobs)), [len(j.passages) for j in jobs])
        sums = np.zeros((len(jobs), self.embedder.dim), dtype=np.float32)
        np.add.at(sums, owners, vectors)  # in passage order, as dedup.article_vectors adds them on the driver
        first = [i == 0 for i in range(len(jobs))]  # the batch's counts ride on its first row
        return {"row": np.array([j.row for j in jobs], dtype=np.int64), "sum": sums,
                "written": [pickle.dumps([p.id for p in j.passages if p.id in written]) for j in jobs],
                "embedded": np.array([embedded * f for f in first], dtype=np.int64),
                "carried": np.array([len(carry) * f for f in first], dtype=np.int64),
                "pid": np.full(len(jobs), os.getpid(), dtype=np.int64)}

    def _carried(self, ids: list[int], texts: list[str], rows: list[int]) -> np.ndarray:
        """Vectors of unchanged passages: from the embedding cache, else the base version (as update.carried_vectors)."""
        vectors, missing = from_cache([texts[i] for i in rows], self.embedder, self.cache)
        if missing:
            base = self.rows.base_vectors([ids[rows[i]] for i in missing])
            vectors[missing] = [base[ids[rows[i]]] for i in missing]
        return vectors


def batch_bytes(batch: dict[str, np.ndarray]) -> int:
    """The bytes of a batch's columns (of their items for columns of Python objects, such as pickles)."""
    return sum(sum(len(x) for x in v) if v.dtype == object else v.nbytes for v in map(np.asarray, batch.values()))


def worker_error(exc: BaseException) -> NewsearchError:
    """The newsearch error a Ray worker raised (Ray passes it on as text in the traceback it wraps it in), else a
    StorageError naming the exception."""
    lines = [line.strip() for line in str(exc).splitlines()]
    for line in reversed(lines):
        name, sep, message = line.partition(": ")
        kind = getattr(errors, name.removeprefix("indexer.errors."), None) if sep else None
        if name.startswith("indexer.errors.") and isinstance(kind, type) and issubclass(kind, NewsearchError):
            return kind(message)
    last = next((line for line in reversed(lines) if "Error: " in line or "Exception: " in line), type(exc).__name__)
    return StorageError(f"a Ray worker failed writing passage rows ({last}); nothing was published: fix the cause "
                        "and run the job again")


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

    def _embedding(self) -> dict[str, Any]:
        """EmbedPassages' constructor arguments: the job's model, batch size, backend and precision."""
        return {**self._model(), "batch_size": self.settings.batch_size, "backend": self.embedder.backend,
                "kind": self.embedder.kind, "openvino_precision": self.embedder.openvino_precision}

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
            fn_constructor_kwargs=self._embedding())
        done = 0
        with tqdm(total=len(unique), desc="embedding (ray)", unit=" passages", disable=not self.progress) as bar:
            for batch in ds.iter_batches(batch_size=self.settings.checkpoint_passages, batch_format="numpy"):
                chunk = [unique[int(r)] for r in batch["row"]]
                vectors = np.asarray(batch["vector"], dtype=np.float32)
                place_block(out, rows_of, chunk, vectors, self.cache, self.embedder.key)
                self.received_bytes += batch_bytes(batch)
                done += len(chunk)
                bar.update(len(chunk))
                if self.on_progress:
                    self.on_progress("embedding", done, len(unique))
        return out, len(unique)

    def embed_and_write(self, jobs: list[ArticleJob], target: dict[str, Any]) -> Written:
        """Whole articles go to a pool of actors that embed their passages and insert the rows into the Milvus
        collection `target` names (MilvusWriter.worker_job); vectors stay on the workers but for one sum per article."""
        import ray

        out = Written(np.zeros((len(jobs), self.embedder.dim), dtype=np.float32))
        if not any(j.passages for j in jobs):
            return out
        total = sum(len(j.texts) for j in jobs)
        per_call = max(1, round(self.settings.checkpoint_passages * len(jobs) / max(1, total)))  # articles per call
        # Longest texts first, as embed_all orders a job's passages: a batch of like lengths pads little.
        ordered = sorted((j for j in jobs if j.passages), key=lambda j: max(map(len, j.texts)), reverse=True)
        items = [{"blob": pickle.dumps(j)} for j in ordered]
        path = cache_path(self.settings)
        ds = self._dataset(items, per_call).map_batches(
            EmbedAndWrite, batch_size=per_call, compute=self._actors(), num_cpus=1,
            fn_constructor_kwargs={"job": target, "cache": str(path) if path else None, **self._embedding()})
        with tqdm(total=total, desc="embedding+writing (ray)", unit=" passages", disable=not self.progress) as bar:
            try:
                self._collect(ds.iter_batches(batch_size=per_call, batch_format="numpy"), jobs, out, bar)
            except ray.exceptions.RayError as exc:
                raise worker_error(exc) from None
        return out

    def _collect(self, batches: Iterable[dict[str, np.ndarray]], jobs: list[ArticleJob], out: Written,
                 bar: tqdm) -> None:
        """Add up what embed_and_write's actors return, batch by batch."""
        done, total = 0, sum(len(j.texts) for j in jobs)
        for batch in batches:
            out.sums[batch["row"]] = batch["sum"]
            for blob in batch["written"]:
                out.ids.update(pickle.loads(blob))
            out.writers.update(batch["pid"].tolist())
            out.embedded += int(batch["embedded"].sum())
            out.carried += int(batch["carried"].sum())
            self.received_bytes += batch_bytes(batch)
            done += sum(len(jobs[r].texts) for r in batch["row"])
            bar.update(done - bar.n)
            if self.on_progress:
                self.on_progress("embedding", done, total)
