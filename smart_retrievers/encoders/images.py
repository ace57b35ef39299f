"""Loading image inputs into bounded-size RGB PIL images.

An image input is one of:

* a local path (``str`` or :class:`os.PathLike`), or a ``file://`` URI;
* an ``http://`` / ``https://`` URL (fetched with :mod:`urllib`, so it needs network);
* a ``data:image/...;base64,...`` URI;
* raw encoded bytes (JPEG, PNG, ...);
* a :class:`PIL.Image.Image` (never modified in place).

Every loaded image is decoded once, EXIF-rotated, converted to RGB (transparent pixels
composited on white) and resized, keeping its aspect ratio, so that its pixel count lies
within ``[min_pixels, max_pixels]``. JPEGs larger than ``max_pixels`` are decoded at a
reduced scale (``Image.draft``), so one huge photo cannot take all the memory. PIL's own
decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) stays on.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import os
import struct
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

from PIL import Image, ImageOps

ImageInput = str | os.PathLike | bytes | bytearray | Image.Image
"""What the vision encoders and :meth:`SmartIndex.add_images` accept as one image."""
IMAGE_TYPES = (str, os.PathLike, bytes, bytearray, Image.Image)
"""The runtime types of :data:`ImageInput`, for ``isinstance`` checks."""

DEFAULT_MAX_PIXELS = 1280 * 28 * 28
"""Default pixel cap (about 1 megapixel; 1280 visual tokens for Qwen2-VL)."""

MAX_DOWNLOAD_BYTES = 64 << 20
_URL_SCHEMES = ("http://", "https://")


class ImageLoadError(ValueError):
    """An image input could not be read or decoded.

    Attributes:
        index: position of the item in the input sequence (None if unknown).
        item_id: the item's id, when the caller has ids.
        source: a short description of the input (path, URL, ``<bytes>``...).
        reason: what went wrong.
    """

    def __init__(self, reason: str, *, index: int | None = None, item_id: str | None = None, source: str = "") -> None:
        self.index = index
        self.item_id = item_id
        self.source = source
        self.reason = reason
        where = "image" if index is None else f"image {index}"
        if item_id is not None:
            where += f" (id {item_id!r})"
        super().__init__(f"{where} {source}: {reason}" if source else f"{where}: {reason}")

    def at(self, index: int, item_id: str | None = None) -> ImageLoadError:
        """The same error, naming the item by its position (and id) in a larger sequence."""
        return ImageLoadError(self.reason, index=index, item_id=item_id, source=self.source)


def describe_image(image: object) -> str:
    """A short, log-safe description of an image input (no pixel data, no base64)."""
    if isinstance(image, Image.Image):
        return f"<PIL.Image {image.mode} {image.width}x{image.height}>"
    if isinstance(image, (bytes, bytearray)):
        return f"<{len(image)} bytes>"
    if isinstance(image, str) and image.startswith("data:"):
        return f"<data URI, {len(image)} chars>"
    if isinstance(image, (str, os.PathLike)):
        return repr(os.fspath(image))
    return f"<{type(image).__name__}>"


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
        if text.startswith(_URL_SCHEMES) or text.startswith("file://"):
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
    if "://" in uri and not uri.startswith("file://"):
        return "image_url", uri
    return "image_path", uri.removeprefix("file://")


def image_cache_key(image: ImageInput) -> str:
    """A key identifying an image input's content source, for caching its encoding.

    Locations (paths, URLs) key by their :func:`image_uri`; bytes, data URIs and in-memory
    PIL images by a SHA-256 of their content.
    """
    uri = image_uri(image) if not isinstance(image, Image.Image) or getattr(image, "filename", "") else None
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


def _open(image: ImageInput, timeout: float) -> Image.Image:
    """Open (lazily) the image behind an input; may raise anything PIL or urllib raise."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (bytes, bytearray)):
        return Image.open(io.BytesIO(bytes(image)))
    text = os.fspath(image)
    if text.startswith(_URL_SCHEMES):
        with urllib.request.urlopen(text, timeout=timeout) as response:  # noqa: S310 (scheme checked)
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
        if len(data) > MAX_DOWNLOAD_BYTES:
            raise ValueError(f"download is larger than {MAX_DOWNLOAD_BYTES} bytes")
        return Image.open(io.BytesIO(data))
    if text.startswith("data:"):
        header, _, payload = text.partition(",")
        if not header.endswith(";base64"):
            raise ValueError("only base64 data URIs are supported")
        return Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
    if text.startswith("file://"):
        text = urllib.request.url2pathname(urllib.parse.urlparse(text).path)
    return Image.open(Path(text).expanduser())


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
    timeout: float = 10.0,
) -> Image.Image:
    """Load one image input as an RGB PIL image whose pixel count fits the bounds.

    Args:
        image: a path, ``file://``/``http(s)://``/``data:`` URI, encoded bytes or PIL image.
        max_pixels: downscale (aspect ratio kept) above this many pixels; None: no cap.
        min_pixels: upscale below this many pixels; None: no floor.
        index / item_id: how to name the item in an error.
        timeout: seconds to wait for an ``http(s)`` download.

    Raises:
        TypeError: ``image`` is none of the accepted types.
        ImageLoadError: the input cannot be read, fetched or decoded (missing file,
            corrupt or truncated data, decompression bomb...), naming the item.
    """
    if not isinstance(image, IMAGE_TYPES):
        where = "image" if index is None else f"image {index}"
        raise TypeError(f"{where} is a {type(image).__name__}; expected a path, URI, bytes or PIL.Image")
    if min_pixels and max_pixels and min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
    try:
        opened = _open(image, timeout)
        target = _target_size(*opened.size, min_pixels, max_pixels)
        if target[0] * target[1] < opened.size[0] * opened.size[1] and opened is not image:
            opened.draft("RGB", target)  # JPEG: decode at a reduced scale, >= target
        opened.load()
        loaded = _to_rgb(ImageOps.exif_transpose(opened))  # a new image: the input is never modified
        target = _target_size(*loaded.size, min_pixels, max_pixels)
        if target != loaded.size:
            loaded = loaded.resize(target, Image.Resampling.BICUBIC)
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError) as exc:
        # OSError covers missing files, truncated data, unidentifiable formats and URL errors
        raise ImageLoadError(
            f"{type(exc).__name__}: {exc}", index=index, item_id=item_id, source=describe_image(image)
        ) from exc
    return loaded
