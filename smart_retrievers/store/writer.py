"""The one-commit writer: a user call's rows stream into one LanceDB ``add`` / ``merge_insert``.

Batches are produced (encoded) in the calling thread and coded to Arrow and written in a
writer thread; a failure before the commit aborts the stream, so nothing is committed and
nothing is ever restored (other writers' commits stay). New metadata fields are recorded
first, in a metadata-only commit that only widens the field map.
"""

from __future__ import annotations

import functools
import itertools
import json
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from ..codec import TokenCodec
from ..filters import parse_filter, to_sql
from ..validation import json_default
from .arrow import Record, is_coded, n_tokens_column, tokens_to_arrow, vectors_to_arrow
from .errors import DuplicateIdError
from .layout import NATIVE
from .rewrite import ConcurrentRewriteError
from .schema import (
    FIELDS_KEY,
    FieldTypes,
    held_field_types,
    merge_field_types,
    restore_key_order,
    schema_field_types,
    stored_codec_ref,
    stored_fingerprint,
    token_dim_of,
    widen_field_types,
    with_key_order,
)

T = TypeVar("T")


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


class _StreamAborted(RuntimeError):
    """Raised into LanceDB's reader so that it abandons the write."""


def write_records(
    table: Any,
    batches: Iterator[Sequence[Record]],
    schema: pa.Schema,
    codec: TokenCodec | None,
    *,
    streamed_types: FieldTypes | None,
    upsert: bool,
    table_name: str,
) -> None:
    """Write every record of ``batches`` into the LanceDB ``table`` (native, existing) as one commit.

    ``streamed_types``: the field types known so far when the records' metadata comes batch
    by batch (each batch's are merged, and recorded just before the commit); None when they
    were recorded before the call. ``upsert`` False appends and refuses ids ``table`` holds;
    an empty table is always appended to. An id may appear once in the whole call.
    """
    append = not upsert or table.count_rows() == 0
    own: FieldTypes = {}  # the call's own fields
    seen: set[str] = set()

    def checked() -> Iterator[Sequence[Record]]:
        nonlocal own
        for records in batches:
            ids = [r.id for r in records]
            repeated = _first_repeat(ids, seen)
            if repeated is not None:
                raise ValueError(f"duplicate id {repeated!r} in one write")
            own = merge_field_types(own, [r.metadata for r in records], ids)
            if not upsert:
                _check_new(table, ids, table_name)
            yield records

    def convert(records: Sequence[Record]) -> list[pa.RecordBatch]:
        return records_to_arrow(records, schema, codec).to_batches()

    def before_commit() -> None:
        record_field_types(table, widen_field_types(streamed_types or {}, own))

    commit = (
        table.add
        if append
        else table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute
    )
    streamed = streamed_types is not None
    try:
        stream_into(schema, checked(), convert, commit, before_commit=before_commit if streamed else None)
    except Exception as exc:
        if _tokens_rewritten(table, schema):  # Lance: "Append with different schema" / "preempted by Merge"
            raise ConcurrentRewriteError(
                f"another writer rewrote the token states of table {table_name!r} (recompress / reindex_tokens) "
                "while this write was committing; nothing was written: run the call again"
            ) from exc
        raise
    # a delete_all() committed between the map update and the rows resets the map: once this call
    # returns, the map holds the call's fields again (no commit when it does already)
    record_field_types(table, own)


def _tokens_rewritten(table: Any, schema: pa.Schema) -> bool:
    """Whether the table's token columns or codec now differ from the ``schema`` a write coded its rows for."""
    table.checkout_latest()
    latest = table.schema
    return latest.field("tokens").type != schema.field("tokens").type or stored_codec_ref(latest) != stored_codec_ref(
        schema
    )


def records_to_arrow(records: Sequence[Record], schema: pa.Schema, codec: TokenCodec | None) -> pa.Table:
    """Records as rows of the native ``schema``, token states coded by ``codec`` (None: float16)."""
    dim = schema.field("vector").type.list_size
    token_dim = token_dim_of(stored_fingerprint(schema) or {"dim": dim})
    for r in records:
        states = r.encoding.tokens.ndim == 2 and r.encoding.tokens.shape[1] == token_dim
        if r.encoding.pooled.shape != (dim,) or not (states or (codec and is_coded(r.encoding.tokens, codec))):
            raise ValueError(
                f"record {r.id!r}: encoding shapes {r.encoding.pooled.shape}/{r.encoding.tokens.shape} "
                f"do not fit dim {dim}/{token_dim}"
            )
    tokens = tokens_to_arrow([r.encoding.tokens for r in records], token_dim, codec)
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
        "vector": vectors_to_arrow(np.stack([r.encoding.pooled for r in records])),
        "tokens": tokens,
        "n_tokens": n_tokens_column(tokens),
    }
    return pa.Table.from_pydict(columns, schema=schema)


def record_field_types(table: Any, types: Mapping[str, str], attempts: int = 50) -> None:
    """Widen the field map stored on a native ``table`` to cover ``types``, never losing another writer's fields.

    The map is read at a version and the widened map committed against that version
    (Lance's conflict detection: a concurrent update of the map makes the commit fail),
    then re-read and merged again until a commit lands on top of what it read.
    """
    _update_field_map(table, lambda stored, _rows: widen_field_types(stored, types), attempts)


def reset_field_types(table: Any, attempts: int = 50) -> None:
    """Narrow the field map of a native ``table`` to the fields its rows hold (after ``delete_all``).

    The narrowed map is committed against the version whose rows it was derived from; then the
    map is widened to the rows of the latest version, so a writer whose rows landed meanwhile
    keeps its fields (and a writer whose rows land later re-records them: :func:`write_records`).
    """
    _update_field_map(table, lambda _stored, rows: _held(rows()), attempts)
    _update_field_map(table, lambda stored, rows: widen_field_types(stored, _held(rows())), attempts)


def _metadata_texts(dataset: Any) -> list[str | None]:
    """Every row's stored metadata JSON in this version of the dataset."""
    return dataset.to_table(columns=["metadata"]).column("metadata").to_pylist()


def _held(metadatas: list[str | None]) -> FieldTypes:
    return held_field_types(restore_key_order(json.loads(text or "{}")) for text in metadatas)


def _update_field_map(
    table: Any, update: Callable[[FieldTypes, Callable[[], list[str | None]]], FieldTypes], attempts: int
) -> None:
    """Commit ``update(stored map, rows' metadata)`` as the field map, against the version both were read at."""
    try:
        dataset = table.to_lance()
    except (AttributeError, NotImplementedError, ValueError):  # a remote table: LanceDB's own update
        dataset = None
    if dataset is None:
        _update_field_map_remote(table, update, attempts)
        return
    import lance  # noqa: PLC0415 (pylance comes with lancedb)
    from lance.commit import CommitConflictError  # noqa: PLC0415

    for _ in range(attempts):
        dataset = dataset.checkout_version(dataset.latest_version)
        stored = schema_field_types(dataset.schema, NATIVE)
        wanted = update(stored, functools.partial(_metadata_texts, dataset))
        if wanted == stored:
            table.checkout_latest()
            return
        change = lance.LanceOperation.UpdateMap({FIELDS_KEY: json.dumps(wanted, sort_keys=True)})
        field_id = dataset.lance_schema.field("metadata").id()
        operation = lance.LanceOperation.UpdateConfig(field_metadata_updates={field_id: change})
        try:
            lance.LanceDataset.commit(dataset, operation, read_version=dataset.version, max_retries=0)
        except CommitConflictError:  # another writer committed a map meanwhile: re-read, merge, retry
            continue
        except OSError as exc:  # that version's manifest was written meanwhile
            if "exist" not in str(exc).lower() and "conflict" not in str(exc).lower():
                raise
            continue
        table.checkout_latest()
        return
    raise RuntimeError(f"could not record metadata field types after {attempts} concurrent updates")


def _update_field_map_remote(
    table: Any, update: Callable[[FieldTypes, Callable[[], list[str | None]]], FieldTypes], attempts: int
) -> None:
    for _ in range(attempts):
        stored = schema_field_types(table.schema, NATIVE)
        wanted = update(
            stored, lambda: table.search().select(["metadata"]).limit(None).to_arrow().column("metadata").to_pylist()
        )
        if wanted == stored:
            return
        try:
            table.update_field_metadata(
                {"path": "metadata", "metadata": {FIELDS_KEY: json.dumps(wanted, sort_keys=True)}}
            )
            return
        except RuntimeError as exc:  # another writer updated the map meanwhile: re-read, merge, retry
            if "Incompatible transaction" not in str(exc):
                raise
            table.checkout_latest()
    raise RuntimeError(f"could not record metadata field types after {attempts} concurrent updates")


def _check_new(table: Any, ids: Sequence[str], table_name: str) -> None:
    """Raise :class:`DuplicateIdError` if ``table`` holds any of ``ids``."""
    sql = to_sql(parse_filter({"id": {"$in": list(ids)}}), {})
    taken = table.search().where(sql).select(["id"]).limit(1).to_arrow()
    if len(taken):
        raise DuplicateIdError(
            f"id {taken.column('id')[0].as_py()!r} is already in table {table_name!r}; add with upsert=True to replace it"
        )


def _first_repeat(ids: Sequence[str], seen: set[str]) -> str | None:
    """Add ``ids`` to ``seen``; the first one that was already there (or repeats in ``ids``)."""
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return None
