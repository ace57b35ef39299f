"""Loading image inputs into bounded-size RGB PIL images.

An image input is one of:

* a local path (``str`` or :class:`os.PathLike`), or a ``file://`` URI (local host only);
* an ``http://`` / ``https://`` URL (fetched with :mod:`urllib`, only where the policy
  allows URLs: off by default);
* a ``data:image/...;base64,...`` URI;
* raw encoded bytes (JPEG, PNG, ...);
* a :class:`PIL.Image.Image` (never modified in place).

Every loaded image is decoded once, EXIF-rotated, converted to RGB (transparent pixels
composited on white) and resized, keeping its aspect ratio, so that its pixel count lies
within ``[min_pixels, max_pixels]``. JPEGs larger than ``max_pixels`` are decoded at a
reduced scale (``Image.draft``), so one huge photo cannot take all the memory. PIL's own
decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) stays on.

Which sources may be read, and how much of each, is an :class:`ImagePolicy`
(:mod:`~smart_retrievers.encoders.image_policy`, whose names this module re-exports): allowed roots
for local paths (resolved with ``..`` and symlinks), URL fetching (off by default) with a
byte and a time limit, and a cap on the pixels decoded per image (40 MP by default, after
reduced decoding). Every vision encoder holds one (``image_policy=``) and applies it to every
image it loads: ``add_images``, framework documents and nodes, image queries, reranking.
This module loads (decode, rotate, RGB, resize) and names images: :func:`image_uri`,
:func:`image_cache_key`, :func:`location_field`.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageOps

from .image_policy import (
    DEFAULT_FETCH_TIMEOUT,
    DEFAULT_IMAGE_POLICY,
    DEFAULT_MAX_DECODE_PIXELS,
    IMAGE_TYPES,
    MAX_DOWNLOAD_BYTES,
    REFUSED,
    URI_SCHEME,
    ImageInput,
    ImageLoadError,
    ImagePolicy,
    PolicyRefusal,
    describe_image,
    file_uri_path,
    image_policy_of,
    open_image,
)

__all__ = [  # the policy's names stay importable from here, where they lived before image_policy.py
    "DEFAULT_FETCH_TIMEOUT",
    "DEFAULT_IMAGE_POLICY",
    "DEFAULT_MAX_DECODE_PIXELS",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_TYPES",
    "MAX_DOWNLOAD_BYTES",
    "ImageInput",
    "ImageLoadError",
    "ImagePolicy",
    "describe_image",
    "image_cache_key",
    "image_location",
    "image_policy_of",
    "image_uri",
    "load_image",
    "location_field",
]

DEFAULT_MAX_PIXELS = 1280 * 28 * 28
"""Default pixel cap (about 1 megapixel; 1280 visual tokens for Qwen2-VL)."""


def image_uri(image: ImageInput) -> str | None:
    """What an index stores for an image input: its location, never its pixels.

    Local paths become absolute paths; ``http(s)://`` and ``file://`` URIs are kept as
    given; a PIL image opened from a file gives that file's absolute path. Bytes, data
    URIs and in-memory PIL images have no location and give None.
    """
    if isinstance(image, Image.Image):
        filename = getattr(image, "filename", "")
        return str(Path(filename).expanduser().resolve()) if filename else None
    if isinstance(image, (str, os.PathLike)):
        text = os.fspath(image)
        if text.startswith("data:"):
            return None
        if URI_SCHEME.match(text) or text[:5].lower() == "file:":
            return text
        return str(Path(text).expanduser().resolve())
    return None


def image_location(*values: object) -> str | None:
    """The first of ``values`` that is set, as an image location (a path or URL) string.

    Frameworks carry an image's location in more than one place (LangChain's
    ``metadata["image_path"]`` / ``["image_url"]``, LlamaIndex's ``ImageNode.image_path`` /
    ``image_url``); pass them in order of preference. None and "" are unset; a ``str`` or
    :class:`os.PathLike` is a location. Returns None when none is set.

    Raises:
        TypeError: a set value that is no location (bytes, a PIL image, a number...).
    """
    for value in values:
        if value is None:
            continue
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"an image location must be a str (a path or URL), got {type(value).__name__}")
        text = os.fspath(value)
        if text:
            return text
    return None


def location_field(uri: str) -> tuple[str, str]:
    """Which field holds a stored image location: ``("image_url", uri)`` for a remote URL,
    else ``("image_path", path)`` (a ``file://`` URI as its path).

    The names are those of LangChain image documents' metadata keys and of LlamaIndex
    ``ImageNode`` fields, the inverse of :func:`image_location`.
    """
    if uri[:5].lower() == "file:":
        try:
            return "image_path", file_uri_path(uri)
        except PolicyRefusal:
            return "image_url", uri  # another host's file: not a local path
    if URI_SCHEME.match(uri):
        return "image_url", uri
    return "image_path", uri


def image_cache_key(image: ImageInput) -> str:
    """A key identifying an image input's content source, for caching its encoding.

    Locations (paths, URLs) key by their :func:`image_uri`; bytes, data URIs and in-memory
    PIL images by a SHA-256 of their content.
    """
    uri = image_uri(image) if not isinstance(image, Image.Image) or getattr(image, "filename", None) else None
    if uri is not None:
        return "image:" + uri
    digest = hashlib.sha256()
    if isinstance(image, Image.Image):
        digest.update(f"{image.mode}:{image.size}".encode())
        digest.update(image.tobytes())
    elif isinstance(image, (bytes, bytearray)):
        digest.update(bytes(image))
    else:
        digest.update(os.fspath(image).encode())
    return "image-sha256:" + digest.hexdigest()


def _target_size(width: int, height: int, min_pixels: int | None, max_pixels: int | None) -> tuple[int, int]:
    """(width, height) scaled, aspect ratio kept, so that width*height fits the pixel bounds."""
    pixels = width * height
    if max_pixels and pixels > max_pixels:
        scale = math.sqrt(max_pixels / pixels)
    elif min_pixels and pixels < min_pixels:
        scale = math.sqrt(min_pixels / pixels)
    else:
        return width, height
    new_w, new_h = max(1, int(width * scale)), max(1, int(height * scale))
    if min_pixels and new_w * new_h < min_pixels:  # rounding down can undershoot the floor
        new_w, new_h = math.ceil(width * scale), math.ceil(height * scale)
    return new_w, new_h


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(
    image: ImageInput,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_pixels: int | None = None,
    index: int | None = None,
    item_id: str | None = None,
    timeout: float | None = None,
    policy: ImagePolicy | None = None,
) -> Image.Image:
    """Load one image input as an RGB PIL image whose pixel count fits the bounds.

    Args:
        image: a path, ``file://``/``http(s)://``/``data:`` URI, encoded bytes or PIL image.
        max_pixels: downscale (aspect ratio kept) above this many pixels; None: no cap.
        min_pixels: upscale below this many pixels; None: no floor.
        index / item_id: how to name the item in an error.
        timeout: seconds an ``http(s)`` download may take (default: the policy's ``fetch_timeout``).
        policy: which sources may be read and the limits (default :data:`DEFAULT_IMAGE_POLICY`:
            any local path, no URLs, 40 MP decoded at most).

    Raises:
        TypeError: ``image`` is none of the accepted types.
        ImageLoadError: the input cannot be read, fetched or decoded (missing file,
            corrupt or truncated data, decompression bomb...), or the policy refuses it (a
            path outside its roots, a URL while URLs are off, an unknown scheme, a
            ``file://`` URI of another host, a download over the size or time limit, an
            image over ``max_decode_pixels``), naming the item.
    """
    if not isinstance(image, IMAGE_TYPES):
        where = "image" if index is None else f"image {index}"
        raise TypeError(f"{where} is a {type(image).__name__}; expected a path, URI, bytes or PIL.Image")
    if min_pixels and max_pixels and min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
    policy = DEFAULT_IMAGE_POLICY if policy is None else policy
    try:
        opened = open_image(image, policy, timeout)
        if opened is not image:  # decoded here from encoded data: reduce where the format allows, then cap
            width, height = opened.size
            target = _target_size(width, height, None, max_pixels)
            cap = policy.max_decode_pixels
            if cap and target[0] * target[1] > cap:  # no max_pixels below the cap: the largest scale under it
                scale = next((s for s in (2, 4, 8) if math.ceil(width / s) * math.ceil(height / s) <= cap), 8)
                target = (max(1, width // scale), max(1, height // scale))
            if target[0] * target[1] < width * height:
                opened.draft("RGB", target)  # JPEG: decode at 1/2, 1/4 or 1/8 scale, still >= target
            policy.check_decode(opened)  # the size that load() decodes
        opened.load()
        loaded = _to_rgb(ImageOps.exif_transpose(opened))  # a new image: the input is never modified
        if opened is not image:
            opened.close()  # the file open_image opened (PIL leaves a file it was given open)
        target = _target_size(*loaded.size, min_pixels, max_pixels)
        if target != loaded.size:
            loaded = loaded.resize(target, Image.Resampling.BICUBIC)
    except PolicyRefusal as exc:
        raise ImageLoadError(REFUSED + str(exc), index=index, item_id=item_id, source=describe_image(image)) from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError) as exc:
        # OSError covers missing files, truncated data, unidentifiable formats and URL errors
        raise ImageLoadError(
            f"{type(exc).__name__}: {exc}", index=index, item_id=item_id, source=describe_image(image)
        ) from exc
    return loaded
