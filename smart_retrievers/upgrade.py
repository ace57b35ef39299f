"""Upgrade a single-vector LanceDB table to SMART in place.

A table written by LanceDB's LlamaIndex store, its LangChain store or plain LanceDB code
(an id, a text and a pooled vector per row) gains ``tokens`` and ``n_tokens`` columns; its
rows, columns and the user's own store stay as they were. :func:`upgrade_table`:

1. checks the table's vectors against the encoder's pooled vectors on a sample (refusing
   when they differ, unless asked to add this encoder's own ``smart_vector`` column);
2. records the encoder fingerprint, the token codec and the column map
   (:class:`~smart_retrievers.store.layout.TableLayout`) in the schema metadata, a metadata-only
   commit the user's store ignores;
3. backfills the new columns with Lance's own column addition (``add_columns`` with a batch
   UDF: new data files beside the old ones, no row rewritten), batch by batch, committed
   once. An interrupted run commits nothing; its finished batches are kept in a local
   checkpoint, so that the next run resumes from them;
4. gives rows the user's store wrote since (their ``tokens`` are null) their token states,
   in one ``merge_insert`` commit that updates only those columns.

Run it again whenever the user's store has added rows.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from .cache import default_cache_dir
from .codec import DEFAULT_COMPRESSION, TokenCodec, fit_codec, parse_preset
from .encoders import as_encoder
from .options import DEFAULT_READ_CONSISTENCY
from .progress import progress_on
from .store import (
    FingerprintMismatchError,
    SmartStore,
    TableLayout,
    describe_mismatch,
    load_codec,
    n_tokens_column,
    save_codec,
    stream_into,
    token_dim_of,
    tokens_to_arrow,
    tokens_type,
    vectors_block,
    vectors_to_arrow,
)
from .store.connection import connect
from .store.layout import SMART_VECTOR, detect_layout
from .store.schema import schema_metadata, stored_codec_ref, stored_fingerprint
from .validation import check_count

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
        caught_up: rows written since an earlier upgrade that were given token states.
        vector_column: the column SMART reads pooled vectors from.
        min_cosine: the lowest cosine between stored and re-encoded vectors on the sample
            (None when not checked: a resumed upgrade, or ``reencode_vectors``).
        bytes_before / bytes_after: the table's size on disk.
        seconds: the whole call.
    """

    rows: int = 0
    backfilled: int = 0
    caught_up: int = 0
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
    if table not in db.table_names():
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
        codec = load_codec(db, stored_codec_ref(lance_table.schema))
        recorded_preset = codec.preset if codec else "none"
        if compression is not None and compression != recorded_preset:
            raise ValueError(
                f"table {table!r} at {uri} is upgraded with compression {recorded_preset!r}, not {compression!r}; "
                "run upgrade without compression= to finish or extend it"
            )
    else:
        layout = detect_layout(
            lance_table.schema,
            id_column=id_column,
            text_column=text_column,
            vector_column=vector_column,
            metadata_column=metadata_column,
            ref_id_column=ref_id_column,
        )
        rows = _sample_rows(lance_table, layout, max(sample, 64))  # the vector check's rows, then the codec's
        if not reencode_vectors:
            _check_dimension(rows.column(layout.vector), layout, encoder.fingerprint["dim"])
        encodings = encoder.encode_documents(rows.column(layout.text).to_pylist(), show_progress=False)
        if reencode_vectors:
            layout = replace(layout, vector=SMART_VECTOR)
        else:
            report.min_cosine = _check_vectors(rows.slice(0, sample), encodings[:sample], layout, min_cosine)
        codec = fit_codec(preset, [e.tokens for e in encodings], encoder) if preset != "none" else None
        codec_ref = save_codec(db, table, codec) if codec is not None else None
        lance_table.to_lance().update_schema_metadata(schema_metadata(fingerprint, codec_ref, layout))  # one commit
        lance_table.checkout_latest()

    report.vector_column = layout.vector
    encode = _Encode(encoder, layout, token_dim_of(fingerprint), codec)
    if "tokens" not in lance_table.schema.names:
        report.backfilled = _backfill(lance_table, encode, batch_size, checkpoint_dir, uri, table, show_progress)
        lance_table.checkout_latest()
    report.caught_up = _catch_up(lance_table, encode, batch_size, show_progress)
    info = SmartStore.open_existing(uri, table, storage_options=storage_options, **connect_kwargs).describe()
    report.rows, report.bytes_after = info.rows, info.table_bytes
    report.seconds = time.perf_counter() - start
    return report


class _Encode:
    """Texts to the new columns' Arrow arrays: ``tokens``, ``n_tokens`` (and ``smart_vector``)."""

    def __init__(self, encoder: Any, layout: TableLayout, token_dim: int, codec: TokenCodec | None) -> None:
        self.encoder, self.layout, self.token_dim, self.codec = encoder, layout, token_dim, codec
        fields = [pa.field("tokens", tokens_type(token_dim, codec)), pa.field("n_tokens", pa.int32())]
        if layout.vector == SMART_VECTOR:
            fields.append(pa.field(SMART_VECTOR, pa.list_(pa.float32(), encoder.fingerprint["dim"])))
        self.schema = pa.schema(fields)

    def __call__(self, texts: list[str | None]) -> list[pa.Array]:
        encodings = self.encoder.encode_documents([t or "" for t in texts], show_progress=False)
        tokens = tokens_to_arrow([e.tokens for e in encodings], self.token_dim, self.codec)
        columns = [tokens, n_tokens_column(tokens)]
        if self.layout.vector == SMART_VECTOR:
            columns.append(vectors_to_arrow(np.stack([e.pooled for e in encodings])))
        return columns


def _sample_rows(lance_table: Any, layout: TableLayout, n: int) -> pa.Table:
    """Up to ``n`` rows with a text: their text and stored vector."""
    rows = (
        lance_table.search()
        .where(f"{layout.text} IS NOT NULL AND {layout.text} <> ''")
        .select([layout.text, layout.vector])
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


def _checkpoint_path(
    checkpoint_dir: str | Path | None, uri: str, table: str, lance_table: Any, schema: pa.Schema
) -> Path:
    """A local checkpoint file for this table, encoder and codec (the recorded schema metadata)."""
    key = json.dumps(
        [
            str(uri),
            table,
            json.dumps(stored_fingerprint(lance_table.schema), sort_keys=True),
            stored_codec_ref(lance_table.schema) or "",
            str(schema),
        ]
    )
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else default_cache_dir() / "upgrade"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.sqlite"


def _backfill(
    lance_table: Any,
    encode: _Encode,
    batch_size: int,
    checkpoint_dir: str | Path | None,
    uri: str,
    table: str,
    show_progress: bool | None,
) -> int:
    """Add the new columns to every row with Lance's ``add_columns`` (one commit); rows encoded."""
    import lance

    dataset = lance_table.to_lance()
    total = sum(f.physical_rows for f in dataset.get_fragments())  # add_columns sees deleted rows too
    checkpoint = _checkpoint_path(checkpoint_dir, uri, table, lance_table, encode.schema)
    bar = tqdm(total=total, disable=not progress_on(show_progress, total), desc="Upgrading", unit="row")
    failure: list[BaseException] = []

    def columns(batch: pa.RecordBatch) -> pa.RecordBatch:
        try:
            result = pa.RecordBatch.from_arrays(encode(batch.column(0).to_pylist()), schema=encode.schema)
        except BaseException as exc:  # Lance wraps it in an OSError: keep the real one (Ctrl-C too)
            failure.append(exc)
            raise
        bar.update(len(batch))
        return result

    udf = lance.batch_udf(output_schema=encode.schema, checkpoint_file=checkpoint)(columns)
    with bar:
        try:
            dataset.add_columns(udf, read_columns=[encode.layout.text], batch_size=batch_size)
        except Exception as exc:
            if failure:
                raise failure[0] from exc
            raise
    checkpoint.unlink(missing_ok=True)
    return total


def _catch_up(lance_table: Any, encode: _Encode, batch_size: int, show_progress: bool | None) -> int:
    """Give rows without token states (written by the user's store since) theirs, in one commit."""
    layout = encode.layout
    n = lance_table.count_rows("tokens IS NULL")
    if n == 0:
        return 0
    rows = (
        lance_table.search().where("tokens IS NULL").select([layout.id, layout.text]).limit(None).to_batches(batch_size)
    )
    schema = pa.schema([pa.field(layout.id, pa.string()), *encode.schema])

    def batches() -> Iterator[pa.RecordBatch]:
        with tqdm(total=n, disable=not progress_on(show_progress, n), desc="Upgrading new rows", unit="row") as bar:
            for batch in rows:
                columns = encode(batch.column(layout.text).to_pylist())
                yield pa.RecordBatch.from_arrays([batch.column(layout.id).cast(pa.string()), *columns], schema=schema)
                bar.update(len(batch))

    stream_into(
        schema,
        batches(),
        lambda batch: [batch],
        lance_table.merge_insert(layout.id).when_matched_update_all().execute,
    )
    return n
