"""Token-state upkeep of a written table: the codec (fit, recompress) and re-encoding with another adapter.

Every rewrite goes through :meth:`SmartStore.replace_tokens <smart_retrievers.store.SmartStore.replace_tokens>`:
only the token columns are rewritten and swapped in by one commit, so readers see the old states or the new
ones, never a mix, and rows other writers commit meanwhile are kept (and coded too).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from ..codec import TokenCodec, fit_and_code, fit_codec
from ..encoders.loading import load_adapter
from ..store import Record, SmartStore, n_tokens_column, tokens_from_arrow, tokens_to_arrow

__all__ = ["adapter_encoder", "code_first_batch", "fit_texts_codec", "recompress", "reindex_tokens", "set_fitted_codec"]

Transform = Callable[[pa.RecordBatch], tuple[pa.Array, pa.Array]]


def set_fitted_codec(
    store: SmartStore, tokens: Sequence[np.ndarray], encoder: Any, preset: str | None = None
) -> TokenCodec:
    """Fit ``preset`` (default: the store's compression) on these token states and make it the table's codec."""
    codec = fit_codec(preset or store.compression, tokens, encoder)
    store.set_codec(codec)
    return codec


def code_first_batch(store: SmartStore, records: Sequence[Record], encoder: Any) -> list[Record]:
    """Fit the table's codec on its first write batch and return the batch already coded by it
    (each document is pooled once, for the fit and for its codes)."""
    codec, codes = fit_and_code(store.compression, [r.encoding.tokens for r in records], encoder)
    store.set_codec(codec)
    return [replace(r, encoding=replace(r.encoding, tokens=c)) for r, c in zip(records, codes)]


def fit_texts_codec(store: SmartStore, encoder: Any, sample_texts: Sequence[str]) -> TokenCodec:
    """Fit the table's codec on ``sample_texts`` (encoded as documents) before its first write."""
    if store.table is not None:
        raise ValueError("the table already holds rows and a codec; use recompress() to change it")
    if store.compression == "none":
        raise ValueError("this index stores float16 token states (compression='none'); there is no codec to fit")
    texts = list(sample_texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("fit_codec() needs a non-empty sequence of texts")
    return set_fitted_codec(store, [e.tokens for e in encoder.encode_documents(texts)], encoder)


def adapter_encoder(encoder: Any, adapter_or_encoder: Any) -> Any:
    """The encoder to re-encode with: ``adapter_or_encoder`` itself, or a copy of ``encoder`` with that adapter
    (a :class:`~smart_retrievers.adapter.SmartAdapter`, its directory, or None for the plain states)."""
    if hasattr(adapter_or_encoder, "encode_documents"):
        return adapter_or_encoder
    adapter = load_adapter(
        adapter_or_encoder, encoder.base_fingerprint, encoder.device, state_dim=getattr(encoder, "_state_dim", None)
    )
    swapped = copy.copy(encoder)  # shares the loaded model
    swapped.adapter = adapter
    return swapped


def _tokens_columns(tokens: Sequence[np.ndarray], dim: int, codec: TokenCodec | None) -> tuple[pa.Array, pa.Array]:
    column = tokens_to_arrow(tokens, dim, codec)
    return column, n_tokens_column(column)


def reindex_tokens(
    store: SmartStore, encoder: Any, *, batch_size: int = 1024, show_progress: bool | None = None
) -> int:
    """Re-encode every stored text's token states with ``encoder`` (which differs from the table's only by
    its adapter), swapped in by one commit with the new fingerprint. Returns the rows re-encoded.

    Refused before anything is encoded: an upgraded table (its owner's store writes its rows:
    :class:`~smart_retrievers.store.UpgradedTableError`), another model (ValueError), image rows
    (NotImplementedError: they cannot be re-encoded from stored text yet).
    """
    if store.table is not None:
        store.require_native("re-encode the token states of")
    old_fp, new_fp = store.fingerprint, dict(encoder.fingerprint)
    changed = sorted(
        k
        for k in set(old_fp) | set(new_fp)
        if k not in ("adapter", "token_dim", "model") and old_fp.get(k) != new_fp.get(k)
    )
    if changed:
        raise ValueError(
            f"reindex_tokens only swaps the adapter, but the new encoder also changes {changed}; build a new index for another model"
        )
    image_sql = store.modality_sql("image")
    images = 0 if store.table is None or image_sql is None else store.table.count_rows(image_sql)
    if images:
        raise NotImplementedError(
            f"reindex_tokens re-encodes stored texts; the table holds {images} image rows, which it cannot re-encode yet"
        )

    def encode(texts: list[str]) -> list[np.ndarray]:
        return [e.tokens for e in encoder.encode_documents(texts, show_progress=False)]

    codec = None if store.compression == "none" else _fit_on_stored(store, store.compression, encoder, encode)

    def transform(batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array]:
        return _tokens_columns(encode(batch.column("text").to_pylist()), encoder.token_dim, codec)

    return store.replace_tokens(
        transform, new_fp, codec=codec, batch_size=batch_size, show_progress=show_progress, desc="Re-encoding tokens"
    )


def recompress(
    store: SmartStore,
    encoder: Any,
    compression: str,
    *,
    batch_size: int = 1024,
    sample_rows: int = 1024,
    show_progress: bool | None = None,
) -> int:
    """Code a float16 table's stored token states into ``compression`` (fitted on the first ``sample_rows``
    rows), without re-encoding, swapped in by one commit (concurrent writers' rows are kept). Returns the rows rewritten."""
    if compression == "none" or store.compression != "none":
        raise ValueError(
            f"recompress() codes a float16 table; this one is {store.compression!r} and "
            f"{compression!r} was asked (re-encode into a new table to change a codec)"
        )
    if store.table is None:
        store.compression = compression
        return 0
    codec = _fit_on_stored(store, compression, encoder, None, sample_rows=sample_rows)

    def transform(batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array]:
        stored = tokens_from_arrow(batch.column("tokens"))
        return _tokens_columns([stored.item_numpy(i) for i in range(len(stored))], encoder.token_dim, codec)

    return store.replace_tokens(
        transform,
        store.fingerprint,
        codec=codec,
        batch_size=batch_size,
        show_progress=show_progress,
        desc="Compressing tokens",
    )


def _fit_on_stored(
    store: SmartStore,
    preset: str,
    encoder: Any,
    encode: Callable[[list[str]], list[np.ndarray]] | None,
    *,
    sample_rows: int = 1024,
) -> TokenCodec | None:
    """Fit ``preset`` on the first ``sample_rows`` stored rows: their stored float states, or their texts re-encoded."""
    first = next(iter(store.scan(["text", "tokens"], batch_size=sample_rows)), None)
    if first is None:
        return None
    if encode is None:
        stored = tokens_from_arrow(first.column("tokens"))
        tokens = [stored.item_numpy(i) for i in range(len(stored))]
    else:
        tokens = encode(first.column("text").to_pylist())
    return fit_codec(preset, tokens, encoder)
