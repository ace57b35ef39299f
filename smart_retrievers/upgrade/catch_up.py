"""The catch-up: rows whose token states are missing or stale get fresh ones, in one commit.

A row needs new token states when the user's store wrote it after the backfill (its token
columns are null) or changed its text since (the hash of its text, rebuilt as the store
embedded it, differs from the ``tokens_text_hash`` recorded with its states). Every run reads
each row's text to compare the hashes; only those rows are encoded, and one ``merge_insert``
on the id column updates just the token columns.

LanceDB retries that commit itself when other writers' commits preempt it. One it gives up on, or
that another writer made impossible (a restore, an overwrite), is retried here from the latest
version (the rows pending there, each batch reused from the checkpoint), up to :data:`ATTEMPTS`
times; then :class:`~.backfill.UpgradeConflictError` says what happened and that a re-run finishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from tqdm.auto import tqdm

from ..progress import progress_on
from ..store import stream_into
from ..store.errors import is_commit_conflict
from ..store.layout import TEXT_HASH
from .backfill import BatchCheckpoint, UpgradeConflictError, batch_key
from .texts import RowEncoder, text_hash

__all__ = ["ATTEMPTS", "Pending", "catch_up", "pending_rows"]

ATTEMPTS = 3
"""Catch-up commits tried, each from the latest version, before :class:`UpgradeConflictError`."""


@dataclass
class Pending:
    """Rows to encode: their ids and texts; ``new`` of them had no token states, the others a changed text."""

    ids: list[Any] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    new: int = 0

    @property
    def changed(self) -> int:
        return len(self.ids) - self.new


def pending_rows(lance_table: Any, rows: RowEncoder, batch_size: int) -> Pending:
    """The rows of ``lance_table`` without token states or whose text changed since they got them."""
    id_column = rows.layout.id
    columns = list(dict.fromkeys([id_column, *rows.source_columns, TEXT_HASH]))
    pending = Pending()
    for batch in lance_table.to_lance().to_batches(columns=columns, batch_size=batch_size):
        recorded = batch.column(TEXT_HASH).to_pylist()
        texts = rows.texts(batch)
        for row_id, text, stored in zip(batch.column(id_column).to_pylist(), texts, recorded, strict=True):
            if stored is None or stored != text_hash(text):
                pending.ids.append(row_id)
                pending.texts.append(text)
                pending.new += stored is None
    return pending


def catch_up(
    lance_table: Any, rows: RowEncoder, checkpoint: BatchCheckpoint, batch_size: int, show_progress: bool | None
) -> Pending:
    """Give the rows that need them (:func:`pending_rows`) token states in one ``merge_insert`` commit; returns them.

    Rows deleted meanwhile stay deleted. A commit lost to other writers is retried from the latest
    version, reusing the encoded batches kept in ``checkpoint``. Raises :class:`UpgradeConflictError`
    when :data:`ATTEMPTS` commits were lost (nothing of the catch-up committed).
    """
    lost: Exception | None = None
    for _ in range(ATTEMPTS):
        lance_table.checkout_latest()
        pending = pending_rows(lance_table, rows, batch_size)
        try:
            _merge(lance_table, rows, pending, checkpoint, batch_size, show_progress)
            return pending
        except Exception as exc:
            if not is_commit_conflict(exc):
                raise
            lost = exc
    raise UpgradeConflictError(
        f"the upgrade of table {lance_table.name!r} could not commit the token states of the "
        f"{len(pending.ids)} rows written or changed since its backfill: other writers' commits preempted "
        f"each of its {ATTEMPTS} tries (last: {lost}). Nothing was lost and nothing of it is half-written "
        "(those rows keep their earlier states, or none): run upgrade again, when the writes are quieter, "
        "to finish it"
    ) from lost


def _merge(
    lance_table: Any,
    rows: RowEncoder,
    pending: Pending,
    checkpoint: BatchCheckpoint,
    batch_size: int,
    show_progress: bool | None,
) -> None:
    """One ``merge_insert`` of the ``pending`` rows' new columns, each batch encoded once (``checkpoint``)."""
    if not pending.ids:
        return
    schema = pa.schema([pa.field(rows.layout.id, pa.string()), *rows.schema])
    n = len(pending.ids)

    def batches() -> Iterator[pa.RecordBatch]:
        with tqdm(total=n, disable=not progress_on(show_progress, n), desc="Upgrading changed rows", unit="row") as bar:
            for start in range(0, n, batch_size):
                ids = pa.array(pending.ids[start : start + batch_size]).cast(pa.string())
                texts = pending.texts[start : start + batch_size]
                key = batch_key(texts)
                columns = checkpoint.get(key)
                if columns is None:
                    columns = rows.encode(texts)
                    checkpoint.put(key, columns)
                yield pa.RecordBatch.from_arrays([ids, *columns.columns], schema=schema)
                bar.update(len(ids))

    stream_into(
        schema,
        batches(),
        lambda batch: [batch],
        lance_table.merge_insert(rows.layout.id).when_matched_update_all().execute,
    )
