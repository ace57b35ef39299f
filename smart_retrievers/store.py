"""SmartStore: the LanceDB table holding pooled vectors and token states, and all its I/O.

One row per item: ``id`` (unique), ``ref_id`` (source document), ``text``, ``image``
(a URI/path or null), ``modality``, ``metadata`` (LanceDB JSON, filterable through
:mod:`smart_retrievers.filters`), ``vector`` (pooled, float32) and ``tokens`` (a list of
float16 token states). The encoder fingerprint lives in the schema metadata; the known
metadata fields and their types live in the ``metadata`` field's metadata.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from .codec import DEFAULT_COMPRESSION, TokenCodec, parse_preset
from .encoding import Encoding
from .filters import parse_filter, to_sql
from .progress import progress_on
from .scoring import PackedTokens

logger = logging.getLogger(__name__)

FINGERPRINT_KEY = "smart_retrievers.fingerprint"
CODEC_KEY = "smart_retrievers.codec"
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
    diffs = [
        f"{k}: table={stored.get(k)!r} encoder={current.get(k)!r}"
        for k in sorted(set(stored) | set(current))
        if stored.get(k) != current.get(k) and k != "model"
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
    """Ragged (n_i, token_dim) token states as a ``tokens`` column, coded (and pooled) by ``codec`` if given."""
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


def tokens_from_arrow(column: pa.Array | pa.ChunkedArray) -> PackedTokens:
    """A ``tokens`` column as :class:`~smart_retrievers.scoring.PackedTokens`: float16 states or uint8 codes."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    dim = column.type.value_type.list_size
    offsets = column.offsets.to_numpy().astype(np.int64)
    values = column.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return PackedTokens(values=torch.from_numpy(values.copy()), offsets=offsets - offsets[0])


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
        compression: str | None = None,
        storage_options: Mapping[str, str] | None = None,
        read_consistency_interval: timedelta | None = None,
        **connect_kwargs: Any,
    ) -> None:
        if compression is not None and compression != "none":
            parse_preset(compression)
        self.uri = str(uri)
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
        self.codec: TokenCodec | None = None
        self.compression = compression or DEFAULT_COMPRESSION
        if table in self.db.table_names():
            self._table = self.db.open_table(table)
            self._check_fingerprint()
            raw = (self._table.schema.metadata or {}).get(CODEC_KEY.encode())
            self.codec = TokenCodec.from_json(raw) if raw else None
            stored = self.codec.preset if self.codec else "none"
            if compression is not None and compression != stored:
                raise FingerprintMismatchError(
                    f"table {self.table_name!r} at {self.uri} stores tokens with compression {stored!r}, not {compression!r}; "
                    f"open it without compression= (or with {stored!r}), or convert it with recompress()"
                )
            self.compression = stored

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
        self.codec = codec

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
                pa.field("tokens", tokens_type(token_dim, self.codec)),
                pa.field("n_tokens", pa.int32()),
            ],
            metadata=self._schema_metadata(self.fingerprint, self.codec),
        )

    @staticmethod
    def _schema_metadata(fingerprint: Mapping[str, Any], codec: TokenCodec | None) -> dict[str, str]:
        metadata = {FINGERPRINT_KEY: json.dumps(dict(fingerprint), sort_keys=True)}
        if codec is not None:
            metadata[CODEC_KEY] = codec.to_json()
        return metadata

    def _check_fingerprint(self) -> None:
        raw = (self._table.schema.metadata or {}).get(FINGERPRINT_KEY.encode())
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
        if self.needs_codec:
            raise ValueError(f"the {self.compression!r} codec must be fitted (set_codec) before the first write")
        schema = self._schema()
        dim, token_dim = (
            schema.field("vector").type.list_size,
            self.fingerprint.get("token_dim", self.fingerprint["dim"]),
        )
        for r in records:
            if (
                r.encoding.pooled.shape != (dim,)
                or r.encoding.tokens.ndim != 2
                or r.encoding.tokens.shape[1] != token_dim
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
            "metadata": pa.array([json.dumps(r.metadata, sort_keys=True) for r in records], pa.json_(pa.utf8())),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(pooled.reshape(-1)), dim),
            "tokens": tokens,
            "n_tokens": pa.array(np.diff(tokens.offsets.to_numpy()).astype(np.int32)),
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
            self._table.update_field_metadata(
                {"path": "metadata", "metadata": {FIELDS_KEY: json.dumps(types, sort_keys=True)}}
            )

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
            self.fingerprint, self.codec = dict(fingerprint), codec
            return 0
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
        metadata.update({k.encode(): v.encode() for k, v in self._schema_metadata(fingerprint, codec).items()})
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
        self.fingerprint, self.codec = dict(fingerprint), codec
        self.compression = codec.preset if codec else "none"
        if lost_indices:
            logger.warning("replace_tokens: the overwrite dropped indices %s; rebuild them", lost_indices)
        return n_rows

    def delete(
        self, *, ids: Sequence[str] | None = None, ref_ids: Sequence[str] | None = None, where: Any = None
    ) -> int:
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
        query = self._table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector").distance_type(
            "cosine"
        )
        if where:
            query = query.where(where, prefilter=True)
        if refine_factor:
            query = query.refine_factor(refine_factor)
        return query.select([*columns, "_distance"]).limit(k).to_arrow().drop_columns(["_distance"])

    def scan(
        self, columns: Sequence[str], *, where: str | None = None, batch_size: int = 2048
    ) -> Iterator[pa.RecordBatch]:
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
