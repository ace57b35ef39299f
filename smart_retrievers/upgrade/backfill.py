"""The backfill: every row of an upgraded table gains its token columns, without a row being rewritten.

Each fragment gets new data files beside its own (Lance's ``LanceFragment.merge_columns``: only
the new columns are written), and one Lance ``Merge`` commits them all (its new columns are nullable, so the handles of the user's
store keep appending after it, as after Lance's own ``add_columns``). Nothing is committed
before it, so an interrupted run leaves the table as it was; its finished batches are kept in a
local checkpoint and the next run reuses them.

The checkpoint is content-addressed: a batch's result is stored under a hash of the texts it
was computed from (with the encoder, codec and table in the file's key), so it is reused only for
exactly those texts. A table replaced since, or a row the user's store deleted or updated in
a checkpointed batch, changes that batch's texts: that batch is encoded again, the others are
reused (Lance's own ``add_columns`` checkpoint, keyed on fragment and batch numbers, gave the
replaced table's rows another text's states and failed on a changed batch).

Other writers may commit meanwhile (the user's store keeps appending): the ``Merge`` is then
retried on the latest version, reusing every fragment computed (rows deleted meanwhile stay
deleted); fragments written meanwhile are committed as they are, with null token columns, and
the catch-up step (:mod:`.catch_up`) gives them their states.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow as pa
from tqdm.auto import tqdm

from ..cache import default_cache_dir
from ..progress import progress_on
from .texts import RowEncoder, text_hash

__all__ = ["MAX_ATTEMPTS", "BatchCheckpoint", "UpgradeConflictError", "backfill", "batch_key", "checkpoint_path"]

MAX_ATTEMPTS = 10
"""Commits the backfill tries before giving up (each failed one means another writer committed meanwhile)."""
RETRY_PAUSE = 0.05
"""Seconds: before try n, a random pause of up to n times this."""


class UpgradeConflictError(RuntimeError):
    """Other writers kept committing while the upgrade tried to: nothing was lost, and a re-run finishes."""


class BatchCheckpoint:
    """Encoded batches on local disk (SQLite), each under the hash of the texts it was computed from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with closing(self._connect()) as db, db:
            db.execute("CREATE TABLE IF NOT EXISTS batches (texts TEXT PRIMARY KEY, result BLOB)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def get(self, key: str) -> pa.RecordBatch | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT result FROM batches WHERE texts = ?", (key,)).fetchone()
        return None if row is None else pa.ipc.open_stream(row[0]).read_next_batch()

    def put(self, key: str, batch: pa.RecordBatch) -> None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        with closing(self._connect()) as db, db:
            db.execute("INSERT OR REPLACE INTO batches VALUES (?, ?)", (key, sink.getvalue().to_pybytes()))

    def __len__(self) -> int:
        with closing(self._connect()) as db:
            return db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def checkpoint_path(checkpoint_dir: str | Path | None, uri: str, table: str, settings: Sequence[Any]) -> Path:
    """The checkpoint file of this table and these ``settings`` (encoder, codec, columns).

    A table has one checkpoint: files of its earlier settings (another codec, a replaced
    table's) are removed.
    """
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else default_cache_dir() / "upgrade"
    folder.mkdir(parents=True, exist_ok=True)
    prefix = _digest([str(uri), table])
    path = folder / f"{prefix}-{_digest([json.dumps(s, sort_keys=True, default=str) for s in settings])}.sqlite"
    for stale in folder.glob(f"{prefix}-*.sqlite"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return path


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(parts)).encode()).hexdigest()[:24]


def batch_key(texts: Sequence[str]) -> str:
    """The checkpoint key of a batch: a hash of the texts it is computed from, in order."""
    return _digest([text_hash(t) for t in texts])


def backfill(
    lance_table: Any,
    rows: RowEncoder,
    checkpoint: BatchCheckpoint,
    *,
    batch_size: int,
    show_progress: bool | None,
) -> int:
    """Give every row of ``lance_table`` the new columns in one ``Merge`` commit; returns the rows encoded or reused.

    Raises :class:`UpgradeConflictError` when other writers preempted it :data:`MAX_ATTEMPTS`
    times (nothing of the backfill committed; the checkpoint keeps its work).
    """
    import lance  # noqa: PLC0415 (pylance comes with lancedb)
    from lance.udf import BatchUDF  # noqa: PLC0415

    dataset = lance_table.to_lance()
    total = dataset.count_rows()
    failure: list[BaseException] = []
    bar = tqdm(total=total, disable=not progress_on(show_progress, total), desc="Upgrading", unit="row")

    def new_columns(batch: pa.RecordBatch) -> pa.RecordBatch:
        try:
            texts = rows.texts(batch)
            key = batch_key(texts)
            result = checkpoint.get(key)
            if result is None:
                result = rows.encode(texts)
                checkpoint.put(key, result)
        except BaseException as exc:  # Lance wraps it in an OSError: keep the real one (Ctrl-C too)
            failure.append(exc)
            raise
        bar.update(len(batch))
        return result

    udf = BatchUDF(new_columns, output_schema=rows.schema)
    computed: dict[int, Any] = {}  # fragment id -> its metadata with the new columns
    schema = None  # the Lance schema merge_columns gave (the table's, with the new columns)
    user_columns = dataset.schema.names
    with bar:
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0, RETRY_PAUSE * attempt))  # out of step with a writer's rhythm
                lance_table.checkout_latest()
                dataset = lance_table.to_lance()
                if dataset.schema.names != user_columns:
                    raise UpgradeConflictError(_conflict_message(lance_table, "the table's columns changed meanwhile"))
            fragments = []
            for fragment in dataset.get_fragments():
                meta, done = fragment.metadata, computed.get(fragment.fragment_id)
                if done is not None and _paths(done)[: len(meta.files)] == _paths(meta):
                    done.deletion_file = meta.deletion_file  # rows deleted meanwhile stay deleted
                    fragments.append(done)
                elif attempt == 0:
                    try:
                        done, schema = fragment.merge_columns(udf, columns=rows.source_columns, batch_size=batch_size)
                    except Exception as exc:
                        raise (failure[0] if failure else exc) from exc
                    computed[fragment.fragment_id] = done
                    fragments.append(done)
                else:  # written (or rewritten) meanwhile: the catch-up gives it token states
                    fragments.append(meta)
            if schema is None:  # no rows: the columns alone
                dataset.add_columns(rows.schema)
                return 0
            if _commit(lance, dataset, lance.LanceOperation.Merge(fragments, schema, preserves_nullability=True)):
                lance_table.checkout_latest()
                return total
    raise UpgradeConflictError(
        _conflict_message(lance_table, f"other writers committed before each of its {MAX_ATTEMPTS} tries")
    )


def _commit(lance: Any, dataset: Any, operation: Any) -> bool:
    """Commit ``operation`` on ``dataset``'s version; False when another writer committed first."""
    from lance.commit import CommitConflictError  # noqa: PLC0415

    try:
        lance.LanceDataset.commit(dataset, operation, read_version=dataset.version, max_retries=0)
    except CommitConflictError:
        return False
    except OSError as exc:  # the manifest of that version was written meanwhile
        if "conflict" not in str(exc).lower():
            raise
        return False
    return True


def _conflict_message(lance_table: Any, why: str) -> str:
    return (
        f"the upgrade of table {lance_table.name!r} could not commit its token states: {why}. Nothing was lost "
        "and nothing of the upgrade is half-written (its finished batches are kept on local disk): run upgrade "
        "again, when the writes are quieter, to finish it"
    )


def _paths(meta: Any) -> list[str]:
    return [f.path for f in meta.files]
