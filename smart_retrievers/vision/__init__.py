"""Vision-language encoders for SMART: images in the index and as queries.

* :class:`QwenVLEncoder`: Qwen2-VL / Qwen2.5-VL / Qwen3-VL based embedders (GME,
  Qwen3-VL-Embedding, VLM2Vec); image tokens are kept as document tokens.
* :class:`ClipEncoder`: CLIP, SigLIP, SigLIP 2; token states are an approximation.

Both follow the :class:`~smart_retrievers.encoding.Encoding` contract and the
SmartEncoder interface, plus ``encode_images`` and the mixed ``encode_inputs``.
:func:`load_encoder` picks the right class from a model's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import AutoConfig

from .base import VisionEncoder
from .clip import ClipEncoder
from .images import DEFAULT_MAX_PIXELS, ImageInput, ImageLoadError, image_uri, load_image
from .qwen_vl import DEFAULT_INSTRUCTION, QwenVLEncoder

_ENCODERS = {
    **{model_type: QwenVLEncoder for model_type in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")},
    **{model_type: ClipEncoder for model_type in ("clip", "siglip", "siglip2")},
}


def load_encoder(model_name_or_path: str | Path, *, local_files_only: bool | None = None, **kwargs: Any):
    """The right encoder for a model: a vision encoder for a supported vision-language
    ``model_type``, else a text :class:`~smart_retrievers.encoder.SmartEncoder`.

    ``kwargs`` go to the chosen class (e.g. ``batch_size``, ``adapter``, ``max_length``).
    """
    from ..encoder import SmartEncoder

    path = str(model_name_or_path)
    if local_files_only is None:
        local_files_only = Path(path).is_dir()
    try:
        model_type = AutoConfig.from_pretrained(path, local_files_only=local_files_only).model_type
    except (OSError, ValueError):
        model_type = None  # let the encoder raise its own, clearer loading error
    cls = _ENCODERS.get(model_type, SmartEncoder)
    return cls(path, local_files_only=local_files_only, **kwargs)


def is_vision_encoder(encoder: Any) -> bool:
    """Whether an encoder can encode images (has ``encode_images``)."""
    return callable(getattr(encoder, "encode_images", None))


__all__ = [
    "DEFAULT_INSTRUCTION",
    "DEFAULT_MAX_PIXELS",
    "ClipEncoder",
    "ImageInput",
    "ImageLoadError",
    "QwenVLEncoder",
    "VisionEncoder",
    "image_uri",
    "is_vision_encoder",
    "load_encoder",
    "load_image",
]
