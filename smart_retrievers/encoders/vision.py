"""VisionEncoder: what every vision-language encoder adds to :class:`BaseEncoder`.

Subclasses (:class:`~smart_retrievers.encoders.QwenVLEncoder`,
:class:`~smart_retrievers.encoders.ClipEncoder`) load one model family and implement
:meth:`VisionEncoder._encode_batch`; this class owns the pixel bounds, image loading and
batching, ``encode_images`` and the interleaved ``encode_inputs`` (an item may be a text,
an image or, where the family supports it, both together).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..encoding import Encoding
from .base import BaseEncoder
from .images import (
    DEFAULT_IMAGE_POLICY,
    DEFAULT_MAX_PIXELS,
    IMAGE_TYPES,
    ImageInput,
    ImageLoadError,
    ImagePolicy,
    describe_image,
    load_image,
)


@dataclass(frozen=True)
class ImageGrid:
    """Where the token states of an image's document encoding lie on the image (match evidence).

    Attributes:
        rows / cols: the grid of image tokens (CLIP/SigLIP: patches; Qwen-VL: merged patches),
            numbered row-major: cell ``r * cols + c``.
        box: ``(x0, y0, x1, y1)``, the part of the image (as the encoder loaded it) that the grid
            covers, as fractions of its width and height: CLIP's center crop covers less than
            the whole image, Qwen-VL and SigLIP cover all of it.
        cells: per token state of the encoding, in order, its cell, or None for a state that is
            not an image token (an instruction token the token policy keeps).
    """

    rows: int
    cols: int
    box: tuple[float, float, float, float]
    cells: tuple[int | None, ...]

    def cell_box(self, cell: int) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` of one cell, as fractions of the image's width and height."""
        x0, y0, x1, y1 = self.box
        r, c = divmod(cell, self.cols)
        w, h = (x1 - x0) / self.cols, (y1 - y0) / self.rows
        return (x0 + c * w, y0 + r * h, x0 + (c + 1) * w, y0 + (r + 1) * h)


class VisionEncoder(BaseEncoder):
    """Base class of the vision-language encoders.

    Args:
        model_name_or_path: a local model directory or a Hugging Face hub id.
        max_pixels / min_pixels: every image is resized (aspect ratio kept) so that its
            pixel count fits these bounds before it reaches the model's processor.
        image_policy: which image sources may be read and the limits on reading them
            (:class:`~smart_retrievers.encoders.images.ImagePolicy`; default: any local
            path, no URLs, 40 MP decoded per image). It is not part of the fingerprint;
            ``encoder.image_policy`` may be replaced later.
        batch_size: items per forward pass (default 8).
        **kwargs: ``device``, ``dtype``, ``token_policy``, ``adapter``,
            ``local_files_only``, ``show_progress``, ``name``: see :class:`BaseEncoder`.
    """

    reads_images = True

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        min_pixels: int | None = None,
        image_policy: ImagePolicy | None = None,
        batch_size: int = 8,
        **kwargs: Any,
    ) -> None:
        if min_pixels and max_pixels and min_pixels > max_pixels:
            raise ValueError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
        if image_policy is not None and not isinstance(image_policy, ImagePolicy):
            raise TypeError(f"image_policy must be an ImagePolicy, got {type(image_policy).__name__}")
        self.image_policy = DEFAULT_IMAGE_POLICY if image_policy is None else image_policy
        self.max_pixels = max_pixels
        self.min_pixels = min_pixels
        super().__init__(model_name_or_path, batch_size=batch_size, **kwargs)

    # ---- what a model family provides ------------------------------------

    @abstractmethod
    def _encode_batch(
        self, indices: list[int], texts: list[str | None], images: list[Image.Image | None], query: bool
    ) -> list[Encoding]:
        """Encode one batch; row i (item ``indices[i]`` of the call) has a text, an image or both."""

    def _image_problem(self, image: Image.Image) -> str | None:
        """Why the model cannot take this loaded image, if it cannot (None: it can)."""
        return None

    def image_token_grid(self, image: Image.Image) -> ImageGrid:
        """Where each token state of ``image``'s document encoding lies on it (``image`` as
        :meth:`_load_image` returns it): see :class:`ImageGrid`."""
        raise NotImplementedError(f"{type(self).__name__} does not map its image tokens to patches")

    @property
    def _state_dim(self) -> int:
        return self.dim

    # ---- encoding ----------------------------------------------------------

    def _encode_texts(
        self, texts: list[str], *, query: bool, batch_size: int | None, show_progress: bool | None
    ) -> list[Encoding]:
        return self.encode_inputs(texts=texts, query=query, batch_size=batch_size, show_progress=show_progress)

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
        """Encode interleaved items; item i is ``texts[i]``, ``images[i]`` or both, encoded together.

        Both lists, when given, must have the same length; None marks an absent part.
        Items with an image get modality "image" (their text, if any, is encoded with
        the image where the model family supports it), the others "text". Returns one
        :class:`Encoding` per item, in input order. (:meth:`encode_items` instead treats
        an image item's text as a caption that is not encoded.)
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
        for i, image in enumerate(images):  # refuse a source before any image is read or encoded
            if image is not None:
                self.image_policy.check(image, index=i)
        batch_size = batch_size or self.batch_size
        # image items first, in input order; then texts longest first, to limit padding
        order = sorted(range(n), key=lambda i: (images[i] is None, -len(texts[i] or "") if images[i] is None else 0))
        results: list[Encoding | None] = [None] * n
        with torch.inference_mode(), self._progress(n, show_progress, unit="item") as bar:
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                loaded = [None if (image := images[i]) is None else self._load_image(image, i) for i in idx]
                for i, enc in zip(idx, self._encode_batch(idx, [texts[i] for i in idx], loaded, query)):
                    results[i] = enc
                bar.update(len(idx))
        return results  # type: ignore[return-value]

    def _load_image(self, image: ImageInput, index: int) -> Image.Image:
        loaded = load_image(
            image, max_pixels=self.max_pixels, min_pixels=self.min_pixels, index=index, policy=self.image_policy
        )
        problem = self._image_problem(loaded)
        if problem is not None:
            raise ImageLoadError(problem, index=index, source=describe_image(image))
        return loaded
