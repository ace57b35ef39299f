"""SmartStore: the LanceDB table holding pooled vectors and token states, and all its I/O.

One row per item: ``id`` (unique), ``ref_id`` (source document), ``text``, ``image``
(a URI/path or null), ``modality``, ``metadata`` (LanceDB JSON, filterable through
:mod:`smart_retrievers.filters`), ``vector`` (pooled, float32) and ``tokens`` (a list of
float16 token states). The encoder fingerprint lives in the schema metadata; the known
metadata fields and their types live in the ``metadata`` field's metadata.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from .codec import DEFAULT_COMPRESSION, TokenCodec, parse_preset
from .encoding import Encoding
from .filters import SqlTarget, parse_filter, to_sql
from .layout import NATIVE, TableLayout, physical_columns, struct_field_types, to_logical
from .options import DEFAULT_READ_CONSISTENCY
from .progress import progress_on
from .scoring import PackedTokens
from .validation import check_metadata_value, id_list, json_default, short_repr

logger = logging.getLogger(__name__)

FINGERPRINT_KEY = "smart_retrievers.fingerprint"
CODEC_KEY = "smart_retrievers.codec"
"""Schema metadata key of a coded table's codec reference (:func:`save_codec`; older tables: the codec inline)."""
CODEC_TABLE_SUFFIX = "__smart_codecs"
"""The codecs of table ``T`` live in table ``T__smart_codecs`` beside it, one row per codec, keyed by hash."""
FIELDS_KEY = "smart_retrievers.fields"
WEIGHTS_KEY = "smart_retrievers.weights"
"""Field metadata of ``vector``: the default fusion weights saved by ``SmartIndex.calibrate(save=True)``."""
META_COLUMNS = ["id", "ref_id", "text", "image", "modality", "metadata"]
FieldTypes = dict[str, str]
T = TypeVar("T")


class FingerprintMismatchError(ValueError):
    """The table was built by a different encoder than the one opening it."""


class DuplicateIdError(ValueError):
    """An append (``upsert=False``) met an id the table already holds."""


class UpgradedTableError(ValueError):
    """A write that only a table written by smart-retrievers takes, asked of a table upgraded in place."""


@dataclass
class Record:
    """One stored item: what the user gave plus its encodings."""

    id: str
    text: str
    encoding: Encoding
    ref_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    image: str | None = None


ORDER_KEY = "smart_retrievers:key_order"
"""Internal key of a stored metadata JSON holding the user's key order.

LanceDB stores JSON as JSONB, which sorts object keys. LlamaIndex hashes ``str(metadata)``
(``node.hash``) and fusion (``QueryFusionRetriever``) matches nodes by hash, so the order the
user gave is recorded here when it is not already sorted, and restored on read
(:func:`restore_key_order`). The ``:`` keeps it out of the filterable field names."""


def _key_order(value: Any) -> Any:
    """``[keys, {child: order}]`` for a dict whose keys (or a nested dict's) are not sorted, else None."""
    if not isinstance(value, Mapping):
        return None
    keys = list(value)
    children = {k: order for k, v in value.items() if (order := _key_order(v)) is not None}
    if not children and keys == sorted(keys):
        return None
    return [keys, children] if children else [keys]


def with_key_order(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """``metadata`` plus :data:`ORDER_KEY` when JSONB would reorder its keys (what a row stores)."""
    order = _key_order(metadata)
    return metadata if order is None else {**metadata, ORDER_KEY: order}


def restore_key_order(metadata: dict[str, Any]) -> dict[str, Any]:
    """A stored metadata dict in the user's key order (:data:`ORDER_KEY` removed)."""
    order = metadata.pop(ORDER_KEY, None)
    return metadata if order is None else _reorder(metadata, order)


def _reorder(value: Any, order: Any) -> Any:
    if not isinstance(value, dict) or not isinstance(order, list) or not order:
        return value
    keys, children = order[0], (order[1] if len(order) > 1 else {})
    out = {k: value[k] for k in keys if k in value}
    out.update((k, v) for k, v in value.items() if k not in out)
    for key, child in children.items():
        if key in out:
            out[key] = _reorder(out[key], child)
    return out


def _json_type(value: Any) -> str:
    check_metadata_value(value, "metadata value")  # int64 range, NaN/inf, JSON types and depth, nested too
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"metadata value {value!r} is not a finite number")
        return "float"
    if isinstance(value, (str, date)):  # date / datetime: stored as ISO 8601 strings
        return "str"
    if isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, (dict, list, tuple)):
                raise ValueError("metadata lists may hold only scalars")
        return "list"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "dict"
    raise ValueError(f"metadata value {value!r} of type {type(value).__name__} is not JSON-serialisable")


def merge_field_types(known: Mapping[str, str], metadatas: Sequence[Mapping[str, Any]]) -> FieldTypes:
    """Union of metadata field types; int and float merge to float, other clashes raise."""
    merged = dict(known)
    for meta in metadatas:
        for key, value in meta.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"metadata keys must be non-empty strings, got {key!r}")
            _widen(merged, key, _json_type(value), f"value {value!r}")
    return merged


def widen_field_types(known: Mapping[str, str], types: Mapping[str, str]) -> FieldTypes:
    """``known`` widened to cover the field types ``types`` (same rules as :func:`merge_field_types`)."""
    merged = dict(known)
    for key, new in types.items():
        _widen(merged, key, new, "values")
    return merged


def _widen(merged: FieldTypes, key: str, new: str, shown: str) -> None:
    old = merged.get(key)
    if new == "null" or old == new:
        merged.setdefault(key, new)
    elif old in (None, "null"):
        merged[key] = new
    elif {old, new} == {"int", "float"}:
        merged[key] = "float"
    else:
        raise ValueError(f"metadata field {key!r} holds {old} values, got {new} {shown}")


def describe_mismatch(stored: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    diffs = [
        f"{k}: table={stored.get(k)!r} encoder={current.get(k)!r}"
        for k in sorted(set(stored) | set(current))
        # a key the stored fingerprint lacks was not recorded by the version that wrote it (max_length...)
        if k in stored and stored.get(k) != current.get(k) and k != "model"
    ]
    return "; ".join(diffs)


def vectors_block(column: pa.Array | pa.ChunkedArray) -> torch.Tensor:
    """A ``vector`` column as a float32 tensor (N, d)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False)
    return torch.from_numpy(values.reshape(len(column), column.type.list_size).astype(np.float32))


def tokens_type(token_dim: int, codec: TokenCodec | None = None) -> pa.DataType:
    """The ``tokens`` column type: float16 states, or a codec's packed uint8 codes."""
    if codec is None:
        return pa.list_(pa.list_(pa.float16(), token_dim))
    return pa.list_(pa.list_(pa.uint8(), codec.bytes_per_token))


def tokens_to_arrow(tokens: Sequence[np.ndarray], token_dim: int, codec: TokenCodec | None = None) -> pa.ListArray:
    """Ragged (n_i, token_dim) token states as a ``tokens`` column, coded (and pooled) by ``codec`` if given.

    With a codec, items may also come already coded by it (:func:`is_coded`: uint8, one
    row of ``codec.bytes_per_token`` per kept token, e.g. from distributed workers); they
    are stored as they are.
    """
    if codec is not None and tokens and all(is_coded(t, codec) for t in tokens):
        flat = np.concatenate(tokens)
        offsets = np.concatenate([[0], np.cumsum([len(t) for t in tokens])])
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), codec.bytes_per_token)
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), vectors)
    bad = next((t.shape for t in tokens if t.ndim != 2 or t.shape[1] != token_dim), None)
    if bad is not None:
        raise ValueError(f"token states of shape {bad} do not fit token_dim {token_dim}")
    if codec is None:
        packed = PackedTokens.from_list(tokens)
        flat, offsets = np.asarray(packed.values, dtype=np.float16), packed.offsets
    else:
        if any(len(t) == 0 for t in tokens):
            raise ValueError("every item needs at least one token state")
        flat, lengths = codec.encode_docs(tokens)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), vectors)


def is_coded(tokens: np.ndarray, codec: TokenCodec) -> bool:
    """Whether ``tokens`` are ``codec``'s packed codes (uint8, ``bytes_per_token`` wide) rather than states."""
    return (
        tokens.dtype == np.uint8 and tokens.ndim == 2 and tokens.shape[1] == codec.bytes_per_token and len(tokens) > 0
    )


def tokens_from_arrow(column: pa.Array | pa.ChunkedArray) -> PackedTokens:
    """A ``tokens`` column as :class:`~smart_retrievers.scoring.PackedTokens`: float16 states or uint8 codes."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    dim = column.type.value_type.list_size
    offsets = column.offsets.to_numpy().astype(np.int64)
    values = column.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return PackedTokens(values=torch.from_numpy(values.copy()), offsets=offsets - offsets[0])


def stream_into(
    schema: pa.Schema,
    items: Iterator[T],
    convert: Callable[[T], Iterable[pa.RecordBatch]],
    commit: Callable[[pa.RecordBatchReader], Any],
    *,
    before_commit: Callable[[], Any] | None = None,
) -> None:
    """Run ``commit`` on the record batches of ``items``, producing them here while it writes in a thread.

    ``commit`` (a LanceDB ``add`` or ``merge_insert().execute``) is one transaction over the
    whole stream. ``items`` are produced in the calling thread (where encoding happens, with
    its progress bar and Ctrl-C) and handed through a queue of one to the writer thread,
    which ``convert``s each to Arrow (token coding) and writes it: batch n is coded and
    written while batch n+1 encodes, and memory stays bounded. If producing or converting
    fails, the stream is aborted before the commit and that exception is raised; if the
    commit fails, its exception is raised. ``before_commit`` runs here once ``items`` is
    exhausted, before the writer is told the stream has ended (so before the commit).
    """
    handover: queue.Queue[Any] = queue.Queue(maxsize=1)  # at most ~3 batches in memory: produced, queued, written
    done = object()
    aborted = threading.Event()
    failure: list[BaseException] = []

    def stream() -> Iterator[pa.RecordBatch]:
        while True:
            try:
                item = handover.get(timeout=0.05)
            except queue.Empty:
                if aborted.is_set():
                    raise _StreamAborted("the write was aborted before its commit") from None
                continue
            if item is done:
                return
            try:
                batches = list(convert(item))
            except BaseException as exc:
                failure.append(exc)  # the real error, not LanceDB's wrapper of it
                raise
            yield from batches

    def write() -> None:
        try:
            commit(pa.RecordBatchReader.from_batches(schema, stream()))
        except BaseException as exc:
            failure.append(exc)

    writer = threading.Thread(target=write, name="smart-retrievers-writer", daemon=True)
    writer.start()
    try:
        for item in itertools.chain(items, [done]):
            if item is done and before_commit is not None and writer.is_alive():
                before_commit()
            while writer.is_alive():
                try:
                    handover.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if not writer.is_alive():
                break
    except BaseException:
        aborted.set()
        writer.join()
        raise
    writer.join()
    if failure:
        raise failure[0]


def _first_repeat(ids: Sequence[str], seen: set[str]) -> str | None:
    """Add ``ids`` to ``seen``; the first one that was already there (or repeats in ``ids``)."""
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return None


class _StreamAborted(RuntimeError):
    """Raised into LanceDB's reader so that it abandons the write."""


def _check_local_uri(uri: str) -> None:
    """Refuse a local ``uri`` that is (or lies under) a regular file: LanceDB needs a directory there."""
    if "://" in uri:
        return
    path = Path(uri).expanduser()
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "is" if candidate == path else f"lies under {str(candidate)!r}, which is"
                raise NotADirectoryError(
                    f"uri {uri!r} {where} a regular file; a SmartIndex/SmartStore uri is a directory "
                    "(created if missing) or an s3:// / gs:// / az:// / db:// URI"
                )
            return


def schema_field_types(schema: pa.Schema, layout: TableLayout) -> FieldTypes:
    """A table's filterable metadata fields and their types: the field map a native table records, or an
    upgraded table's struct children."""
    if not layout.native:
        if layout.metadata is None:
            return {}
        return struct_field_types(schema.field(layout.metadata).type, layout.hidden_keys)
    raw = (schema.field("metadata").metadata or {}).get(FIELDS_KEY.encode())
    return json.loads(raw) if raw else {}


# ---- codecs: stored once, beside the table -------------------------------------------

_CODEC_SCHEMA = pa.schema([pa.field("sha256", pa.string(), nullable=False), pa.field("codec", pa.binary())])
_LOADED_CODECS: dict[str, TokenCodec] = {}


def save_codec(db: Any, table: str, codec: TokenCodec) -> str:
    """Store ``codec`` in ``table``'s codec table (once per content) and return its reference.

    A codec is a few MB of matrices. In the schema metadata it would be copied into the
    manifest of every commit (2 MB per ``add``, kept until old versions are cleaned up), so the
    schema holds only this small reference (hash, preset) and the codec itself is one row of
    ``{table}__smart_codecs``, written once (looked up by hash first).
    """
    raw = codec.to_json().encode()
    digest = hashlib.sha256(raw).hexdigest()
    side = db.create_table(table + CODEC_TABLE_SUFFIX, schema=_CODEC_SCHEMA, exist_ok=True)
    if side.count_rows(f"sha256 = '{digest}'") == 0:
        row = pa.table({"sha256": [digest], "codec": [raw]}, schema=_CODEC_SCHEMA)
        side.add(row)  # a concurrent writer of the same codec may add the same row: identical, harmless
    _LOADED_CODECS[digest] = codec
    return json.dumps({"sha256": digest, "preset": codec.preset, "table": table + CODEC_TABLE_SUFFIX})


def load_codec(db: Any, raw: str | bytes | None) -> TokenCodec | None:
    """The codec a table's :data:`CODEC_KEY` value names (None: float16 states); older tables hold it inline."""
    if not raw:
        return None
    data = json.loads(raw)
    if "sha256" not in data:
        return TokenCodec.from_json(raw)
    digest = data["sha256"]
    if digest not in _LOADED_CODECS:
        if data["table"] not in db.table_names():
            raise FileNotFoundError(f"the codec table {data['table']!r} the table's token codes need is missing")
        found = db.open_table(data["table"]).search().where(f"sha256 = '{digest}'").select(["codec"]).to_arrow()
        blob = found.column("codec")[0].as_py() if len(found) else None
        if blob is None or hashlib.sha256(blob).hexdigest() != digest:
            raise FileNotFoundError(f"codec {digest[:12]} is missing or damaged in table {data['table']!r}")
        _LOADED_CODECS[digest] = TokenCodec.from_json(blob)
    return _LOADED_CODECS[digest]


# ---- the pooled ANN index (see SmartStore.optimize; defaults measured in benchmarks/scale.py) ----

ANN_INDEX_TYPES: tuple[str, ...] = (
    "IVF_FLAT",
    "IVF_SQ",
    "IVF_PQ",
    "IVF_RQ",
    "IVF_HNSW_SQ",
    "IVF_HNSW_PQ",
    "IVF_HNSW_FLAT",
)
"""LanceDB vector index types :meth:`SmartStore.optimize` can build on ``vector``."""
DEFAULT_ANN_INDEX = "IVF_FLAT"
"""The index type built by default: at 100k rows it trains in about 10 s against 140-180 s for IVF_SQ,
IVF_PQ and IVF_HNSW_SQ on 2 cores, and holds >= 0.998 of the flat top-100 (benchmarks/scale.py)."""
DEFAULT_ANN_MIN_ROWS = 10_000
"""Rows from which ``optimize()`` builds the ANN index by default (measured: from 10k rows it halves the
pooled search time; below, a flat scan takes tens of milliseconds and the index would add disk and work)."""
DEFAULT_NPROBES: int | None = 100
"""IVF partitions probed per query, at least (measured: 100 keeps 0.995 of the flat top-100 at 1M rows,
where LanceDB's default of 20 keeps 0.988; 113 vs 107 ms per pooled search)."""
DEFAULT_REFINE_FACTOR: int | None = None
"""Index hits re-ranked by exact cosine, as a multiple of the rows asked for (None/0: no refinement)."""
DEFAULT_EF: int | None = None
"""HNSW search list size (None: LanceDB's default); never below the rows asked for."""

_INDEX_TYPE_NAMES = {
    "IvfFlat": "IVF_FLAT",
    "IvfSq": "IVF_SQ",
    "IvfPq": "IVF_PQ",
    "IvfRq": "IVF_RQ",
    "IvfHnswSq": "IVF_HNSW_SQ",
    "IvfHnswPq": "IVF_HNSW_PQ",
    "IvfHnswFlat": "IVF_HNSW_FLAT",
}


def _ann_config(index_type: str, num_partitions: int | None) -> Any:
    """The LanceDB index config of ``index_type`` with cosine distance."""
    from lancedb import index as lance_index

    config_class = {
        "IVF_FLAT": lance_index.IvfFlat,
        "IVF_SQ": lance_index.IvfSq,
        "IVF_PQ": lance_index.IvfPq,
        "IVF_RQ": lance_index.IvfRq,
        "IVF_HNSW_SQ": lance_index.IvfHnswSq,
        "IVF_HNSW_PQ": lance_index.IvfHnswPq,
        "IVF_HNSW_FLAT": lance_index.IvfHnswFlat,
    }[index_type]
    return config_class(distance_type="cosine", num_partitions=num_partitions)


@dataclass
class OptimizeReport:
    """What :meth:`SmartStore.optimize` / :meth:`SmartIndex.optimize` did.

    Attributes:
        rows: rows in the table after the call.
        fragments_before / fragments_after: LanceDB data fragments (compaction merges small ones).
        versions_before / versions_after: table versions kept (cleanup drops those past retention).
        index_built: True when the ANN index on ``vector`` was (re)trained by this call.
        index_name / index_type: the vector index after the call (None: no index).
        indexed_rows / unindexed_rows: rows the index covers / rows still searched flat.
        index_seconds: time spent training the index (0 when not built).
        optimize_seconds: time in LanceDB's ``optimize`` (compaction, cleanup, index update).
        seconds: the whole call.
    """

    rows: int = 0
    fragments_before: int = 0
    fragments_after: int = 0
    versions_before: int = 0
    versions_after: int = 0
    index_built: bool = False
    index_name: str | None = None
    index_type: str | None = None
    indexed_rows: int = 0
    unindexed_rows: int = 0
    index_seconds: float = 0.0
    optimize_seconds: float = 0.0
    seconds: float = 0.0


class SmartStore:
    """LanceDB table I/O for SMART rows.

    Args:
        uri: a local directory (embedded LanceDB), an object-store URI
            (``s3://``, ``gs://``, ``az://``) or a LanceDB Cloud ``db://`` URI.
        table: table name.
        fingerprint: the encoder fingerprint; checked against an existing table.
        compression: the token codec preset (:mod:`smart_retrievers.codec`) of a new table;
            ``"none"`` stores float16 states. For an existing table None means "whatever it
            was built with", and any other value must match it.
        storage_options: passed to ``lancedb.connect`` (object-store credentials...).
        read_consistency_interval: how often a read looks for other writers' commits.
            The default ``timedelta(0)`` checks on every read, so every read sees every
            commit made before it (free on a local table; on object storage it costs a
            round trip per read, which a few seconds' interval saves). None never re-checks.
        **connect_kwargs: other ``lancedb.connect`` arguments (api_key, region...).
    """

    def __init__(
        self,
        uri: str,
        table: str,
        fingerprint: Mapping[str, Any],
        *,
        compression: str | None = None,
        storage_options: Mapping[str, str] | None = None,
        read_consistency_interval: timedelta | None = DEFAULT_READ_CONSISTENCY,
        **connect_kwargs: Any,
    ) -> None:
        if compression is not None and compression != "none":
            parse_preset(compression)
        self.uri = str(uri)
        _check_local_uri(self.uri)
        self.table_name = table
        import lancedb  # on first use: a text-only import of the package stays light

        self.fingerprint = dict(fingerprint)
        self.db = lancedb.connect(
            self.uri,
            storage_options=dict(storage_options) if storage_options else None,
            read_consistency_interval=read_consistency_interval,
            **connect_kwargs,
        )
        self._table = None
        self.layout: TableLayout = NATIVE
        self.codec: TokenCodec | None = None
        self._codec_ref: str | None = None  # the schema's CODEC_KEY value for self.codec
        self.compression = compression or DEFAULT_COMPRESSION
        self._requested = compression
        self._open_existing()

    def _open_existing(self) -> None:
        """Open the table if it exists (now, or since another writer created it), checking it fits."""
        if self._table is None and self.table_name in self.db.table_names():
            self._adopt(self.db.open_table(self.table_name))

    def _adopt(self, table: Any) -> None:
        """Use ``table`` (opened, or created first by another writer) with its own codec."""
        self._check_fingerprint(table)
        schema_metadata = table.schema.metadata or {}
        layout = TableLayout.from_schema(table.schema)
        if not layout.native and "tokens" not in table.schema.names:
            raise ValueError(
                f"table {self.table_name!r} at {self.uri} is being upgraded to SMART and has no token states yet; "
                "run upgrade() (smart-retrievers upgrade) again to finish it"
            )
        codec = load_codec(self.db, schema_metadata.get(CODEC_KEY.encode()))
        stored = codec.preset if codec else "none"
        if self._requested is not None and self._requested != stored:
            raise FingerprintMismatchError(
                f"table {self.table_name!r} at {self.uri} stores tokens with compression {stored!r}, not {self._requested!r}; "
                f"open it without compression= (or with {stored!r}), or convert it with recompress()"
            )
        self._table, self.codec, self.compression, self.layout = table, codec, stored, layout
        self._codec_ref = schema_metadata.get(CODEC_KEY.encode(), b"").decode() or None

    @property
    def needs_codec(self) -> bool:
        """True while the table's codec is still to be fitted (before the first write)."""
        return self.codec is None and self.compression != "none"

    def set_codec(self, codec: TokenCodec) -> None:
        """Use a fitted codec for the first write (the table must not exist yet)."""
        if self._table is not None:
            raise ValueError(f"table {self.table_name!r} exists; change its codec with recompress()")
        token_dim = self.fingerprint.get("token_dim", self.fingerprint["dim"])
        if codec.dim != token_dim or codec.preset != self.compression:
            raise ValueError(
                f"codec {codec.preset!r} for dim {codec.dim} does not fit this table ({self.compression!r}, dim {token_dim})"
            )
        self.codec, self._codec_ref = codec, None  # saved beside the table by the first write

    # ---- schema --------------------------------------------------------

    def _schema(self, field_types: FieldTypes | None = None) -> pa.Schema:
        """The table schema; ``field_types`` (the known metadata fields) go on the ``metadata`` field."""
        fields_meta = {FIELDS_KEY: json.dumps(field_types, sort_keys=True)} if field_types else None
        dim, token_dim = self.fingerprint["dim"], self.fingerprint.get("token_dim", self.fingerprint["dim"])
        return pa.schema(
            [
                pa.field("id", pa.string(), nullable=False),
                pa.field("ref_id", pa.string()),
                pa.field("text", pa.string()),
                pa.field("image", pa.string()),
                pa.field("modality", pa.string()),
                pa.field("metadata", pa.json_(pa.utf8()), metadata=fields_meta),
                pa.field("vector", pa.list_(pa.float32(), dim)),
                pa.field("tokens", tokens_type(token_dim, self.codec)),
                pa.field("n_tokens", pa.int32()),
            ],
            metadata=self._schema_metadata(self.fingerprint, self._codec_ref if self.codec is not None else None),
        )

    @staticmethod
    def _schema_metadata(fingerprint: Mapping[str, Any], codec_ref: str | None) -> dict[str, str]:
        metadata = {FINGERPRINT_KEY: json.dumps(dict(fingerprint), sort_keys=True)}
        if codec_ref is not None:
            metadata[CODEC_KEY] = codec_ref
        return metadata

    def _check_fingerprint(self, table: Any) -> None:
        raw = (table.schema.metadata or {}).get(FINGERPRINT_KEY.encode())
        if raw is None:
            raise FingerprintMismatchError(
                f"table {self.table_name!r} at {self.uri} was not written by smart-retrievers (no fingerprint)"
            )
        stored = json.loads(raw)
        if describe_mismatch(stored, self.fingerprint):
            raise FingerprintMismatchError(
                f"table {self.table_name!r} at {self.uri} was built with encoder {stored}, "
                f"but this encoder is {self.fingerprint} ({describe_mismatch(stored, self.fingerprint)}). "
                "Open it with the same model, pooling, token policy, prompt and adapter, or use another table."
            )

    @property
    def field_types(self) -> FieldTypes:
        """Known metadata fields and their JSON types."""
        return {} if self.table is None else schema_field_types(self._table.schema, self.layout)

    @property
    def fusion_weights(self) -> tuple[float, float] | None:
        """The ``(lambda_pool, lambda_late)`` saved with the table (:meth:`set_fusion_weights`), or None."""
        if self.table is None:
            return None
        raw = (self._table.schema.field(self.layout.vector).metadata or {}).get(WEIGHTS_KEY.encode())
        if not raw:
            return None
        saved = json.loads(raw)
        return float(saved["lambda_pool"]), float(saved["lambda_late"])

    def set_fusion_weights(self, lambda_pool: float, lambda_late: float, **info: Any) -> None:
        """Save default fusion weights in the table's schema (field metadata of ``vector``; a metadata-only commit).

        ``info`` (JSON values: how they were chosen) is stored beside them. The table must exist.
        """
        if self.table is None:
            raise ValueError(f"table {self.table_name!r} does not exist yet: write rows before saving weights")
        value = {"lambda_pool": float(lambda_pool), "lambda_late": float(lambda_late), **info}
        self._table.update_field_metadata({"path": self.layout.vector, "metadata": {WEIGHTS_KEY: json.dumps(value)}})

    @property
    def table(self):
        """The underlying ``lancedb`` table (None until some writer creates it)."""
        self._open_existing()
        return self._table

    # ---- writes --------------------------------------------------------

    def _to_arrow(self, records: Sequence[Record], schema: pa.Schema) -> pa.Table:
        if self.needs_codec:
            raise ValueError(f"the {self.compression!r} codec must be fitted (set_codec) before the first write")
        dim, token_dim = (
            schema.field("vector").type.list_size,
            self.fingerprint.get("token_dim", self.fingerprint["dim"]),
        )
        for r in records:
            states = r.encoding.tokens.ndim == 2 and r.encoding.tokens.shape[1] == token_dim
            if r.encoding.pooled.shape != (dim,) or not (
                states or (self.codec and is_coded(r.encoding.tokens, self.codec))
            ):
                raise ValueError(
                    f"record {r.id!r}: encoding shapes {r.encoding.pooled.shape}/{r.encoding.tokens.shape} do not fit dim {dim}/{token_dim}"
                )
        tokens = tokens_to_arrow([r.encoding.tokens for r in records], token_dim, self.codec)
        pooled = np.stack([r.encoding.pooled for r in records]).astype(np.float32, copy=False)
        columns = {
            "id": pa.array([r.id for r in records], pa.string()),
            "ref_id": pa.array([r.ref_id for r in records], pa.string()),
            "text": pa.array([r.text for r in records], pa.string()),
            "image": pa.array([r.image for r in records], pa.string()),
            "modality": pa.array([r.encoding.modality for r in records], pa.string()),
            # the user's key order is kept: LlamaIndex hashes str(metadata) (node.hash), and fusion matches nodes by hash
            "metadata": pa.array(
                [json.dumps(with_key_order(r.metadata), default=json_default) for r in records], pa.json_(pa.utf8())
            ),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(pooled.reshape(-1)), dim),
            "tokens": tokens,
            "n_tokens": pa.array(np.diff(tokens.offsets.to_numpy()).astype(np.int32)),
        }
        return pa.Table.from_pydict(columns, schema=schema)

    def write(
        self,
        batches: Iterable[Sequence[Record]],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        *,
        upsert: bool = True,
    ) -> None:
        """Write every record of ``batches`` as one LanceDB commit: all rows appear, or none.

        ``batches`` is consumed lazily (it may encode as it goes); each batch is coded to
        Arrow and written by LanceDB in a background thread while the next one is produced,
        so memory stays bounded by a few batches and writing hides behind encoding. An
        error raised by ``batches`` (or while coding) aborts the stream before the commit and
        is re-raised; nothing is restored, so other writers' commits are never touched.

        Args:
            batches: lists of records; an id may appear once in the whole call.
            metadatas: every record's metadata, when known before encoding: their field
                types are then checked, and new fields recorded, before anything is encoded.
                Without it (a streamed source), each batch's fields are checked as it comes
                and new ones are recorded after the last batch, just before the commit. New
                fields are recorded in a metadata-only commit that only widens the field
                map, so a row's fields are always known, even after a crash.
            upsert: replace rows whose id exists (``merge_insert``). False appends and
                refuses ids the table already holds (:class:`DuplicateIdError`), without the
                cost of a merge; a new or empty table is always appended to.
        """
        self._open_existing()
        self._require_native("add rows to")
        types = merge_field_types(self.field_types, metadatas or [])
        batches = iter(batches)
        first = next(batches, None)  # may fit the codec (see SmartIndex), so before the schema
        if first is None:
            return
        streamed = metadatas is None  # field types known only batch by batch
        if streamed:
            types = merge_field_types(types, [r.metadata for r in first])
        if self._table is None:  # an empty table first: a concurrent creator's table is adopted, not clobbered
            if self.codec is not None and self._codec_ref is None:
                self._codec_ref = save_codec(self.db, self.table_name, self.codec)
            schema = self._schema(types)
            table = self.db.create_table(self.table_name, schema=schema, exist_ok=True)
            if table.schema.metadata == schema.metadata:
                self._table = table
            else:
                self._adopt(table)
        self._record_field_types(types)
        append = not upsert or self._table.count_rows() == 0
        schema = self._schema(self.field_types)
        seen: set[str] = set()

        def checked() -> Iterator[Sequence[Record]]:
            nonlocal types
            for n, records in enumerate(itertools.chain([first], batches)):
                ids = [r.id for r in records]
                repeated = _first_repeat(ids, seen)
                if repeated is not None:
                    raise ValueError(f"duplicate id {repeated!r} in one write")
                if streamed and n:  # the first batch's fields are merged above
                    types = merge_field_types(types, [r.metadata for r in records])
                if not upsert:
                    self._check_new(ids)
                yield records

        def convert(records: Sequence[Record]) -> list[pa.RecordBatch]:
            return self._to_arrow(records, schema).to_batches()

        def before_commit() -> None:
            self._record_field_types(types)

        commit = (
            self._table.add
            if append
            else self._table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute
        )
        stream_into(schema, checked(), convert, commit, before_commit=before_commit if streamed else None)

    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace these rows by id, in one commit (:meth:`write` of one batch)."""
        self.write([records], [r.metadata for r in records])

    def _require_native(self, action: str) -> None:
        if not self.layout.native:
            raise UpgradedTableError(
                f"cannot {action} table {self.table_name!r}: it was upgraded in place from a {self.layout.owner} "
                "single-vector table, whose rows its own store writes. Write through that store, then run "
                "upgrade() (smart-retrievers upgrade) again: it gives the new rows their token states"
            )

    def _check_new(self, ids: Sequence[str]) -> None:
        sql = to_sql(parse_filter({"id": {"$in": list(ids)}}), {})
        taken = self._table.search().where(sql).select(["id"]).limit(1).to_arrow()
        if len(taken):
            raise DuplicateIdError(
                f"id {taken.column('id')[0].as_py()!r} is already in table {self.table_name!r}; "
                "add with upsert=True to replace it"
            )

    def _record_field_types(self, types: FieldTypes, attempts: int = 20) -> None:
        """Widen the stored field map to cover ``types`` (retrying over concurrent updates)."""
        for _ in range(attempts):
            stored = self.field_types
            widened = widen_field_types(stored, types)
            if widened == stored:
                return
            try:
                self._table.update_field_metadata(
                    {"path": "metadata", "metadata": {FIELDS_KEY: json.dumps(widened, sort_keys=True)}}
                )
                return
            except RuntimeError as exc:  # another writer updated the map meanwhile: re-read, merge, retry
                if "Incompatible transaction" not in str(exc):
                    raise
                self._table.checkout_latest()
        raise RuntimeError(f"could not record metadata field types after {attempts} concurrent updates")

    @property
    def version(self) -> int | None:
        """The table's current version (None before the first write)."""
        return None if self._table is None else self._table.version

    def replace_tokens(
        self,
        transform: Callable[[pa.RecordBatch], tuple[pa.Array, pa.Array]],
        fingerprint: Mapping[str, Any],
        *,
        codec: TokenCodec | None,
        batch_size: int = 1024,
        show_progress: bool | None = None,
        desc: str = "Rewriting tokens",
    ) -> int:
        """Rewrite the ``tokens`` column (and ``n_tokens``) of every row, keeping everything else.

        ``transform`` maps a batch of stored rows to its new ``(tokens, n_tokens)`` columns,
        coded by ``codec`` (None: float16 states), which becomes the table's codec.
        The rows are read from the version current at the call and written back with
        the new ``fingerprint`` as one overwrite commit: readers see the old table or the
        new one, never a mix, and a failure (re-raised as the transform's own error)
        leaves the old version in place. Table indices are not carried over by the
        overwrite; they are logged and must be rebuilt. Returns the number of rows.
        """
        if self._table is None:  # nothing stored: the next first write fits the codec of the same preset
            self.fingerprint, self.codec, self._codec_ref = dict(fingerprint), codec, None
            return 0
        self._require_native("rewrite the token states of")
        snapshot = self.db.open_table(self.table_name)
        snapshot.checkout(self._table.version)  # the version we start from, whatever commits meanwhile
        n_rows = snapshot.count_rows()
        lost_indices = [i.name for i in self._table.list_indices()]
        stored_schema = snapshot.schema
        rows = snapshot.search().select(stored_schema.names).limit(None).to_batches(batch_size)
        # the reader's types (e.g. JSON as arrow.json, not Lance's storage type), the table's
        # field metadata (known metadata fields), the new token type and fingerprint
        fields = []
        for f in rows.schema:
            if f.name == "tokens":
                f = pa.field("tokens", tokens_type(fingerprint.get("token_dim", fingerprint["dim"]), codec))
            kept = {
                k: v
                for k, v in (stored_schema.field(f.name).metadata or {}).items()
                if not k.startswith(b"ARROW:extension")
            }
            fields.append(f.with_metadata(kept))
        metadata = {
            k: v
            for k, v in (stored_schema.metadata or {}).items()
            if k not in (FINGERPRINT_KEY.encode(), CODEC_KEY.encode())
        }
        codec_ref = save_codec(self.db, self.table_name, codec) if codec is not None else None
        metadata.update({k.encode(): v.encode() for k, v in self._schema_metadata(fingerprint, codec_ref).items()})
        schema = pa.schema(fields, metadata=metadata)
        failure: list[BaseException] = []

        def batches() -> Iterator[pa.RecordBatch]:
            show = progress_on(show_progress, n_rows)
            try:
                with tqdm(total=n_rows, disable=not show, desc=desc, unit="row") as bar:
                    for batch in rows:
                        tokens, n_tokens = transform(batch)
                        replaced = {"tokens": tokens, "n_tokens": n_tokens}
                        yield pa.RecordBatch.from_arrays(
                            [replaced.get(name, batch.column(name)) for name in schema.names], schema=schema
                        )
                        bar.update(len(batch))
            except BaseException as exc:
                failure.append(exc)
                raise

        try:
            self.db.create_table(
                self.table_name,
                data=pa.RecordBatchReader.from_batches(schema, batches()),
                schema=schema,
                mode="overwrite",
            )
        except Exception as exc:
            if failure:  # surface the transform's own error, not Arrow's wrapper
                raise failure[0] from exc
            raise
        self._table = self.db.open_table(self.table_name)
        self.fingerprint, self.codec, self._codec_ref = dict(fingerprint), codec, codec_ref
        self.compression = codec.preset if codec else "none"
        if lost_indices:
            logger.warning("replace_tokens: the overwrite dropped indices %s; rebuild them", lost_indices)
        return n_rows

    def delete(
        self, *, ids: Sequence[str] | None = None, ref_ids: Sequence[str] | None = None, where: Any = None
    ) -> int:
        """Delete rows by ids, by ref_ids and/or by a metadata filter; returns how many went.

        The conditions are ANDed. A call without any condition (or with ``where={}``, or a
        filter that matches every row, such as ``{"$and": []}``) is refused: use
        :meth:`delete_all` to empty the table.
        """
        clauses = []
        if ids is not None:
            clauses.append(
                to_sql(parse_filter({"id": {"$in": id_list(ids, "ids")}}), self.field_types, self.sql_target)
            )
        if ref_ids is not None:
            clauses.append(
                to_sql(
                    parse_filter({"ref_id": {"$in": id_list(ref_ids, "ref_ids")}}), self.field_types, self.sql_target
                )
            )
        if where is not None:
            sql = self.where_sql(where)
            if sql is not None:  # {} is "no filter", not a condition
                clauses.append(sql)
        if all(c == "TRUE" for c in clauses):
            raise ValueError(
                f"delete() needs ids, ref_ids or where (a filter that selects rows; got where={short_repr(where)}); "
                "it never deletes every row by accident: call delete_all() for that"
            )
        if self.table is None or "FALSE" in clauses:  # e.g. ids=[]: nothing selected, no commit
            return 0
        predicate = " AND ".join(f"({c})" for c in clauses)
        return self._table.delete(predicate).num_deleted_rows  # counted in the delete's own commit

    def delete_all(self) -> int:
        """Delete every row in one commit (the table, its schema and codec stay); returns how many went."""
        if self.table is None:
            return 0
        return self._table.delete("TRUE").num_deleted_rows

    # ---- reads ---------------------------------------------------------

    @property
    def sql_target(self) -> SqlTarget:
        """How filters reach this table's metadata and id columns."""
        layout = self.layout
        return SqlTarget(
            metadata=layout.metadata or "metadata",
            struct=layout.metadata_struct,
            columns={"id": layout.id, "ref_id": layout.ref_id},
        )

    def where_sql(self, where: Any) -> str | None:
        """Render a filter dict / Filter to SQL against this table's metadata fields."""
        return to_sql(parse_filter(where), self.field_types, self.sql_target)

    def modality_sql(self, modality: str) -> str | None:
        """The condition selecting rows of ``modality`` ("text" / "image"; None: every row is of it)."""
        if self.layout.modality is None:  # an upgraded table: text rows only
            return None if modality == "text" else "FALSE"
        return f"{self.layout.modality} = '{'image' if modality == 'image' else 'text'}'"

    def count(self, where: Any = None) -> int:
        """Number of rows, optionally matching a filter."""
        if self.table is None:
            return 0
        return self._table.count_rows(self.where_sql(where))

    def get(self, ids: Sequence[str], columns: Sequence[str] = META_COLUMNS) -> pa.Table:
        """Rows for these ids (missing ids are absent), in the order given."""
        ids = id_list(ids, "ids")
        if self.table is None or not ids:
            return self._empty(columns)
        sql = to_sql(parse_filter({"id": {"$in": list(ids)}}), self.field_types, self.sql_target)
        query = self._table.search().where(sql).select(self._physical(columns)).limit(len(ids))
        found = self._logical(query.to_arrow(), columns)
        position = {row_id: i for i, row_id in enumerate(found.column("id").to_pylist())}
        order = [position[i] for i in ids if i in position]
        return found.take(pa.array(order, pa.int64()))

    def pooled_query(
        self,
        vector: np.ndarray,
        k: int,
        *,
        where: str | None = None,
        columns: Sequence[str] = META_COLUMNS,
        nprobes: int | None = None,
        refine_factor: int | None = None,
        ef: int | None = None,
        with_row_id: bool = False,
        flat: bool = False,
    ) -> Any:
        """The LanceDB query of :meth:`search_pooled` (for ``explain_plan`` and the like).

        Cosine distance on ``vector``, the filter applied before the top-k (prefilter), through
        the table's vector index when it has one (rows written since the index was last
        updated are searched flat and merged in), and exhaustively otherwise. ``nprobes`` /
        ``refine_factor`` / ``ef`` tune the index search (None: :data:`DEFAULT_NPROBES`,
        :data:`DEFAULT_REFINE_FACTOR`, :data:`DEFAULT_EF`); without an index they change nothing.
        ``flat`` bypasses the index: an exact search over every (matching) row.
        """
        query = self._table.search(
            np.asarray(vector, dtype=np.float32), vector_column_name=self.layout.vector
        ).distance_type("cosine")
        if where:
            query = query.where(where, prefilter=True)
        nprobes = DEFAULT_NPROBES if nprobes is None else nprobes
        refine_factor = DEFAULT_REFINE_FACTOR if refine_factor is None else refine_factor
        ef = DEFAULT_EF if ef is None else ef
        if nprobes:  # at least this many partitions; more when a filter leaves fewer than k rows in them
            query = query.maximum_nprobes(0).minimum_nprobes(nprobes)  # 0: no upper limit
        if refine_factor:
            query = query.refine_factor(refine_factor)
        if ef:
            query = query.ef(max(ef, k))
        if with_row_id:
            query = query.with_row_id(True)
        if flat:
            query = query.bypass_vector_index()
        return query.select([*self._physical(columns), "_distance"]).limit(k)

    def search_pooled(
        self, vector: np.ndarray, k: int, *, columns: Sequence[str] = META_COLUMNS, **query_options: Any
    ) -> pa.Table:
        """Top-k rows by pooled cosine, filter applied before the search, with the asked columns.

        ``query_options`` are :meth:`pooled_query`'s (``where``, the ANN knobs, ``flat``);
        ``with_row_id=True`` adds the ``_rowid`` column (for :meth:`take_rows`).
        """
        if self.table is None:
            return self._empty(columns)
        found = self.pooled_query(vector, k, columns=columns, **query_options).to_arrow()
        return self._logical(found, columns, extra=["_rowid"] if "_rowid" in found.column_names else [])

    def take_rows(self, row_ids: Sequence[int], columns: Sequence[str]) -> pa.Table:
        """The ``columns`` of the rows with these LanceDB ``_rowid`` values, in the order given."""
        if self.table is None or not len(row_ids):
            return self._empty(columns)
        ids = [int(r) for r in row_ids]
        found = self._table.take_row_ids(ids).with_row_id().select(self._physical(columns)).to_arrow()
        position = {r: i for i, r in enumerate(found.column("_rowid").to_pylist())}
        return self._logical(found.take(pa.array([position[r] for r in ids], pa.int64())), columns)

    # ---- upkeep: compaction, old versions, the pooled ANN index ----------

    def vector_index(self) -> Any:
        """The LanceDB index config on ``vector`` (name, type, indexed / unindexed rows), or None."""
        if self.table is None:
            return None
        return next((i for i in self._table.list_indices() if list(i.columns) == [self.layout.vector]), None)

    def optimize(
        self,
        *,
        cleanup_older_than: timedelta | None = timedelta(days=7),
        delete_unverified: bool = False,
        ann_min_rows: int | None = None,
        index_type: str = DEFAULT_ANN_INDEX,
        num_partitions: int | None = None,
        rebuild_index: bool = False,
    ) -> OptimizeReport:
        """Compact the table, drop old versions, and create or update the pooled ANN index.

        1. LanceDB's ``table.optimize``: small data files are merged (compaction; every row
           and value is kept), versions older than ``cleanup_older_than`` are removed
           (``timedelta(0)``: all but the latest, unsafe while other processes read older
           versions; None: LanceDB's default of 7 days), and an existing index is brought up
           to date: rows written since it was trained are added to it (incrementally,
           without retraining its partitions).
        2. If the table has no index on ``vector`` and holds at least ``ann_min_rows`` rows
           (None: never), or ``rebuild_index`` is set, a LanceDB ``index_type`` index with
           cosine distance is trained on every row (``num_partitions`` None: LanceDB's own
           choice from the row count).
        3. Versions past ``cleanup_older_than`` are removed once more, so that those the
           steps above committed go too when the retention allows.

        Returns an :class:`OptimizeReport`.
        """
        if index_type not in ANN_INDEX_TYPES:
            raise ValueError(f"index_type must be one of {ANN_INDEX_TYPES}, got {index_type!r}")
        if ann_min_rows is not None and (
            isinstance(ann_min_rows, bool) or not isinstance(ann_min_rows, int) or ann_min_rows < 0
        ):
            raise ValueError(f"ann_min_rows must be an int >= 0 or None, got {ann_min_rows!r}")
        if cleanup_older_than is not None and cleanup_older_than < timedelta(0):
            raise ValueError(f"cleanup_older_than must be >= 0, got {cleanup_older_than!r}")
        start = time.perf_counter()
        if self.table is None:
            return OptimizeReport(rows=0, seconds=0.0)
        stats = self._table.stats()
        report = OptimizeReport(
            rows=stats["num_rows"],
            fragments_before=stats["fragment_stats"]["num_fragments"],
            versions_before=len(self._table.list_versions()),
        )
        compact_start = time.perf_counter()
        with warnings.catch_warnings():  # LanceDB warns on every cleanup_older_than=0; the docstring says it
            warnings.simplefilter("ignore", UserWarning)
            self._table.optimize(cleanup_older_than=cleanup_older_than, delete_unverified=delete_unverified)
        report.optimize_seconds = time.perf_counter() - compact_start
        existing = self.vector_index()
        if rebuild_index or (existing is None and ann_min_rows is not None and report.rows >= ann_min_rows):
            # trained after compaction, so that no compaction has to remap (and copy) it right away
            index_start = time.perf_counter()
            config = _ann_config(index_type, num_partitions)
            self._table.create_index(self.layout.vector, config=config, replace=True)
            report.index_built = True
            report.index_seconds = time.perf_counter() - index_start
        if cleanup_older_than is not None and (existing is not None or report.index_built):
            # the versions committed after LanceDB's cleanup step (the index build, an index remapped by
            # the compaction) hold whole index copies: a second pass (no compaction left to do) drops them
            # too, retention permitting
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self._table.optimize(cleanup_older_than=cleanup_older_than, delete_unverified=delete_unverified)
        stats = self._table.stats()
        report.rows = stats["num_rows"]
        report.fragments_after = stats["fragment_stats"]["num_fragments"]
        report.versions_after = len(self._table.list_versions())
        index = self.vector_index()
        if index is not None:
            report.index_name = index.name
            report.index_type = _INDEX_TYPE_NAMES.get(index.index_type, index.index_type)
            report.indexed_rows = index.num_indexed_rows
            report.unindexed_rows = index.num_unindexed_rows
        report.seconds = time.perf_counter() - start
        return report

    def scan(
        self, columns: Sequence[str], *, where: str | None = None, batch_size: int = 2048
    ) -> Iterator[pa.RecordBatch]:
        """Stream every (matching) row in record batches."""
        if self.table is None:
            return
        query = self._table.search().select(self._physical(columns)).limit(None)
        if where:
            query = query.where(where)
        for batch in query.to_batches(batch_size):
            if self.layout.native:
                yield batch
            else:
                yield from self._logical(pa.Table.from_batches([batch]), columns).to_batches()

    def _physical(self, columns: Sequence[str]) -> list[str]:
        """The table columns that hold the logical ``columns``.

        An upgraded table's rows may lack token states (written by the owner's store since),
        so ``vector`` comes with ``tokens`` there; a native table's rows always have them.
        """
        if self.layout.native:
            return list(columns)
        wanted = [*columns, self.layout.vector] if "tokens" in columns else list(columns)
        return physical_columns(self.layout, wanted)

    def _logical(self, found: pa.Table, columns: Sequence[str], *, extra: Sequence[str] = ()) -> pa.Table:
        """Rows read with :meth:`_physical` columns as the logical ``columns`` (then ``extra``)."""
        if self.layout.native:
            return found.select([*columns, *extra])
        if "tokens" in columns and found.column("tokens").null_count:
            found = found.set_column(found.schema.get_field_index("tokens"), "tokens", self._pooled_as_tokens(found))
        return to_logical(found, self.layout, columns, extra=extra)

    def _pooled_as_tokens(self, found: pa.Table) -> pa.Array:
        """``tokens`` where each row without token states (written since an upgrade) has its pooled vector.

        The method's rule for an input with no token: its pooled vector is its one token.
        Run the upgrade again to give such rows their real token states.
        """
        tokens = found.column("tokens").combine_chunks()
        missing = np.flatnonzero(tokens.is_null().to_numpy(zero_copy_only=False))
        vectors = vectors_block(found.column(self.layout.vector)).numpy()[missing]
        token_dim = self.fingerprint.get("token_dim", self.fingerprint["dim"])
        if token_dim != vectors.shape[1]:
            raise ValueError(
                f"{len(missing)} rows have no token states and their pooled vectors ({vectors.shape[1]}-d) "
                f"cannot stand in for {token_dim}-d tokens; run upgrade() again to give them token states"
            )
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        filled = tokens_to_arrow([v[None, :] for v in vectors / norms], token_dim, self.codec).cast(tokens.type)
        index = np.arange(len(tokens))
        index[missing] = len(tokens) + np.arange(len(missing))
        return pa.concat_arrays([tokens, filled]).take(pa.array(index))

    def _empty(self, columns: Sequence[str]) -> pa.Table:
        schema = self._schema()
        return pa.table({c: pa.array([], schema.field(c).type) for c in columns})
