"""The encoder contract: what an encoder returns (:class:`Encoding`), which tokens it keeps
(:class:`TokenPolicy`) and what every encoder offers (:class:`Encoder`).

This module is the bottom layer: numpy only, so anything may import it. The encoders
themselves live in :mod:`smart_retrievers.encoders`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Encoder", "Encoding", "TokenPolicy"]


@dataclass
class Encoding:
    """One input's encodings from a single forward pass.

    Attributes:
        pooled: the model's own pooled embedding, L2-normalised, float32, shape (dim,).
        tokens: final-layer token states, L2-normalised, float16, shape (n_tokens, token_dim),
            padding and special tokens removed; never empty (the pooled vector stands in).
        truncated: whether the input was cut at the encoder's max_length.
        modality: "text" or "image".
    """

    pooled: np.ndarray
    tokens: np.ndarray
    truncated: bool = False
    modality: str = "text"


@dataclass(frozen=True)
class TokenPolicy:
    """Which non-special tokens to keep as late-interaction token states.

    Attributes:
        drop_punctuation: drop tokens made only of punctuation characters.
        drop_prompt: drop the tokens of a query/document prompt prefix or instruction (they
            are the same for every input and only add noise to MaxSim).
    """

    drop_punctuation: bool = False
    drop_prompt: bool = True


@runtime_checkable
class Encoder(Protocol):
    """What every encoder (text or vision) offers; the index, scorer and frameworks need no more.

    ``fingerprint`` is everything that changes stored encodings (a store refuses another
    one); ``base_fingerprint`` identifies the frozen model under any adapter. Items of
    :meth:`encode_items` are texts or, when ``reads_images`` is True, images (paths, URIs,
    bytes or PIL images).
    """

    name: str
    device: str

    @property
    def dim(self) -> int:
        """Pooled embedding dimension."""

    @property
    def token_dim(self) -> int:
        """Token-state dimension."""

    @property
    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes stored encodings."""

    @property
    def base_fingerprint(self) -> dict[str, Any]:
        """What identifies the frozen model, whatever adapter sits on top."""

    @property
    def reads_images(self) -> bool:
        """Whether :meth:`encode_items` takes images."""

    def encode_queries(
        self, texts: Sequence[str], *, batch_size: int | None = None, show_progress: bool | None = None
    ) -> list[Encoding]:
        """Encode text queries, one :class:`Encoding` per text, in input order."""

    def encode_documents(
        self, texts: Sequence[str], *, batch_size: int | None = None, show_progress: bool | None = None
    ) -> list[Encoding]:
        """Encode text documents, one :class:`Encoding` per text, in input order."""

    def encode_items(
        self, texts: Sequence[str | None], images: Sequence[Any] | None = None, *, query: bool = False,
        batch_size: int | None = None, show_progress: bool | None = None,
        ids: Sequence[str | None] | None = None, positions: Sequence[int] | None = None,
    ) -> list[Encoding]:  # fmt: skip
        """Encode a mix of text items and image items, one :class:`Encoding` per item, in input order.

        Item i is ``images[i]`` when given (``texts[i]`` is then a caption, not encoded),
        else ``texts[i]``; ``ids`` / ``positions`` name items in errors.
        """
