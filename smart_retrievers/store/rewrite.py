"""Rewriting a table's token states (another adapter, another codec) in one overwrite commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
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
"""A batch of stored rows -> its new ``(tokens, n_tokens)`` columns."""


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
    """Rewrite ``tokens`` / ``n_tokens`` of every row of table ``name`` from ``table``'s current version.

    The other columns and their field metadata are kept; the schema records ``fingerprint``
    and ``codec`` (saved in the codec table). One overwrite commit: readers see the old
    table or the new one, and a failure (re-raised as the transform's own error) leaves the
    old version in place. Indices are not carried over (logged). Returns the number of rows
    and the new codec reference.
    """
    snapshot = db.open_table(name)
    snapshot.checkout(table.version)  # the version we start from, whatever commits meanwhile
    n_rows = snapshot.count_rows()
    lost_indices = [i.name for i in table.list_indices()]
    stored_schema = snapshot.schema
    rows = snapshot.search().select(stored_schema.names).limit(None).to_batches(batch_size)
    # the reader's types (e.g. JSON as arrow.json, not Lance's storage type), the table's
    # field metadata (known metadata fields), the new token type and fingerprint
    fields = []
    for f in rows.schema:
        if f.name == "tokens":
            f = pa.field("tokens", tokens_type(token_dim_of(fingerprint), codec))
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
    codec_ref = save_codec(db, name, codec) if codec is not None else None
    metadata.update({k.encode(): v.encode() for k, v in schema_metadata(fingerprint, codec_ref).items()})
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
                        [replaced.get(column, batch.column(column)) for column in schema.names], schema=schema
                    )
                    bar.update(len(batch))
        except BaseException as exc:
            failure.append(exc)
            raise

    try:
        db.create_table(
            name, data=pa.RecordBatchReader.from_batches(schema, batches()), schema=schema, mode="overwrite"
        )
    except Exception as exc:
        if failure:  # surface the transform's own error, not Arrow's wrapper
            raise failure[0] from exc
        raise
    if lost_indices:
        logger.warning("replace_tokens: the overwrite dropped indices %s; rebuild them", lost_indices)
    return n_rows, codec_ref
