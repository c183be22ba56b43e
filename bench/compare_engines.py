"""Runs one competitor engine (txtai, Chroma or LanceDB) for the side-by-side benchmark, inside
var/compare-venv: `index` embeds and stores the passages file, `query` reopens the stored index and
answers every dev query. Imports nothing of newsearch; data comes and goes through files.

Run by bench/compare.py: `var/compare-venv/bin/python bench/compare_engines.py index|query --engine NAME ...`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

ADD_BATCH = 1000  # passages handed to Chroma's and LanceDB's add() at a time, as a loader streaming a file would
WARMUP = 10  # queries run before timing starts (first-call allocations, lazy loads)
PAGE = 10  # hits of a results page, for the latency a user sees


def read_jsonl(path: Path) -> list[dict]:
    """Every JSON line of a file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def batches(rows: list[dict], size: int) -> Iterator[list[dict]]:
    """Consecutive slices of `rows`."""
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


class Txtai:
    """txtai Embeddings with its Faiss backend and content storage, all defaults otherwise."""

    def __init__(self, model: str, folder: Path):
        self.model, self.folder = model, folder

    def index(self, passages: list[dict]) -> dict:
        from txtai import Embeddings

        embeddings = Embeddings(path=self.model, backend="faiss", content=True)
        embeddings.index({"id": p["id"], "text": p["text"], "article_id": p["article_id"]} for p in passages)
        embeddings.save(str(self.folder))
        faiss = embeddings.config.get("build", {}).get("settings", {})
        return {"config": {k: v for k, v in embeddings.config.items() if k in ("path", "backend", "content", "method")},
                "faiss": faiss, "count": embeddings.count()}

    def open(self) -> None:
        from txtai import Embeddings

        self.embeddings = Embeddings()
        self.embeddings.load(str(self.folder))

    def search(self, query: str, depth: int) -> list[str]:
        rows = self.embeddings.search(f"select article_id, score from txtai where similar(:q) limit {depth}",
                                      parameters={"q": query})
        return [r["article_id"] for r in rows]


class Chroma:
    """A Chroma PersistentClient collection (cosine HNSW) with Chroma's sentence-transformers embedding function."""

    def __init__(self, model: str, folder: Path):
        self.model, self.folder = model, folder

    def client_and_function(self):  # noqa: ANN201 - chromadb is imported lazily
        import chromadb
        from chromadb.config import Settings
        from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction

        client = chromadb.PersistentClient(path=str(self.folder), settings=Settings(anonymized_telemetry=False))
        return client, SentenceTransformerEmbeddingFunction(model_name=self.model, device="cpu",
                                                            normalize_embeddings=True)

    def index(self, passages: list[dict]) -> dict:
        client, function = self.client_and_function()
        collection = client.create_collection("passages", embedding_function=function,
                                              configuration={"hnsw": {"space": "cosine"}})
        for chunk in batches(passages, ADD_BATCH):
            collection.add(ids=[p["id"] for p in chunk], documents=[p["text"] for p in chunk],
                           metadatas=[{"article_id": p["article_id"]} for p in chunk])
        return {"count": collection.count(), "configuration": str(collection.configuration_json)}

    def open(self) -> None:
        client, function = self.client_and_function()
        self.client = client
        self.collection = client.get_collection("passages", embedding_function=function)

    def search(self, query: str, depth: int) -> list[str]:
        found = self.collection.query(query_texts=[query], n_results=depth, include=["metadatas", "distances"])
        return [m["article_id"] for m in found["metadatas"][0]]


class Lance:
    """A LanceDB table whose vector column is filled by its embedding registry's sentence-transformers function."""

    def __init__(self, model: str, folder: Path):
        self.model, self.folder = model, folder

    def index(self, passages: list[dict]) -> dict:
        import lancedb
        from lancedb.embeddings import get_registry
        from lancedb.pydantic import LanceModel, Vector

        function = get_registry().get("sentence-transformers").create(name=self.model, device="cpu")

        class Row(LanceModel):
            id: str
            article_id: str
            text: str = function.SourceField()
            vector: Vector(function.ndims()) = function.VectorField()

        table = lancedb.connect(str(self.folder)).create_table("passages", schema=Row)
        for chunk in batches(passages, ADD_BATCH):
            table.add([{"id": p["id"], "article_id": p["article_id"], "text": p["text"]} for p in chunk])
        return {"count": table.count_rows(), "vector_index": "none (exhaustive scan, L2 on unit vectors)"}

    def open(self) -> None:
        import lancedb

        self.table = lancedb.connect(str(self.folder)).open_table("passages")

    def search(self, query: str, depth: int) -> list[str]:
        rows = self.table.search(query).limit(depth).select(["article_id", "_distance"]).to_list()
        return [r["article_id"] for r in rows]


ENGINES = {"txtai": Txtai, "chroma": Chroma, "lancedb": Lance}
PACKAGES = {"txtai": "txtai", "chroma": "chromadb", "lancedb": "lancedb"}


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under a folder."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def peak_rss_mb() -> float:
    """This process's peak resident memory."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_index(engine, passages_path: Path) -> dict:  # noqa: ANN001
    """Embed and store every passage; the seconds of the engine's own work (imports excluded)."""
    passages = read_jsonl(passages_path)
    started = time.perf_counter()
    info = engine.index(passages)
    seconds = time.perf_counter() - started
    return {"passages": len(passages), "index_seconds": round(seconds, 2),
            "passages_per_second": round(len(passages) / seconds, 2),
            "disk_bytes": folder_bytes(engine.folder), "info": info}


def run_query(engine, queries_path: Path, depth: int) -> dict:  # noqa: ANN001
    """Reopen the stored index and answer every query: articles in order of their best passage among the
    top `depth` passages, with each query's milliseconds (query embedding and search); then every query
    again for one page of PAGE hits, timed alone."""
    queries = read_jsonl(queries_path)
    started = time.perf_counter()
    engine.open()
    open_seconds = time.perf_counter() - started
    for q in queries[:WARMUP]:
        engine.search(q["text"], depth)
    runs: dict[str, dict[str, list[str]]] = {}
    millis: dict[str, list[float]] = {}
    for q in queries:
        t0 = time.perf_counter()
        articles = list(dict.fromkeys(engine.search(q["text"], depth)))
        millis.setdefault(q["set"], []).append((time.perf_counter() - t0) * 1000)
        runs.setdefault(q["set"], {})[q["id"]] = articles
    page_ms = []
    for q in queries:  # a results page: the top 10 passages
        t0 = time.perf_counter()
        engine.search(q["text"], PAGE)
        page_ms.append((time.perf_counter() - t0) * 1000)
    return {"open_seconds": round(open_seconds, 2), "runs": runs, "query_ms": millis, "page_ms": page_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("phase", choices=["index", "query"])
    parser.add_argument("--engine", choices=list(ENGINES), required=True)
    parser.add_argument("--model", required=True, help="sentence-transformers model folder")
    parser.add_argument("--folder", type=Path, required=True, help="where the engine stores its index")
    parser.add_argument("--passages", type=Path, help="passages JSON lines (index)")
    parser.add_argument("--queries", type=Path, help="queries JSON lines (query)")
    parser.add_argument("--depth", type=int, default=100, help="passages retrieved per query")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"  # the machine is offline; the model comes from a local folder
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["ANONYMIZED_TELEMETRY"] = "False"
    import torch

    torch.set_num_threads(args.threads)
    engine = ENGINES[args.engine](args.model, args.folder)
    if args.phase == "index":
        result = run_index(engine, args.passages)
    else:
        result = run_query(engine, args.queries, args.depth)
    result.update({"engine": args.engine, "phase": args.phase, "threads": torch.get_num_threads(),
                   "version": importlib.metadata.version(PACKAGES[args.engine]), "torch": torch.__version__,
                   "peak_rss_mb": peak_rss_mb()})
    args.out.write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
