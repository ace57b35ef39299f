"""BaseEncoder: what every encoder (text or vision) shares.

A subclass loads one model family (:meth:`BaseEncoder._load`) and encodes texts
(:meth:`BaseEncoder._encode_texts`); this base class applies the device and dtype defaults,
the weights fingerprint and adapter loading (:mod:`~smart_retrievers.encoders.loading`), and owns
the load-error message, the fingerprints, the
token-policy punctuation mask, the progress bar of an encoding call (the rule itself is
:func:`smart_retrievers.progress.progress_on`) and :meth:`BaseEncoder.encode_items`, the one
place that splits a batch of text and image items.

No transformers import at module level: it is loaded with the first model.
"""

from __future__ import annotations

import string
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from tqdm.auto import tqdm

from ..encoding import Encoding, TokenPolicy
from ..progress import progress_on
from ..validation import check_count, check_unicode
from .loading import auto_device, default_dtype, fingerprint_weights, load_adapter, quiet_loading

_PUNCTUATION = set(string.punctuation) | set("“”‘’«»…–—")
_SUBWORD_MARKS = ("##", "Ġ", "▁", "Ċ")


# ---- helpers ---------------------------------------------------------------


def punctuation_token_ids(tokenizer: Any) -> torch.Tensor:
    """Ids of the vocabulary entries made only of punctuation (subword marks ignored), sorted."""
    ids = []
    for token, token_id in tokenizer.get_vocab().items():
        stripped = token
        for mark in _SUBWORD_MARKS:
            stripped = stripped.replace(mark, "")
        if stripped and all(ch in _PUNCTUATION for ch in stripped):
            ids.append(token_id)
    return torch.tensor(sorted(ids), dtype=torch.long)


def states_to_encodings(
    pooled: torch.Tensor,
    states: torch.Tensor,
    keep: torch.Tensor,
    *,
    adapter: torch.nn.Module | None = None,
    modalities: Sequence[str] | None = None,
    stand_in: torch.Tensor | None = None,
) -> list[Encoding]:
    """Turn one batch of model outputs into :class:`Encoding` objects.

    Args:
        pooled: (B, d) pooled embeddings (any dtype; L2-normalised here in fp32).
        states: (B, L, H) token states in the space the late score uses (final hidden
            states, or for CLIP/SigLIP their projection); cast to fp32, passed through the
            adapter if any, L2-normalised and stored as float16.
        keep: (B, L) bool mask of the token states to keep.
        adapter: optional SMART adapter applied to token states.
        modalities: per-row modality ("text" or "image"); all "text" when None.
        stand_in: (B, H) vectors in the token-state space for rows whose mask keeps
            nothing; default ``pooled`` (pass the pre-head pooled vector when a head,
            e.g. a sentence-transformers Dense module, maps ``pooled`` to another space).

    A row whose mask keeps nothing gets its stand-in (through the adapter) as its single
    token, so token states are never empty.
    """
    pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
    tokens = states.float() if adapter is None else adapter(states.float())
    tokens = torch.nn.functional.normalize(tokens.float(), dim=-1).half().cpu().numpy()
    keep_np = keep.cpu().numpy()
    pooled_np = pooled.cpu().numpy()
    stand_in = pooled if stand_in is None else stand_in.float()
    out = []
    for row in range(len(pooled_np)):
        toks = tokens[row][keep_np[row]]
        if len(toks) == 0:  # nothing left after masking: the (pooled) stand-in
            vector = stand_in[row : row + 1] if adapter is None else adapter(stand_in[row : row + 1])
            toks = torch.nn.functional.normalize(vector.float(), dim=-1).half().cpu().numpy()
        modality = modalities[row] if modalities is not None else "text"
        out.append(Encoding(pooled=pooled_np[row], tokens=np.ascontiguousarray(toks), modality=modality))
    return out


def tokenizer_limit(tokenizer: Any) -> int | None:
    """The tokenizer's ``model_max_length`` when it is a real limit (not the "no limit" sentinel)."""
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if limit and limit < 1_000_000 else None


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, after checking it is a sequence of strings (not one string)."""
    if isinstance(texts, str):
        raise TypeError("takes a sequence of strings, not a single string")
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"inputs must be strings; item {bad} is {type(texts[bad]).__name__}")
    for i, text in enumerate(texts):  # a lone surrogate: a clear error, not the tokenizer's TypeError
        check_unicode(text, f"input {i}")
    return texts


# ---- the base class ----------------------------------------------------------


class BaseEncoder(ABC):
    """What every encoder shares (see :class:`~smart_retrievers.encoders.SmartEncoder` and
    :class:`~smart_retrievers.encoders.VisionEncoder`).

    Args:
        model_name_or_path: a local model directory or a Hugging Face hub id.
        batch_size: inputs per forward pass.
        device: "cuda", "mps", "cpu" or None for the first available in that order.
        dtype: model dtype; defaults to float32 on CPU/MPS and bfloat16 on CUDA.
        token_policy: which tokens to keep, see :class:`~smart_retrievers.encoding.TokenPolicy`.
        adapter: an optional trained SMART adapter (a directory saved by
            :class:`smart_retrievers.adapter.SmartAdapter` or the module itself) applied
            to token states of queries and documents alike.
        local_files_only: never touch the network (defaults to True for local dirs).
        show_progress: show a tqdm bar; None shows it for calls over 256 items.
        name: a readable model name for fingerprints and traces (defaults to the
            directory name or hub id).
    """

    reads_images: bool = False
    """Whether :meth:`encode_items` takes images (True for vision encoders)."""

    pooling: str
    """How the pooled vector is obtained (part of the fingerprint)."""

    model: Any
    """The transformers model (a ``torch.nn.Module``; each family reads its own config and heads from it)."""
    tokenizer: Any
    max_length: int

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        batch_size: int = 32,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        token_policy: TokenPolicy | None = None,
        adapter: Any = None,
        local_files_only: bool | None = None,
        show_progress: bool | None = None,
        name: str | None = None,
    ) -> None:
        path = str(model_name_or_path)
        self.model_name_or_path = path
        self.name = name or Path(path).name or path
        if local_files_only is None:
            local_files_only = Path(path).is_dir()
        check_count("batch_size", batch_size)
        self.batch_size = batch_size
        self.device = device or auto_device()
        self.token_policy = token_policy or TokenPolicy()
        self.show_progress = show_progress
        try:
            with quiet_loading():  # no "Loading weights" bar from transformers on every load
                self._load(path, local_files_only, dtype or default_dtype(self.device))
        except OSError as exc:
            raise OSError(
                f"could not load model {path!r}: {exc}. Pass a local model directory, "
                "or a hub id on a machine that can reach the hub."
            ) from exc
        self.model.to(self.device).eval()
        self._weights_hash = fingerprint_weights(path, local_files_only)
        self.adapter = load_adapter(adapter, self.base_fingerprint, self.device, state_dim=self._state_dim)
        self._punct_ids: torch.Tensor | None = None

    # ---- what a model family provides ------------------------------------

    @abstractmethod
    def _load(self, path: str, local_files_only: bool, dtype: torch.dtype) -> None:
        """Load ``self.model``, ``self.tokenizer``, ``self.max_length`` (and whatever else the family needs)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Pooled embedding dimension."""

    @property
    @abstractmethod
    def _state_dim(self) -> int:
        """Dimension of the token states before any adapter."""

    @abstractmethod
    def _encode_texts(
        self, texts: list[str], *, query: bool, batch_size: int | None, show_progress: bool | None
    ) -> list[Encoding]:
        """Encode checked texts as queries or documents, in input order."""

    def _base_fingerprint_extra(self) -> dict[str, Any]:
        """Family-specific parts of the frozen model's identity (beyond weights, pooling, dim)."""
        return {}

    def _fingerprint_extra(self) -> dict[str, Any]:
        """Family-specific settings that change stored document encodings."""
        return {}

    # ---- identity ----------------------------------------------------------

    @property
    def token_dim(self) -> int:
        """Token-state dimension (the adapter's output size when one is set)."""
        return self.adapter.out_dim if self.adapter is not None else self._state_dim

    @property
    def base_fingerprint(self) -> dict[str, Any]:
        """What identifies the frozen model, whatever adapter sits on top."""
        return {
            "model": self.name,
            "weights": self._weights_hash,
            "pooling": self.pooling,
            "dim": self.dim,
            **self._base_fingerprint_extra(),
        }

    @property
    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes stored encodings; a store refuses a different one."""
        return {
            **self.base_fingerprint,
            "token_dim": self.token_dim,
            "token_policy": asdict(self.token_policy),
            # inputs are cut at max_length: one table must not mix truncation settings
            "max_length": getattr(self, "max_length", None),
            "adapter": self.adapter.fingerprint() if self.adapter is not None else None,
            **self._fingerprint_extra(),
        }

    # ---- encoding ----------------------------------------------------------

    def encode_queries(
        self, texts: Sequence[str], *, batch_size: int | None = None, show_progress: bool | None = None
    ) -> list[Encoding]:
        """Encode text queries; one :class:`Encoding` per text, in input order."""
        return self._encode_texts(check_texts(texts), query=True, batch_size=batch_size, show_progress=show_progress)

    def encode_documents(
        self, texts: Sequence[str], *, batch_size: int | None = None, show_progress: bool | None = None
    ) -> list[Encoding]:
        """Encode text documents; one :class:`Encoding` per text, in input order."""
        return self._encode_texts(check_texts(texts), query=False, batch_size=batch_size, show_progress=show_progress)

    def encode_items(
        self,
        texts: Sequence[str | None],
        images: Sequence[Any] | None = None,
        *,
        query: bool = False,
        batch_size: int | None = None,
        show_progress: bool | None = None,
        ids: Sequence[str | None] | None = None,
        positions: Sequence[int] | None = None,
    ) -> list[Encoding]:
        """Encode a mix of text items and image items; one :class:`Encoding` per item, in input order.

        Item i is an image when ``images[i]`` is given (``texts[i]``, a caption, is then
        not encoded: the encoding is the image's alone), else the text ``texts[i]``. Texts
        are encoded in one call (as queries with ``query=True``, else as documents), images
        in another (the same), so a text-only or image-only batch costs one call.

        Args:
            texts: per item, its text (None for an image item without caption).
            images: per item, an image (path, URI, bytes or PIL image) or None.
            query: encode the items as queries instead of documents.
            batch_size / show_progress: as for :meth:`encode_documents`.
            ids / positions: how errors name item i: ``positions[i]`` (default i) and
                ``ids[i]``, so a caller encoding part of a larger sequence gets errors
                numbered in its own terms.

        Raises:
            TypeError: an image item for an encoder that cannot read images (see
                ``reads_images``), or a text item whose text is not a string.
            ImageLoadError: an image cannot be read, naming its position and id.
        """
        if isinstance(texts, str):
            raise TypeError("encode_items() takes a sequence of texts, not a single string")
        texts = list(texts)
        n = len(texts)
        images = [None] * n if images is None else list(images)
        positions = range(n) if positions is None else list(positions)
        for label, given in (("images", images), ("ids", ids), ("positions", positions)):
            if given is not None and len(given) != n:
                raise ValueError(f"got {n} texts but {len(given)} {label}")

        def where(i: int) -> str:
            return f"{positions[i]}" + (f" (id {ids[i]!r})" if ids is not None else "")

        image_rows = [i for i in range(n) if images[i] is not None]
        text_rows = [i for i in range(n) if images[i] is None]
        if image_rows and not self.reads_images:
            raise TypeError(
                f"{type(self).__name__} cannot encode images (item {where(image_rows[0])} is one); "
                "images need a vision encoder (smart_retrievers.encoders.load_encoder picks one)"
            )
        bad = next((i for i in text_rows if not isinstance(texts[i], str)), None)
        if bad is not None:
            raise TypeError(f"text {where(bad)} is {type(texts[bad]).__name__}, not str")
        out: list[Encoding | None] = [None] * n
        if text_rows:
            encoded = self._encode_texts(
                [cast(str, texts[i]) for i in text_rows],  # each checked to be a str above
                query=query,
                batch_size=batch_size,
                show_progress=show_progress,
            )
            for i, enc in zip(text_rows, encoded):
                out[i] = enc
        if image_rows:
            from .images import ImageLoadError

            try:
                encoded = self.encode_images(  # type: ignore[attr-defined]  # reads_images: a VisionEncoder
                    [images[i] for i in image_rows], query=query, batch_size=batch_size, show_progress=show_progress
                )
            except ImageLoadError as exc:
                if exc.index is None:
                    raise
                row = image_rows[exc.index]
                raise exc.at(positions[row], ids[row] if ids is not None else None) from exc
            for i, enc in zip(image_rows, encoded):
                out[i] = enc
        return out  # type: ignore[return-value]

    # ---- helpers for subclasses ----------------------------------------------

    def _progress(self, n: int, show_progress: bool | None, unit: str) -> tqdm:
        """The progress bar of one encoding call: ``show_progress``, else the encoder's setting, else the 256-item rule."""
        flag = show_progress if show_progress is not None else self.show_progress
        return tqdm(total=n, disable=not progress_on(flag, n), desc="Encoding", unit=unit)

    def _drop_punctuation(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Bool mask, True where the token policy drops a punctuation token."""
        if not self.token_policy.drop_punctuation:
            return torch.zeros_like(input_ids, dtype=torch.bool)
        if self._punct_ids is None:
            self._punct_ids = punctuation_token_ids(self.tokenizer)
        return torch.isin(input_ids, self._punct_ids.to(input_ids.device))

    def token_spans(self, text: str, *, query: bool = False) -> tuple[list[tuple[int, int]], bool]:
        """The character spans in ``text`` of the token states this encoder keeps for it (as a query or a
        document), in order, and whether it was cut at ``max_length``: one span per row of its
        encoding's ``tokens`` (a kept prompt token gets an empty span). Encoders with a fast
        tokenizer implement it with the same keep rules as their encoding."""
        raise NotImplementedError(f"{type(self).__name__} cannot map its token states to text spans")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_name_or_path!r}, pooling={self.pooling!r}, dim={self.dim}, device={self.device!r})"
