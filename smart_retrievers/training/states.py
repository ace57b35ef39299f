"""Frozen token states for adapter training, encoded once and cached on disk.

The backbone is frozen, so queries and documents are encoded once (:func:`encode_states`)
and their L2-normalised fp16 token states are cached as :class:`TokenStates`; training then
runs only the adapter on them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..cache import default_cache_dir
from ..encoding import Encoding
from ..scoring import PackedTokens

__all__ = ["TokenStates", "default_cache_dir", "encode_states"]

_CACHE_FORMAT = 1


@dataclass
class TokenStates:
    """Frozen encodings of N items: pooled vectors and packed token states.

    Attributes:
        ids: the N item ids, in row order.
        pooled: (N, H) float32 pooled embeddings, L2-normalised.
        tokens: the (T, H) float16 L2-normalised token states of the N items, packed
            (``tokens.values`` may be a read-only memmap); item ``i`` owns ``tokens.item(i)``.
    """

    ids: list[str]
    pooled: np.ndarray
    tokens: PackedTokens

    @classmethod
    def from_encodings(cls, ids: Sequence[str], encodings: Sequence[Any]) -> TokenStates:
        """Pack :class:`~smart_retrievers.encoding.Encoding` objects."""
        if len(ids) != len(encodings):
            raise ValueError(f"got {len(ids)} ids but {len(encodings)} encodings")
        if not encodings:
            raise ValueError("no encodings to pack")
        return cls(
            ids=list(ids),
            pooled=np.stack([e.pooled for e in encodings]).astype(np.float32),
            tokens=PackedTokens.from_list([np.asarray(e.tokens, dtype=np.float16) for e in encodings]),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def to_encodings(self) -> list[Encoding]:
        """One :class:`~smart_retrievers.encoding.Encoding` per item (its float16 token states, as stored)."""
        values, offsets = np.asarray(self.tokens.values), self.tokens.offsets
        return [Encoding(pooled=self.pooled[i], tokens=values[offsets[i] : offsets[i + 1]]) for i in range(len(self))]

    @property
    def dim(self) -> int:
        """H, the token (and pooled) dimension."""
        return int(self.tokens.values.shape[1])

    @property
    def offsets(self) -> np.ndarray:
        """(N + 1,) int64: item ``i``'s states are rows ``offsets[i]:offsets[i + 1]`` of ``tokens.values``."""
        return self.tokens.offsets

    @cached_property
    def row(self) -> dict[str, int]:
        """Item id → row."""
        return {item_id: i for i, item_id in enumerate(self.ids)}

    def save(self, folder: Path) -> None:
        """Write the arrays and ids into ``folder`` (created)."""
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "pooled.npy", self.pooled)
        np.save(folder / "tokens.npy", self.tokens.values)
        np.save(folder / "offsets.npy", self.tokens.offsets)
        (folder / "ids.json").write_text(json.dumps(self.ids))

    @classmethod
    def load(cls, folder: Path) -> TokenStates:
        """Read states written by :meth:`save`; the token states are memory-mapped."""
        return cls(
            ids=json.loads((folder / "ids.json").read_text()),
            pooled=np.load(folder / "pooled.npy"),
            tokens=PackedTokens(
                values=np.load(folder / "tokens.npy", mmap_mode="r"), offsets=np.load(folder / "offsets.npy")
            ),
        )


def encode_states(
    encoder: Any,
    ids: Sequence[str],
    texts: Sequence[str],
    *,
    kind: Literal["query", "document"],
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    show_progress: bool = True,
) -> TokenStates:
    """Encode texts with a frozen encoder (no adapter), cached on disk.

    The cache entry is keyed by the encoder fingerprint, its query prompt and max_length,
    ``kind`` and every (id, text), so a changed corpus or model re-encodes.

    Args:
        encoder: an encoder without adapter (from :func:`smart_retrievers.encoders.load_encoder`).
        ids / texts: aligned item ids and texts.
        kind: "query" (``encode_queries``) or "document" (``encode_documents``).
        cache_dir: cache root (default :func:`default_cache_dir`).
        use_cache: False encodes in memory only.
        show_progress: show the encoder's progress bar.
    """
    if encoder.adapter is not None:
        raise ValueError("token states for adapter training come from the frozen encoder; pass one without adapter")
    if kind not in ("query", "document"):
        raise ValueError(f"kind must be 'query' or 'document', got {kind!r}")
    if len(ids) != len(texts):
        raise ValueError(f"got {len(ids)} ids but {len(texts)} texts")
    digest = hashlib.sha256(
        json.dumps(
            {
                "format": _CACHE_FORMAT,
                "kind": kind,
                "fingerprint": encoder.fingerprint,
                "query_prompt": getattr(encoder, "query_prompt", getattr(encoder, "query_instruction", None)),
                "max_length": encoder.max_length,
            },
            sort_keys=True,
        ).encode()
    )
    for item_id, text in zip(ids, texts):
        digest.update(f"{len(item_id)}:{item_id}{len(text)}:{text}".encode())
    folder = Path(cache_dir or default_cache_dir()) / f"{kind}-{digest.hexdigest()[:24]}"
    if use_cache and (folder / "ids.json").is_file():
        return TokenStates.load(folder)
    encode = encoder.encode_queries if kind == "query" else encoder.encode_documents
    states = TokenStates.from_encodings(ids, encode(list(texts), show_progress=show_progress))
    if use_cache:
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        states.save(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process cached the same states meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    return states
