"""Arrow packing: the only place token states and pooled vectors go to and from Arrow columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from ..codec import TokenCodec
from ..encoding import Encoding
from ..scoring import PackedTokens


@dataclass
class Record:
    """One stored item: what the user gave plus its encodings."""

    id: str
    text: str
    encoding: Encoding
    ref_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    image: str | None = None


def in_order(found: pa.Table, column: str, keys: Sequence[Any]) -> pa.Table:
    """The rows of ``found`` in the order of ``keys`` (values of ``column``; keys not found are skipped)."""
    position = {key: i for i, key in enumerate(found.column(column).to_pylist())}
    return found.take(pa.array([position[k] for k in keys if k in position], pa.int64()))


def vectors_block(column: pa.Array | pa.ChunkedArray) -> torch.Tensor:
    """A ``vector`` column as a float32 tensor (N, d)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False)
    return torch.from_numpy(values.reshape(len(column), column.type.list_size).astype(np.float32))


def vectors_to_arrow(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """(N, d) pooled vectors as a ``vector`` column (float32)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def tokens_type(token_dim: int, codec: TokenCodec | None = None) -> pa.DataType:
    """The ``tokens`` column type: float16 states, or a codec's packed uint8 codes."""
    if codec is None:
        return pa.list_(pa.list_(pa.float16(), token_dim))
    return pa.list_(pa.list_(pa.uint8(), codec.bytes_per_token))


def tokens_to_arrow(tokens: Sequence[np.ndarray], token_dim: int, codec: TokenCodec | None = None) -> pa.ListArray:
    """Ragged (n_i, token_dim) token states as a ``tokens`` column, coded (and pooled) by ``codec`` if given.

    With a codec, items may also come already coded by it (:func:`is_coded`: uint8, one
    row of ``codec.bytes_per_token`` per kept token, e.g. from distributed workers); they
    are stored as they are.
    """
    if codec is not None and tokens and all(is_coded(t, codec) for t in tokens):
        flat = np.concatenate(tokens)
        offsets = np.concatenate([[0], np.cumsum([len(t) for t in tokens])])
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), codec.bytes_per_token)
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), vectors)
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


def n_tokens_column(tokens: pa.ListArray) -> pa.Array:
    """The ``n_tokens`` column of a ``tokens`` column: each row's stored token count (int32).

    >>> n_tokens_column(tokens_to_arrow([np.ones((2, 4)), np.ones((3, 4))], 4)).to_pylist()
    [2, 3]
    """
    return pa.array(np.diff(tokens.offsets.to_numpy()).astype(np.int32))


def is_coded(tokens: np.ndarray, codec: TokenCodec) -> bool:
    """Whether ``tokens`` are ``codec``'s packed codes (uint8, ``bytes_per_token`` wide) rather than states."""
    return (
        tokens.dtype == np.uint8 and tokens.ndim == 2 and tokens.shape[1] == codec.bytes_per_token and len(tokens) > 0
    )


def tokens_from_arrow(column: pa.Array | pa.ChunkedArray) -> PackedTokens:
    """A ``tokens`` column as :class:`~smart_retrievers.scoring.PackedTokens`: float16 states or uint8 codes."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    dim = column.type.value_type.list_size
    offsets = column.offsets.to_numpy().astype(np.int64)
    values = column.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return PackedTokens(values=torch.from_numpy(values.copy()), offsets=offsets - offsets[0])
