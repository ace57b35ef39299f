"""Rewriting a table's token states (another adapter, another codec) with Lance's column operations.

Only the ``tokens`` / ``n_tokens`` columns are rewritten, in place: the new columns are computed
fragment by fragment from the stored rows (``LanceFragment.merge_columns``) and committed by one
Lance ``Merge`` whose schema swaps them in for the old ones and records the new fingerprint and
codec. Readers see the old states or the new ones, never a mix. The commit is checked for
conflicts: when another writer committed meanwhile (an add, an upsert, a delete, a compaction),
it is retried on the latest version, reusing every fragment already computed (rows deleted
meanwhile stay deleted) and computing only the new ones, so no committed row is lost and every
row is rewritten. Nothing is committed before that one commit, so a failure or a kill leaves the
table as it was (the unreferenced files go at the next ``optimize()``). The old columns' bytes stay
in the data files until their fragments are rewritten by a compaction (known limitation: Lance's
``compact_files`` rewrites only the fragments it picks, so the table may not shrink on disk yet).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
from tqdm.auto import tqdm

from ..codec import TokenCodec
from ..progress import progress_on
from .arrow import tokens_type
from .codec_table import save_codec
from .schema import CODEC_KEY, FINGERPRINT_KEY, schema_metadata, token_dim_of

logger = logging.getLogger(__name__)

TokenTransform = Callable[[pa.RecordBatch], tuple[pa.Array, pa.Array]]
"""A batch of stored rows (``text``, ``tokens``) -> its new ``(tokens, n_tokens)`` columns."""

NEW = {"tokens": "__smart_new_tokens", "n_tokens": "__smart_new_n_tokens"}
"""The new columns' names until the swap."""
MAX_ATTEMPTS = 50
"""Commits tried before giving up (each conflict means another writer committed meanwhile)."""


class RewriteConflictError(RuntimeError):
    """Other writers kept committing: the token rewrite could not commit (nothing changed; run it again)."""


class ConcurrentRewriteError(RuntimeError):
    """A write lost its commit to a token rewrite (``recompress`` / ``reindex_tokens``) that another writer
    committed meanwhile: its rows were coded for the old token columns, so nothing was written.
    ``SmartIndex``'s add verbs retry it themselves (encoding again); run any other call again."""


def overwrite_tokens(
    db: Any,
    name: str,
    table: Any,
    transform: TokenTransform,
    fingerprint: Mapping[str, Any],
    codec: TokenCodec | None,
    *,
    batch_size: int = 1024,
    show_progress: bool | None = None,
    desc: str = "Rewriting tokens",
) -> tuple[int, str | None]:
    """Rewrite ``tokens`` / ``n_tokens`` of every row of table ``name``, keeping concurrent writers' rows.

    The other columns, the indices and the field metadata are kept; the schema records
    ``fingerprint`` and ``codec`` (saved in the codec table) in the same commit that swaps
    the columns. A failure of ``transform`` is raised as its own error and leaves the table's
    rows and token states as they were. Raises :class:`RewriteConflictError` when other
    writers preempt it :data:`MAX_ATTEMPTS` times. Returns the number of rows and the new
    codec reference.
    """
    import lance  # noqa: PLC0415 (pylance comes with lancedb)
    from lance import LanceOperation  # noqa: PLC0415
    from lance.commit import CommitConflictError  # noqa: PLC0415
    from lance.schema import LanceSchema  # noqa: PLC0415
    from lance.udf import BatchUDF  # noqa: PLC0415

    ds = table.to_lance()
    uri = ds.uri
    out_type = tokens_type(token_dim_of(fingerprint), codec)
    out_schema = pa.schema([pa.field(NEW["tokens"], out_type), pa.field(NEW["n_tokens"], pa.int32())])
    codec_ref = save_codec(db, name, codec) if codec is not None else None
    failure: list[BaseException] = []
    n_rows = ds.count_rows()
    bar = tqdm(total=n_rows, disable=not progress_on(show_progress, n_rows), desc=desc, unit="row")

    def new_columns(batch: pa.RecordBatch) -> pa.RecordBatch:
        try:
            tokens, n_tokens = transform(batch)
        except BaseException as exc:
            failure.append(exc)
            raise
        bar.update(len(batch))
        return pa.RecordBatch.from_arrays([tokens, n_tokens], schema=out_schema)

    udf = BatchUDF(new_columns, output_schema=out_schema)  # with its schema: no sample call first

    def latest() -> Any:
        return lance.dataset(uri)

    def commit(operation: Any, read_version: int) -> bool:
        try:
            lance.LanceDataset.commit(uri, operation, read_version=read_version, max_retries=0)
        except CommitConflictError:
            return False
        except OSError as exc:  # the manifest of that version was written meanwhile
            if "conflict" not in str(exc).lower() and "exists" not in str(exc).lower():
                raise
            return False
        return True

    def run(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            if failure:  # the transform's own error, not Lance's wrapper of it
                raise failure[0] from exc
            raise

    merged: dict[int, Any] = {}  # fragment id -> its metadata with the new columns
    computed = None  # the Lance schema merge_columns gave (the new columns' field ids)
    sources = [c for c in ("text", "tokens") if c in ds.schema.names]
    try:
        for _ in range(MAX_ATTEMPTS):
            ds = latest()
            metas = []
            for fragment in ds.get_fragments():
                meta = fragment.metadata
                done = merged.get(meta.id)
                if done is None or _paths(done)[: len(meta.files)] != _paths(meta):  # new, or rewritten meanwhile
                    done, computed = run(
                        functools.partial(fragment.merge_columns, udf, columns=sources, batch_size=batch_size)
                    )
                    merged[meta.id] = done
                done.deletion_file = meta.deletion_file  # rows deleted meanwhile stay deleted
                metas.append(done)
            if computed is None:  # no fragment (an emptied table): the new columns' fields, without data
                if NEW["tokens"] not in ds.schema.names:
                    ds.add_columns(out_schema)
                computed = latest().lance_schema
                continue
            schema = _swapped_schema(ds.lance_schema, computed, fingerprint, codec_ref, LanceSchema)
            # not preserves_nullability (Lance's default, unlike the upgrade's backfill, which only adds nullable
            # columns): an append staged for the old token columns must conflict with the swap, which retries
            # and rewrites its fragment; were it let through, its rows would read null token states
            if commit(LanceOperation.Merge(metas, schema, preserves_nullability=False), ds.version):
                break
        else:
            raise RewriteConflictError(
                f"other writers kept committing to table {name!r}: the token rewrite gave up after "
                f"{MAX_ATTEMPTS} attempts; nothing changed, run it again"
            )
    finally:
        bar.close()
    table.checkout_latest()
    return table.count_rows(), codec_ref


def _paths(meta: Any) -> list[str]:
    return [f.path for f in meta.files]


def _all_fields(schema: Any) -> list[int]:
    """The ids of every field (children too) in the order of the schema's protobufs."""
    ids: list[int] = []

    def walk(field: Any) -> None:
        ids.append(field.id())
        for child in field.children():
            walk(child)

    for field in schema.fields():
        walk(field)
    return ids


def _swapped_schema(
    current: Any, computed: Any, fingerprint: Mapping[str, Any], codec_ref: str | None, lance_schema: Any
) -> Any:
    """``current`` (the latest Lance schema) with the new columns of ``computed`` in place of ``tokens`` /
    ``n_tokens`` (every field keeping its id, the old ones left out) and the new fingerprint and codec."""
    metadata_json, *protos = current.__reduce__()[1]  # (metadata JSON, one Field protobuf per field, children too)
    replaced = {i for f in current.fields() if f.name() in NEW or f.name() in NEW.values() for i in _all_fields_of(f)}
    kept = [p for i, p in zip(_all_fields(current), protos) if i not in replaced]
    added = {i for f in computed.fields() if f.name() in NEW.values() for i in _all_fields_of(f)}
    names = {v: k for k, v in NEW.items()}
    new = [_renamed_field(p, names) for i, p in zip(_all_fields(computed), computed.__reduce__()[1][1:]) if i in added]
    # Lance's metadata JSON holds each value as a list of bytes
    metadata = {k: v for k, v in json.loads(metadata_json).items() if k not in (FINGERPRINT_KEY, CODEC_KEY)}
    metadata.update({k: list(v.encode()) for k, v in schema_metadata(fingerprint, codec_ref).items()})
    return lance_schema._from_protos(json.dumps(metadata), *kept, *new)


def _all_fields_of(field: Any) -> list[int]:
    return [field.id(), *(i for child in field.children() for i in _all_fields_of(child))]


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            return value, at


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _renamed_field(proto: bytes, names: Mapping[str, str]) -> bytes:
    """A Lance ``Field`` protobuf with its name (field 2) mapped through ``names`` (top-level fields only)."""
    parts, at, name, parent = [], 0, None, None
    while at < len(proto):
        start = at
        key, at = _varint(proto, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(proto, at)
            if number == 4:
                parent = value
        elif wire == 2:
            length, at = _varint(proto, at)
            payload, at = proto[at : at + length], at + length
            if number == 2:
                name = payload.decode()
                parts.append((start, at, payload))
                continue
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire} in a Lance field")
    top_level = parent in ((1 << 64) - 1, (1 << 32) - 1)  # -1 (an absent parent_id is 0: a child of field 0)
    if name is None or name not in names or not top_level:
        return proto
    (start, end, _), new = parts[0], names[name].encode()
    return proto[:start] + _encode_varint((2 << 3) | 2) + _encode_varint(len(new)) + new + proto[end:]
