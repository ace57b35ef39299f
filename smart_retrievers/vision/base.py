"""VisionEncoder: what every vision-language encoder shares.

Subclasses load one model family and implement :meth:`VisionEncoder._encode_batch`;
this base class owns configuration, the fingerprint, input validation, image loading and
batching, so the SmartEncoder interface (``encode_queries``, ``encode_documents``,
``dim``, ``token_dim``, ``fingerprint``...) plus ``encode_images`` and the mixed
``encode_inputs`` behave the same for every family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..encoder import TokenPolicy
from ..encoding import Encoding, auto_device, default_dtype, fingerprint_weights, load_adapter, punctuation_token_ids
from .images import DEFAULT_MAX_PIXELS, IMAGE_TYPES, ImageInput, ImageLoadError, describe_image, load_image


class VisionEncoder(ABC):
    """Base class of the vision-language encoders (see :class:`QwenVLEncoder`, :class:`ClipEncoder`).

    Args:
        model_name_or_path: a local model directory or a Hugging Face hub id.
        batch_size: items per forward pass.
        device: "cuda", "mps", "cpu" or None for the first available in that order.
        dtype: model dtype; float32 on CPU/MPS and bfloat16 on CUDA by default.
        token_policy: which text tokens to keep, see :class:`TokenPolicy`.
        adapter: an optional trained SMART adapter (directory or module).
        max_pixels / min_pixels: every image is resized (aspect ratio kept) so that its
            pixel count fits these bounds before it reaches the model's processor.
        local_files_only: never touch the network (defaults to True for local dirs).
        show_progress: show a tqdm bar; None shows it for inputs over 256 items.
        name: a readable model name for fingerprints (defaults to the directory name).
    """

    pooling: str
    """How the pooled vector is obtained (part of the fingerprint)."""

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        batch_size: int = 8,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        token_policy: TokenPolicy | None = None,
        adapter: Any = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        min_pixels: int | None = None,
        local_files_only: bool | None = None,
        show_progress: bool | None = None,
        name: str | None = None,
    ) -> None:
        path = str(model_name_or_path)
        self.model_name_or_path = path
        self.name = name or Path(path).name or path
        if local_files_only is None:
            local_files_only = Path(path).is_dir()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if min_pixels and max_pixels and min_pixels > max_pixels:
            raise ValueError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
        self.batch_size = batch_size
        self.device = device or auto_device()
        self.max_pixels = max_pixels
        self.min_pixels = min_pixels
        self.token_policy = token_policy or TokenPolicy()
        self.show_progress = show_progress
        try:
            self._load(path, local_files_only, dtype or default_dtype(self.device))
        except OSError as exc:
            raise OSError(
                f"could not load model {path!r}: {exc}. Pass a local model directory, "
                "or a hub id on a machine that can reach the hub."
            ) from exc
        self.model.to(self.device).eval()
        self._weights_hash = fingerprint_weights(path, local_files_only)
        self.adapter = load_adapter(adapter, self.base_fingerprint, self.device)
        self._punct_ids: torch.Tensor | None = None

    # ---- what a model family provides ----------------------------------

    model: torch.nn.Module
    tokenizer: Any
    max_length: int

    @abstractmethod
    def _load(self, path: str, local_files_only: bool, dtype: torch.dtype) -> None:
        """Load ``self.model``, ``self.tokenizer``, the image processor and ``self.max_length``."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Pooled embedding dimension."""

    @property
    @abstractmethod
    def _state_dim(self) -> int:
        """Dimension of the token states before any adapter."""

    @abstractmethod
    def _fingerprint_extra(self) -> dict[str, Any]:
        """Family-specific settings that change stored document encodings."""

    @abstractmethod
    def _encode_batch(self, indices: list[int], texts: list[str | None], images: list[Image.Image | None], query: bool) -> list[Encoding]:
        """Encode one batch; row i (item ``indices[i]`` of the call) has a text, an image or both."""

    def _image_problem(self, image: Image.Image) -> str | None:
        """Why the model cannot take this loaded image, if it cannot (None: it can)."""
        return None

    # ---- the SmartEncoder interface ------------------------------------

    @property
    def token_dim(self) -> int:
        """Token-state dimension (the adapter's output size when one is set)."""
        return self.adapter.out_dim if self.adapter is not None else self._state_dim

    @property
    def base_fingerprint(self) -> dict[str, Any]:
        """What identifies the frozen model, whatever adapter sits on top."""
        return {"model": self.name, "weights": self._weights_hash, "pooling": self.pooling, "dim": self.dim}

    @property
    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes stored encodings; a store refuses a different one."""
        return {
            **self.base_fingerprint,
            "token_dim": self.token_dim,
            "token_policy": asdict(self.token_policy),
            "adapter": self.adapter.fingerprint() if self.adapter is not None else None,
            **self._fingerprint_extra(),
        }

    def encode_queries(self, texts: Sequence[str], *, batch_size: int | None = None, show_progress: bool | None = None) -> list[Encoding]:
        """Encode text queries (modality "text")."""
        return self.encode_inputs(texts=self._texts(texts), query=True, batch_size=batch_size, show_progress=show_progress)

    def encode_documents(self, texts: Sequence[str], *, batch_size: int | None = None, show_progress: bool | None = None) -> list[Encoding]:
        """Encode text documents (modality "text")."""
        return self.encode_inputs(texts=self._texts(texts), query=False, batch_size=batch_size, show_progress=show_progress)

    def encode_images(
        self,
        images: Sequence[ImageInput],
        *,
        query: bool = False,
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> list[Encoding]:
        """Encode images (modality "image"), as documents or, with ``query=True``, as queries.

        Images are loaded one batch at a time, so only ``batch_size`` decoded images are
        in memory at once. Raises :class:`ImageLoadError` naming the first unreadable item.
        """
        if isinstance(images, IMAGE_TYPES):
            raise TypeError("encode_images() takes a sequence of images, not a single image")
        images = list(images)
        missing = next((i for i, im in enumerate(images) if im is None), None)
        if missing is not None:
            raise TypeError(f"image {missing} is None")
        return self.encode_inputs(images=images, query=query, batch_size=batch_size, show_progress=show_progress)

    def encode_inputs(
        self,
        texts: Sequence[str | None] | None = None,
        images: Sequence[ImageInput | None] | None = None,
        *,
        query: bool = False,
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> list[Encoding]:
        """Encode a mixed list of items; item i is ``texts[i]``, ``images[i]`` or both.

        Both lists, when given, must have the same length; None marks an absent part.
        Items with an image get modality "image" (their text, if any, is encoded with
        the image where the model family supports it), the others "text". Returns one
        :class:`Encoding` per item, in input order.
        """
        if texts is None and images is None:
            raise ValueError("encode_inputs() needs texts, images or both")
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        n = len(texts) if texts is not None else len(images)  # type: ignore[arg-type]
        texts = list(texts) if texts is not None else [None] * n
        images = list(images) if images is not None else [None] * n
        if len(texts) != len(images):
            raise ValueError(f"got {len(texts)} texts but {len(images)} images")
        for i, (text, image) in enumerate(zip(texts, images)):
            if text is not None and not isinstance(text, str):
                raise TypeError(f"text {i} is {type(text).__name__}, not str")
            if text is None and image is None:
                raise ValueError(f"item {i} has neither a text nor an image")
        if not n:
            return []
        batch_size = batch_size or self.batch_size
        # image items first, in input order; then texts longest first, to limit padding
        order = sorted(range(n), key=lambda i: (images[i] is None, -len(texts[i] or "") if images[i] is None else 0))
        results: list[Encoding | None] = [None] * n
        if show_progress is None:
            show_progress = self.show_progress if self.show_progress is not None else n > 256
        with torch.inference_mode(), tqdm(total=n, disable=not show_progress, desc="Encoding", unit="item") as bar:
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                loaded = [None if images[i] is None else self._load_image(images[i], i) for i in idx]
                for i, enc in zip(idx, self._encode_batch(idx, [texts[i] for i in idx], loaded, query)):
                    results[i] = enc
                bar.update(len(idx))
        return results  # type: ignore[return-value]

    # ---- helpers -------------------------------------------------------

    def _load_image(self, image: ImageInput, index: int) -> Image.Image:
        loaded = load_image(image, max_pixels=self.max_pixels, min_pixels=self.min_pixels, index=index)
        problem = self._image_problem(loaded)
        if problem is not None:
            raise ImageLoadError(problem, index=index, source=describe_image(image))
        return loaded

    @staticmethod
    def _texts(texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            raise TypeError("takes a sequence of strings, not a single string")
        texts = list(texts)
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"inputs must be strings; item {bad} is {type(texts[bad]).__name__}")
        return texts

    def _punctuation_ids(self) -> torch.Tensor:
        if self._punct_ids is None:
            self._punct_ids = punctuation_token_ids(self.tokenizer)
        return self._punct_ids

    def _drop_punctuation(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Bool mask, True where the token policy drops a punctuation token."""
        if not self.token_policy.drop_punctuation:
            return torch.zeros_like(input_ids, dtype=torch.bool)
        return torch.isin(input_ids, self._punctuation_ids().to(input_ids.device))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_name_or_path!r}, dim={self.dim}, device={self.device!r})"

