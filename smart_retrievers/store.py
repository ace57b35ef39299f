"""SmartStore: the LanceDB table holding pooled vectors and token states, and all its I/O.

One row per item: ``id`` (unique), ``ref_id`` (source document), ``text``, ``image``
(a URI/path or null), ``modality``, ``metadata`` (LanceDB JSON, filterable through
:mod:`smart_retrievers.filters`), ``vector`` (pooled, float32) and ``tokens`` (a list of
float16 token states). The encoder fingerprint lives in the schema metadata; the known
metadata fields and their types live in the ``metadata`` field's metadata.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import torch

from .encoding import Encoding
from .filters import parse_filter, to_sql

FINGERPRINT_KEY = "smart_retrievers.fingerprint"
FIELDS_KEY = "smart_retrievers.fields"
META_COLUMNS = ["id", "ref_id", "text", "image", "modality", "metadata"]
FieldTypes = dict[str, str]


class FingerprintMismatchError(ValueError):
    """The table was built by a different encoder than the one opening it."""


@dataclass
class Record:
    """One stored item: what the user gave plus its encodings."""

    id: str
    text: str
    encoding: Encoding
    ref_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    image: str | None = None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"metadata value {value!r} is not a finite number")
        return "float"
    if isinstance(value, str):
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
            new = _json_type(value)
            old = merged.get(key)
            if new == "null" or old == new:
                merged.setdefault(key, new)
                continue
            if old in (None, "null"):
                merged[key] = new
            elif {old, new} == {"int", "float"}:
                merged[key] = "float"
            else:
                raise ValueError(f"metadata field {key!r} holds {old} values, got {new} value {value!r}")
    return merged


def describe_mismatch(stored: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    diffs = [f"{k}: table={stored.get(k)!r} encoder={current.get(k)!r}" for k in sorted(set(stored) | set(current)) if stored.get(k) != current.get(k) and k != "model"]
    return "; ".join(diffs)


def vectors_block(column: pa.Array | pa.ChunkedArray) -> torch.Tensor:
    """A ``vector`` column as a float32 tensor (N, d)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False)
    return torch.from_numpy(values.reshape(len(column), column.type.list_size).astype(np.float32))


def tokens_flat(column: pa.Array | pa.ChunkedArray) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``tokens`` column as its concatenated token states (T, d) float32 and per-row lengths (N,)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    dim = column.type.value_type.list_size
    values = column.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    lengths = np.diff(column.offsets.to_numpy())
    return torch.from_numpy(values.copy()).float(), torch.from_numpy(lengths)


def tokens_block(column: pa.Array | pa.ChunkedArray) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``tokens`` column as a zero-padded float32 block (N, L, d) and its bool mask (N, L)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    offsets = column.offsets.to_numpy()
    lengths = np.diff(offsets)
    dim = column.type.value_type.list_size
    values = column.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    mask = torch.arange(max(1, int(lengths.max(initial=1))))[None, :] < torch.from_numpy(lengths)[:, None]
    block = torch.zeros(*mask.shape, dim, dtype=torch.float32)
    block[mask] = torch.from_numpy(values.astype(np.float32))
    return block, mask


class SmartStore:
    """LanceDB table I/O for SMART rows.

    Args:
        uri: a local directory (embedded LanceDB), an object-store URI
            (``s3://``, ``gs://``, ``az://``) or a LanceDB Cloud ``db://`` URI.
        table: table name.
        fingerprint: the encoder fingerprint; checked against an existing table.
        storage_options: passed to ``lancedb.connect`` (object-store credentials...).
        read_consistency_interval: how often to look for other writers' commits
            (``timedelta(0)``: on every read); None never re-checks.
        **connect_kwargs: other ``lancedb.connect`` arguments (api_key, region...).
    """

    def __init__(
        self,
        uri: str,
        table: str,
        fingerprint: Mapping[str, Any],
        *,
        storage_options: Mapping[str, str] | None = None,
        read_consistency_interval: timedelta | None = None,
        **connect_kwargs: Any,
    ) -> None:
        self.uri = str(uri)
        self.table_name = table
        self.fingerprint = dict(fingerprint)
        self.db = lancedb.connect(
            self.uri,
            storage_options=dict(storage_options) if storage_options else None,
            read_consistency_interval=read_consistency_interval,
            **connect_kwargs,
        )
        self._table = None
        if table in self.db.table_names():
            self._table = self.db.open_table(table)
            self._check_fingerprint()

    # ---- schema --------------------------------------------------------

    def _schema(self) -> pa.Schema:
        dim, token_dim = self.fingerprint["dim"], self.fingerprint.get("token_dim", self.fingerprint["dim"])
        return pa.schema(
            [
                pa.field("id", pa.string(), nullable=False),
                pa.field("ref_id", pa.string()),
                pa.field("text", pa.string()),
                pa.field("image", pa.string()),
                pa.field("modality", pa.string()),
                pa.field("metadata", pa.json_(pa.utf8())),
                pa.field("vector", pa.list_(pa.float32(), dim)),
                pa.field("tokens", pa.list_(pa.list_(pa.float16(), token_dim))),
                pa.field("n_tokens", pa.int32()),
            ],
            metadata={FINGERPRINT_KEY: json.dumps(self.fingerprint, sort_keys=True)},
        )

    def _check_fingerprint(self) -> None:
        raw = (self._table.schema.metadata or {}).get(FINGERPRINT_KEY.encode())
        if raw is None:
            raise FingerprintMismatchError(f"table {self.table_name!r} at {self.uri} was not written by smart-retrievers (no fingerprint)")
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
        if self._table is None:
            return {}
        meta = self._table.schema.field("metadata").metadata or {}
        raw = meta.get(FIELDS_KEY.encode())
        return json.loads(raw) if raw else {}

    @property
    def table(self):
        """The underlying ``lancedb`` table (None before the first write)."""
        return self._table

    # ---- writes --------------------------------------------------------

    def _to_arrow(self, records: Sequence[Record]) -> pa.Table:
        schema = self._schema()
        dim, token_dim = schema.field("vector").type.list_size, schema.field("tokens").type.value_type.list_size
        for r in records:
            if r.encoding.pooled.shape != (dim,) or r.encoding.tokens.ndim != 2 or r.encoding.tokens.shape[1] != token_dim:
                raise ValueError(f"record {r.id!r}: encoding shapes {r.encoding.pooled.shape}/{r.encoding.tokens.shape} do not fit dim {dim}/{token_dim}")
        lengths = np.array([len(r.encoding.tokens) for r in records], dtype=np.int32)
        flat = np.concatenate([r.encoding.tokens for r in records]).astype(np.float16, copy=False)
        token_vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), token_dim)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        tokens = pa.ListArray.from_arrays(offsets, token_vectors)
        pooled = np.stack([r.encoding.pooled for r in records]).astype(np.float32, copy=False)
        columns = {
            "id": pa.array([r.id for r in records], pa.string()),
            "ref_id": pa.array([r.ref_id for r in records], pa.string()),
            "text": pa.array([r.text for r in records], pa.string()),
            "image": pa.array([r.image for r in records], pa.string()),
            "modality": pa.array([r.encoding.modality for r in records], pa.string()),
            "metadata": pa.array([json.dumps(r.metadata, sort_keys=True) for r in records], pa.json_(pa.utf8())),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(pooled.reshape(-1)), dim),
            "tokens": tokens,
            "n_tokens": pa.array(lengths),
        }
        return pa.Table.from_pydict(columns, schema=schema)

    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace rows by id, in one LanceDB commit (merge_insert)."""
        if not records:
            return
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"duplicate id {dup!r} in one batch")
        types = merge_field_types(self.field_types, [r.metadata for r in records])
        data = self._to_arrow(records)
        if self._table is None:
            self._table = self.db.create_table(self.table_name, data=data, schema=data.schema)
        else:
            self._table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)
        if types != self.field_types:
            self._table.update_field_metadata({"path": "metadata", "metadata": {FIELDS_KEY: json.dumps(types, sort_keys=True)}})

    @property
    def version(self) -> int | None:
        """The table's current version (None before the first write)."""
        return None if self._table is None else self._table.version

    def rollback(self, version: int | None) -> None:
        """Undo every commit after ``version`` (None: drop the table created since)."""
        if self._table is None:
            return
        if version is None:
            self.db.drop_table(self.table_name)
            self._table = None
        elif self._table.version != version:
            self._table.checkout(version)
            self._table.restore()

    def delete(self, *, ids: Sequence[str] | None = None, ref_ids: Sequence[str] | None = None, where: Any = None) -> int:
        """Delete rows by ids, by ref_ids and/or by a metadata filter; returns how many went."""
        clauses = []
        if ids is not None:
            clauses.append(to_sql(parse_filter({"id": {"$in": list(ids)}}), self.field_types))
        if ref_ids is not None:
            clauses.append(to_sql(parse_filter({"ref_id": {"$in": list(ref_ids)}}), self.field_types))
        if where is not None:
            clauses.append(self.where_sql(where))
        if not clauses:
            raise ValueError("delete() needs ids, ref_ids or where")
        if self._table is None:
            return 0
        predicate = " AND ".join(f"({c})" for c in clauses)
        before = self._table.count_rows()
        self._table.delete(predicate)
        return before - self._table.count_rows()

    # ---- reads ---------------------------------------------------------

    def where_sql(self, where: Any) -> str | None:
        """Render a filter dict / Filter to SQL against this table's metadata fields."""
        return to_sql(parse_filter(where), self.field_types)

    def count(self, where: Any = None) -> int:
        """Number of rows, optionally matching a filter."""
        if self._table is None:
            return 0
        return self._table.count_rows(self.where_sql(where))

    def get(self, ids: Sequence[str], columns: Sequence[str] = META_COLUMNS) -> pa.Table:
        """Rows for these ids (missing ids are absent), in the order given."""
        if self._table is None or not ids:
            return self._empty(columns)
        sql = to_sql(parse_filter({"id": {"$in": list(ids)}}), self.field_types)
        found = self._table.search().where(sql).select(list(columns)).limit(len(ids)).to_arrow()
        position = {row_id: i for i, row_id in enumerate(found.column("id").to_pylist())}
        order = [position[i] for i in ids if i in position]
        return found.take(pa.array(order, pa.int64()))

    def search_pooled(
        self,
        vector: np.ndarray,
        k: int,
        *,
        where: str | None = None,
        columns: Sequence[str] = META_COLUMNS,
        refine_factor: int | None = None,
    ) -> pa.Table:
        """Top-k rows by pooled cosine, filter applied before the search, with the asked columns."""
        if self._table is None:
            return self._empty(columns)
        query = self._table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector").distance_type("cosine")
        if where:
            query = query.where(where, prefilter=True)
        if refine_factor:
            query = query.refine_factor(refine_factor)
        return query.select([*columns, "_distance"]).limit(k).to_arrow().drop_columns(["_distance"])

    def scan(self, columns: Sequence[str], *, where: str | None = None, batch_size: int = 2048) -> Iterator[pa.RecordBatch]:
        """Stream every (matching) row in record batches."""
        if self._table is None:
            return
        query = self._table.search().select(list(columns)).limit(None)
        if where:
            query = query.where(where)
        yield from query.to_batches(batch_size)

    def _empty(self, columns: Sequence[str]) -> pa.Table:
        schema = self._schema()
        return pa.table({c: pa.array([], schema.field(c).type) for c in columns})
