"""Upgrade a single-vector LanceDB table to SMART in place: :func:`upgrade_table`.

A table written by LanceDB's LlamaIndex store, its LangChain store or plain LanceDB code
(an id, a text and a pooled vector per row) gains ``tokens``, ``n_tokens`` and
``tokens_text_hash`` columns; its rows, columns and the user's own store stay as they were.
:func:`upgrade_table`:

1. checks the table's vectors against the encoder's pooled vectors of the text the store
   embedded (:mod:`.texts`) on a sample, refusing when they differ, unless asked to add this
   encoder's own ``smart_vector`` column;
2. records the encoder fingerprint, the token codec and the column map
   (:class:`~smart_retrievers.store.layout.TableLayout`) in the schema metadata, a metadata-only
   commit the user's store ignores;
3. backfills the new columns (:mod:`.backfill`: new data files beside the old ones, no row
   rewritten, one commit, retried while other writers commit; an interrupted run resumes
   from its checkpoint);
4. gives rows the user's store wrote or changed since (:mod:`.catch_up`) fresh token states,
   in one ``merge_insert`` commit that updates only those columns (retried from the latest
   version when other writers' commits preempt it, its batches kept in the same checkpoint).

Run it again whenever the user's store has added or changed rows.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..codec import DEFAULT_COMPRESSION, fit_codec, parse_preset
from ..encoders import as_encoder
from ..options import DEFAULT_READ_CONSISTENCY
from ..store import (
    FingerprintMismatchError,
    SmartStore,
    TableLayout,
    describe_mismatch,
    load_codec,
    save_codec,
    token_dim_of,
    vectors_block,
)
from ..store.connection import connect
from ..store.creation import table_names
from ..store.layout import SMART_VECTOR, TEXT_HASH, detect_layout, sql_name
from ..store.schema import schema_metadata, stored_codec_ref, stored_fingerprint
from ..validation import check_count
from .backfill import BatchCheckpoint, backfill, checkpoint_path
from .catch_up import catch_up
from .texts import RowEncoder

DEFAULT_MIN_COSINE = 0.99
"""Lowest cosine between a stored vector and the encoder's pooled vector of its text for the vector to be kept."""


class VectorMismatchError(ValueError):
    """The table's vectors are not the encoder's pooled vectors (another model, prompt or truncation)."""


@dataclass
class UpgradeReport:
    """What :func:`upgrade_table` did.

    Attributes:
        rows: rows in the table after the call.
        backfilled: rows given token states by the column addition (0 when the columns existed).
        caught_up: rows without token states (written by the user's store since) that were given them.
        refreshed: rows whose text changed since they got their token states, re-encoded.
        vector_column: the column SMART reads pooled vectors from.
        min_cosine: the lowest cosine between stored and re-encoded vectors on the sample
            (None when not checked: a resumed upgrade, or ``reencode_vectors``).
        bytes_before / bytes_after: the table's size on disk.
        seconds: the whole call.
    """

    rows: int = 0
    backfilled: int = 0
    caught_up: int = 0
    refreshed: int = 0
    vector_column: str = "vector"
    min_cosine: float | None = None
    bytes_before: int = 0
    bytes_after: int = 0
    seconds: float = 0.0

    @property
    def bytes_per_row(self) -> float:
        """Bytes the upgrade added per row."""
        return (self.bytes_after - self.bytes_before) / max(self.rows, 1)


def upgrade_table(
    uri: str,
    table: str,
    encoder: Any = None,
    *,
    text_column: str = "text",
    vector_column: str = "vector",
    id_column: str = "id",
    metadata_column: str | None = "metadata",
    ref_id_column: str | None = None,
    compression: str | None = None,
    reencode_vectors: bool = False,
    sample: int = 16,
    min_cosine: float = DEFAULT_MIN_COSINE,
    batch_size: int = 256,
    checkpoint_dir: str | Path | None = None,
    show_progress: bool | None = None,
    storage_options: Mapping[str, str] | None = None,
    **connect_kwargs: Any,
) -> UpgradeReport:
    """Give an existing single-vector LanceDB table SMART token states, in place.

    Run it again after the user's store has written: rows it added get token states, and rows
    whose text it changed get fresh ones (each row records a hash of the text its states
    were computed from). For a LanceDB LlamaIndex table the text encoded is the one
    LlamaIndex embedded: the node's metadata lines and its text (``MetadataMode.EMBED``).

    Args:
        uri / table: the LanceDB database and table (local, or ``s3://``... with ``storage_options``).
        encoder: the SMART encoder (None: the bundled all-MiniLM-L6-v2; a model path or id).
            It must be the model that wrote the table's vectors, unless ``reencode_vectors``.
        text_column / vector_column / id_column: the table's columns (LanceDB's LlamaIndex
            and LangChain stores use the defaults).
        metadata_column: a struct column of filterable metadata (used if the table has it).
        ref_id_column: the source-document id column (None: LlamaIndex's ``doc_id`` if it
            holds strings).
        compression: the token codec preset (None: the package default; "none": float16).
        reencode_vectors: when the table's vectors are another model's, add a
            ``smart_vector`` column with this encoder's pooled vectors (the user's store
            keeps its own) instead of refusing.
        sample: rows whose vectors are checked.
        min_cosine: the lowest cosine a sampled vector may have with the encoder's.
        batch_size: rows encoded per batch.
        checkpoint_dir: where an interrupted run keeps its finished batches (default: the
            package cache directory).
        show_progress: a progress bar (None: when stderr is a terminal or the job is long).

    Raises:
        ValueError: a missing column or one of the wrong type; a table written by
            smart-retrievers itself (nothing to upgrade).
        VectorMismatchError: the sampled vectors are not this encoder's.
        FingerprintMismatchError: the table was (partly) upgraded with another encoder.
        UpgradeConflictError: other writers kept committing while the upgrade tried to
            (nothing lost; run it again).
    """
    start = time.perf_counter()
    check_count("batch_size", batch_size)
    check_count("sample", sample)
    if not 0.0 < min_cosine <= 1.0:
        raise ValueError(f"min_cosine must be in (0, 1], got {min_cosine!r}")
    preset = compression or DEFAULT_COMPRESSION
    if preset != "none":
        parse_preset(preset)
    db = connect(str(uri), storage_options, DEFAULT_READ_CONSISTENCY, **connect_kwargs)
    if table not in table_names(db):
        raise ValueError(f"no table {table!r} at {uri}; upgrade() works on an existing LanceDB table")
    lance_table = db.open_table(table)
    encoder = as_encoder(encoder)
    fingerprint = dict(encoder.fingerprint)
    report = UpgradeReport(bytes_before=lance_table.stats()["total_bytes"])

    recorded = stored_fingerprint(lance_table.schema)
    layout = TableLayout.from_schema(lance_table.schema)
    if recorded is not None and layout.native:
        raise ValueError(f"table {table!r} at {uri} was written by smart-retrievers: it has token states already")
    if recorded is not None:  # upgraded before (or interrupted): keep what it recorded
        if describe_mismatch(recorded, fingerprint):
            raise FingerprintMismatchError(
                f"table {table!r} at {uri} was upgraded with encoder {recorded}, not {fingerprint} "
                f"({describe_mismatch(recorded, fingerprint)}); upgrade it with the same model"
            )
        codec_ref = stored_codec_ref(lance_table.schema)
        codec = load_codec(db, codec_ref)
        recorded_preset = codec.preset if codec else "none"
        if compression is not None and compression != recorded_preset:
            raise ValueError(
                f"table {table!r} at {uri} is upgraded with compression {recorded_preset!r}, not {compression!r}; "
                "run upgrade without compression= to finish or extend it"
            )
        rows = RowEncoder(encoder, layout, token_dim_of(fingerprint), codec)
    else:
        layout = detect_layout(
            lance_table.schema,
            id_column=id_column,
            text_column=text_column,
            vector_column=vector_column,
            metadata_column=metadata_column,
            ref_id_column=ref_id_column,
        )
        rows = RowEncoder(encoder, layout, token_dim_of(fingerprint), None)
        sampled = _sample_rows(lance_table, layout, rows.source_columns, max(sample, 64))  # vector check, codec
        if not reencode_vectors:
            _check_dimension(sampled.column(layout.vector), layout, encoder.fingerprint["dim"])
        encodings = encoder.encode_documents(rows.texts(sampled), show_progress=False)
        if reencode_vectors:
            layout = replace(layout, vector=SMART_VECTOR)
        else:
            report.min_cosine = _check_vectors(sampled.slice(0, sample), encodings[:sample], layout, min_cosine)
        codec = fit_codec(preset, [e.tokens for e in encodings], encoder) if preset != "none" else None
        codec_ref = save_codec(db, table, codec) if codec is not None else None
        lance_table.to_lance().update_schema_metadata(schema_metadata(fingerprint, codec_ref, layout))  # one commit
        lance_table.checkout_latest()
        rows = RowEncoder(encoder, layout, token_dim_of(fingerprint), codec)

    report.vector_column = layout.vector
    names = lance_table.schema.names
    settings = [fingerprint, codec_ref, str(rows.schema), rows.source_columns]
    checkpoint = BatchCheckpoint(checkpoint_path(checkpoint_dir, uri, table, settings))
    if "tokens" not in names:
        report.backfilled = backfill(lance_table, rows, checkpoint, batch_size=batch_size, show_progress=show_progress)
    elif TEXT_HASH not in names:  # upgraded before hashes were recorded: every row's states are re-encoded once
        lance_table.add_columns(pa.schema([rows.schema.field(TEXT_HASH)]))
    pending = catch_up(lance_table, rows, checkpoint, batch_size, show_progress)
    checkpoint.remove()
    report.caught_up, report.refreshed = pending.new, pending.changed
    info = SmartStore.open_existing(uri, table, storage_options=storage_options, **connect_kwargs).describe()
    report.rows, report.bytes_after = info.rows, info.table_bytes
    report.seconds = time.perf_counter() - start
    return report


def _sample_rows(lance_table: Any, layout: TableLayout, sources: Sequence[str], n: int) -> pa.Table:
    """Up to ``n`` rows with a text: their ``sources`` (what was embedded) and stored vector."""
    text = sql_name(layout.text)
    rows = (
        lance_table.search()
        .where(f"{text} IS NOT NULL AND {text} <> ''")
        .select(list(dict.fromkeys([*sources, layout.vector])))
        .limit(n)
        .to_arrow()
    )
    if not len(rows):
        raise ValueError("the table has no row with a text to encode")
    return rows


def _mismatch_hint(layout: TableLayout) -> str:
    return (
        "pass reencode_vectors=True (smart-retrievers upgrade --reencode-vectors) to add this encoder's own "
        f"{SMART_VECTOR!r} column (your store keeps {layout.vector!r}), or upgrade with the model that wrote them"
    )


def _check_dimension(vectors: pa.ChunkedArray, layout: TableLayout, dim: int) -> None:
    if vectors.type.list_size != dim:
        raise VectorMismatchError(
            f"column {layout.vector!r} holds {vectors.type.list_size}-d vectors; this encoder's are {dim}-d: "
            + _mismatch_hint(layout)
        )


def _check_vectors(rows: pa.Table, encodings: Sequence[Any], layout: TableLayout, min_cosine: float) -> float:
    """The lowest cosine between the rows' stored vectors and the encoder's; raises when below ``min_cosine``."""
    stored = vectors_block(rows.column(layout.vector)).numpy()
    encoded = np.stack([e.pooled for e in encodings]).astype(np.float32)
    cosine = np.sum(stored * encoded, axis=1) / np.maximum(
        np.linalg.norm(stored, axis=1) * np.linalg.norm(encoded, axis=1), 1e-12
    )
    lowest = float(cosine.min())
    if lowest < min_cosine:
        raise VectorMismatchError(
            f"column {layout.vector!r} does not hold this encoder's pooled vectors: over {len(rows)} sampled rows "
            f"the cosine with the re-encoded text is as low as {lowest:.3f} (median {float(np.median(cosine)):.3f}, "
            f"needed {min_cosine}). {_mismatch_hint(layout)}"
        )
    return lowest
