"""What an index version looks like in Milvus: collection names, the two schemas (passages with dense and
BM25 fields, articles with their metadata and a BM25 field), index parameters and filter expressions. Pure.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from pymilvus import DataType, Function, FunctionType, MilvusClient

from indexer.errors import ConfigError
from indexer.records import Article, Passage
from indexer.storage.words import analyzed

MAX_VARCHAR = 65_535  # bytes: Milvus' limit for one VARCHAR value
BODY_PARTS = 64  # an article body is stored in up to this many VARCHAR parts (4 MB)
PASSAGES, ARTICLES, MARKER = "p", "a", "v"  # suffixes of a lineage's two data collections and a version's marker
LAYOUT = 2  # manifest["milvus"]["layout"]: 2 = versions as row intervals [born, died) in shared collections
ALIVE = 2**62  # `died` of a row no version has replaced yet
COLUMNS = ("title", "lead")  # an article's keyword columns weighted apart from its body (KeywordWeights)
ARTICLE_SPARSE = ("sparse", "title_sparse", "lead_sparse")  # BM25 fields of the article collection
SERVING = "serving"  # suffix of the alias that names the published version's passage collection
MANIFEST_KEY = "newsearch.manifest"  # collection property holding the manifest: set last, it marks a version complete
# Text reaches Milvus' BM25 function already stemmed (`analyzed`), so its analyzer only splits and lower-cases:
# Milvus Lite 3.2.2 accepts a `stemmer` filter but ignores it, and stemming here makes Lite and a cluster match the
# same words (indexer.storage.words: Porter stems, no stop-word filter, as the local store's tantivy and FTS5).
ANALYZER = {"tokenizer": "standard", "filter": ["lowercase"]}
# SQLite FTS5's BM25 parameters (the local store's); Milvus Lite's default k1 is 1.5.
BM25_PARAMS = {"bm25_k1": 1.2, "bm25_b": 0.75}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,100}")
EPOCH = datetime(1970, 1, 1)


def check_prefix(prefix: str) -> str:
    """The collection-name prefix, or ConfigError: Milvus names are letters, digits and underscores."""
    if not _NAME.fullmatch(prefix):
        raise ConfigError(f"NEWSEARCH_MILVUS_COLLECTION must be letters, digits and underscores (not starting with "
                          f"a digit, at most 100), not {prefix!r}")
    return prefix


def collection_name(prefix: str, version: str, kind: str) -> str:
    """The passages (kind PASSAGES) or articles (ARTICLES) of a lineage, or a version's marker (MARKER)."""
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', version)}_{kind}"


def alias_name(prefix: str) -> str:
    """The alias serving readers: it names the published version's marker collection."""
    return f"{prefix}_{SERVING}"


def micros(value: datetime | None) -> int | None:
    """Microseconds since 1970 of a naive-UTC (or aware) datetime, as `published` is stored; None stays None."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int | None) -> datetime | None:
    """The naive-UTC datetime of a stored `published`."""
    if value is None:
        return None
    return EPOCH + timedelta(microseconds=int(value))


def filter_expr(since: datetime | None, before: datetime | None, sources: Sequence[str]) -> str:
    """A Milvus filter: published in [since, before), source among `sources`; "" for none. Undated rows fail a date
    bound, as in the local store."""
    clauses = []
    if since is not None:
        clauses.append(f"published >= {micros(since)}")
    if before is not None:
        clauses.append(f"published < {micros(before)}")
    if sources:
        clauses.append(f"source in {json.dumps(list(sources), ensure_ascii=False)}")
    return " and ".join(clauses)


def visible(seq: int) -> str:
    """The rows version number `seq` of a lineage sees: written at or before it, not yet replaced at it."""
    return f"born <= {int(seq)} and died > {int(seq)}"


def both(first: str, second: str) -> str:
    """Two filter expressions joined by `and` (either may be empty)."""
    return f"({first}) and ({second})" if first and second else first or second


def id_filter(field: str, values: Sequence[Any]) -> str:
    """`field in [...]` for ints or strings (strings quoted as JSON, which Milvus' grammar reads)."""
    return f"{field} in {json.dumps([v if isinstance(v, str) else int(v) for v in values], ensure_ascii=False)}"


def fit(text: str, limit: int = MAX_VARCHAR) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, on a character boundary."""
    raw = text.encode("utf-8")
    return text if len(raw) <= limit else raw[:limit].decode("utf-8", errors="ignore")


def split_body(body: str, limit: int = MAX_VARCHAR) -> list[str]:
    """`body` as VARCHAR parts of at most `limit` bytes each (joined, they give it back)."""
    parts, rest = [], body
    while rest:
        part = fit(rest, limit)
        parts.append(part)
        rest = rest[len(part):]
    return parts or [""]


def _bm25(schema, source: str, target: str) -> None:  # noqa: ANN001 (a pymilvus CollectionSchema)
    schema.add_field(target, DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name=f"{target}_bm25", function_type=FunctionType.BM25,
                                 input_field_names=[source], output_field_names=[target]))


def _versioned(schema, id_type: DataType, **id_options: Any) -> None:  # noqa: ANN001 (a CollectionSchema)
    # A row is one record as one set of versions saw it: key "<id>@<born>", seen by versions born <= v < died.
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=1100)
    schema.add_field("id", id_type, **id_options)
    schema.add_field("born", DataType.INT64)
    schema.add_field("died", DataType.INT64)
    schema.add_field("digest", DataType.VARCHAR, max_length=64)  # of the row's content: an update skips equal rows


def marker_schema():  # noqa: ANN201 (a pymilvus CollectionSchema)
    """A version's marker: no rows; its properties hold the writer, then the manifest, and the alias names it."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
    return schema


def passage_schema(dim: int):  # noqa: ANN201 (a pymilvus CollectionSchema)
    """Passages: id, their article, offsets, text, its stems for BM25, dense vector and the filter fields."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    _versioned(schema, DataType.INT64)
    schema.add_field("article_id", DataType.VARCHAR, max_length=1024)
    schema.add_field("ordinal", DataType.INT64)
    schema.add_field("start_char", DataType.INT64)
    schema.add_field("end_char", DataType.INT64)
    schema.add_field("tokens", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("terms", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True, analyzer_params=ANALYZER)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("published", DataType.INT64, nullable=True)
    schema.add_field("source", DataType.VARCHAR, max_length=1024, nullable=True)
    _bm25(schema, "terms", "sparse")
    return schema


def article_schema():  # noqa: ANN201 (a pymilvus CollectionSchema)
    """Articles: every field the local store keeps, plus a BM25 field over title, lead and body."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    _versioned(schema, DataType.VARCHAR, max_length=1024)
    schema.add_field("num", DataType.INT64)
    schema.add_field("title", DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("body", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=BODY_PARTS,
                     max_length=MAX_VARCHAR)
    schema.add_field("published", DataType.INT64, nullable=True)
    schema.add_field("source", DataType.VARCHAR, max_length=1024, nullable=True)
    schema.add_field("url", DataType.VARCHAR, max_length=8192, nullable=True)
    schema.add_field("content_hash", DataType.VARCHAR, max_length=256)
    schema.add_field("meta", DataType.VARCHAR, max_length=MAX_VARCHAR)  # JSON text, exactly as the corpus gave it
    schema.add_field("dup_group", DataType.VARCHAR, max_length=1024, nullable=True)
    # A story id is an article id, after an update perhaps with ~2, ~3... (indexer/stories.py): room for both.
    schema.add_field("story", DataType.VARCHAR, max_length=1024 + 16)
    schema.add_field("keyword", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True, enable_match=True,
                     analyzer_params=ANALYZER)
    _bm25(schema, "keyword", "sparse")
    for column in COLUMNS:  # title and lead alone, for other weights than those written into `keyword`
        schema.add_field(f"{column}_terms", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True,
                         analyzer_params=ANALYZER)
        _bm25(schema, f"{column}_terms", f"{column}_sparse")
    return schema


def dense_index(n_passages: int, flat_limit: int, ef_search: int) -> dict[str, Any]:
    """Index of the dense field: exact below `flat_limit` passages (as the local store), else HNSW."""
    if n_passages < flat_limit:
        return {"index_type": "FLAT", "metric_type": "IP", "params": {}}
    return {"index_type": "HNSW", "metric_type": "IP", "params": {"M": 32, "efConstruction": 200},
            "search": {"ef": ef_search}}


def index_params(client: MilvusClient, sparse: Sequence[str], dense: dict[str, Any] | None = None):  # noqa: ANN201
    """Indexes of a collection (pymilvus IndexParams): its BM25 fields, and the dense field if given."""
    params = client.prepare_index_params()
    for field in sparse:
        params.add_index(field_name=field, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS)
    if dense is not None:
        params.add_index(field_name="dense", index_type=dense["index_type"], metric_type=dense["metric_type"],
                         params=dense["params"])
    return params


def article_row(article: Article, num: int, dup_group: str | None, title: str, lead: str,
                repeats: dict[str, int], story: str | None = None) -> dict[str, Any]:
    """One article as a row of the article collection; `title` is "" when titles are not keyword-indexed."""
    return {"id": article.id, "num": num, "title": fit(article.title), "body": split_body(article.body),
            "published": micros(article.published), "source": article.source, "url": article.url,
            "content_hash": article.content_hash,
            "meta": json.dumps(article.meta, ensure_ascii=False, default=str), "dup_group": dup_group,
            "story": story or article.id,
            "keyword": fit(analyzed(keyword_text(title, lead, article.body, repeats))),
            "title_terms": fit(analyzed(title)), "lead_terms": fit(analyzed(lead))}


def passage_row(passage: Passage, vector: np.ndarray, article: Article) -> dict[str, Any]:
    """One passage as a row of the passage collection, with its article's date and source for filters."""
    return {"id": int(passage.id), "article_id": passage.article_id, "ordinal": passage.ordinal,
            "start_char": passage.start, "end_char": passage.end, "tokens": passage.tokens, "text": fit(passage.text),
            "terms": fit(analyzed(passage.text)),
            "dense": np.asarray(vector, dtype=np.float32).tolist(), "published": micros(article.published),
            "source": article.source}


def row_digest(row: dict[str, Any]) -> str:
    """A hash of a row's content: every field but its version fields and article number, the vector as float32."""
    plain = {k: v for k, v in row.items() if k not in ("key", "born", "died", "digest", "num", "dense")}
    h = hashlib.sha256(json.dumps(plain, sort_keys=True, ensure_ascii=False, default=str).encode())
    if "dense" in row:
        h.update(np.asarray(row["dense"], dtype=np.float32).tobytes())
    return h.hexdigest()[:32]


def versioned(row: dict[str, Any], seq: int) -> dict[str, Any]:
    """A row as version `seq` writes it: its key, born at `seq`, alive, with its content's digest."""
    return {**row, "key": f"{row['id']}@{seq}", "born": seq, "died": ALIVE, "digest": row_digest(row)}


def keyword_text(title: str, lead: str, body: str, weights: dict[str, int]) -> str:
    """An article's BM25 text: title and lead repeated by their (whole) weights, then the body. Milvus scores one
    field, so the local store's per-column weights become repetitions (docs/milvus.md)."""
    return "\n".join([title] * weights["title"] + [lead] * weights["lead"] + [body])
