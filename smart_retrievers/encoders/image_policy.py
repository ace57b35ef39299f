"""Which image sources may be read, and how much of each: :class:`ImagePolicy`, and opening a source under it.

An image input (:data:`ImageInput`) is a local path or ``file://`` URI (local host only), an
``http(s)://`` URL (only where the policy allows URLs), a ``data:`` URI, encoded bytes or a PIL
image. :func:`open_image` resolves and checks the source and opens it lazily (nothing decoded);
:func:`~smart_retrievers.encoders.images.load_image` decodes it within the policy's limits. A refused
source raises :class:`PolicyRefusal` inside this module and reaches callers as :class:`ImageLoadError`.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
import stat
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..validation import check_count
from .deadline import Deadline, deadline_opener

ImageInput = str | os.PathLike | bytes | bytearray | Image.Image
"""What the vision encoders and :meth:`SmartIndex.add_images` accept as one image."""
IMAGE_TYPES = (str, os.PathLike, bytes, bytearray, Image.Image)
"""The runtime types of :data:`ImageInput`, for ``isinstance`` checks."""

DEFAULT_MAX_DECODE_PIXELS = 40_000_000
"""Default :attr:`ImagePolicy.max_decode_pixels`: the most pixels decoded for one image
(40 MP: about 120 MB as RGB), after any reduced decoding. PIL's own guard is 89 MP."""
MAX_DOWNLOAD_BYTES = 32 << 20
"""Default :attr:`ImagePolicy.max_download_bytes` (32 MiB)."""
DEFAULT_FETCH_TIMEOUT = 10.0
"""Default :attr:`ImagePolicy.fetch_timeout`, in seconds, for one whole download."""
URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")  # two letters at least: "C:\\" is a drive
_LOCAL_HOSTS = ("", "localhost")
_CHUNK = 64 << 10


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


class PolicyRefusal(ValueError):
    """An image source the policy refuses; loaders turn it into an :class:`ImageLoadError` (reason prefixed :data:`REFUSED`)."""


REFUSED = "refused by the image policy: "


@dataclass(frozen=True)
class ImagePolicy:
    """Which image sources may be read, and how much of each (docs: "Security and guarantees").

    A vision encoder holds one (``QwenVLEncoder(..., image_policy=ImagePolicy(...))``, default
    ``ImagePolicy()``) and applies it to every image it loads: ``SmartIndex.add_images`` and
    ``add_items``, LangChain image documents, LlamaIndex image nodes and documents, image
    queries and reranking. ``SmartIndex.add_items`` checks every source of a call before it
    encodes or writes anything. A refused source raises :class:`ImageLoadError` (a
    ``ValueError``) naming its position and id, its reason starting "refused by the image
    policy".

    Args:
        roots: the directories that local paths and ``file://`` URIs must lie in, checked
            after resolving ``~``, ``..`` and symlinks, so neither leads out of a root. None
            (the default): any file the process can read, as the caller chose it. ``()``:
            no local files. Set roots when documents come from someone you do not trust.
        allow_urls: fetch ``http://`` / ``https://`` URLs. Default False: refused, so an
            indexed document cannot make the process fetch from internal hosts.
        url_hosts: with ``allow_urls``, the hosts that may be fetched (``"example.com"``:
            that host; ``".example.com"``: it and its subdomains). None: any host, internal
            ones included. Each redirect's target is checked as well.
        max_download_bytes: the most bytes read from one URL (default 32 MiB). The body is
            streamed and the download stops at the cap (a larger ``Content-Length`` is
            refused before reading).
        fetch_timeout: seconds one download may take in all: connect, headers and body.
        max_decode_pixels: the most pixels decoded for one image read from a file, URL,
            bytes or data URI. A JPEG is decoded at a reduced scale (1/2, 1/4 or 1/8, with
            ``Image.draft``): down towards ``max_pixels``, and at least as far as the cap
            needs. Other formats are decoded in full, so one bigger than the cap is refused
            before decoding. Default :data:`DEFAULT_MAX_DECODE_PIXELS` (40 MP); None: PIL's
            own guard only (``Image.MAX_IMAGE_PIXELS``, 89 MP). Images given as PIL objects
            are already decoded and are not checked.
    """

    roots: tuple[Path, ...] | None = None
    allow_urls: bool = False
    url_hosts: tuple[str, ...] | None = None
    max_download_bytes: int = MAX_DOWNLOAD_BYTES
    fetch_timeout: float = DEFAULT_FETCH_TIMEOUT
    max_decode_pixels: int | None = DEFAULT_MAX_DECODE_PIXELS

    def __post_init__(self) -> None:
        roots: Any = self.roots  # a path or paths as given; stored as a tuple of resolved Paths
        if roots is not None:
            if isinstance(roots, (str, os.PathLike)):
                roots = (roots,)
            if not all(isinstance(root, (str, os.PathLike)) for root in roots):
                raise TypeError("ImagePolicy roots must be paths (str or os.PathLike)")
            roots = tuple(Path(os.path.realpath(Path(os.fspath(root)).expanduser())) for root in roots)
            object.__setattr__(self, "roots", roots)
        hosts = self.url_hosts
        if hosts is not None:
            if isinstance(hosts, str):
                hosts = (hosts,)
            if not all(isinstance(host, str) and host.strip(".") for host in hosts):
                raise TypeError("ImagePolicy url_hosts must be host names (str)")
            object.__setattr__(self, "url_hosts", tuple(host.lower() for host in hosts))
        if not isinstance(self.allow_urls, bool):
            raise TypeError(f"ImagePolicy allow_urls must be a bool, got {type(self.allow_urls).__name__}")
        for name in ("max_download_bytes", "max_decode_pixels"):
            value = getattr(self, name)
            if value is None and name == "max_decode_pixels":
                continue
            check_count(f"ImagePolicy {name}", value)
        timeout = self.fetch_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            raise ValueError(f"ImagePolicy fetch_timeout must be a positive number of seconds, got {timeout!r}")

    # ---- checks --------------------------------------------------------------

    def check(self, image: ImageInput, *, index: int | None = None, item_id: str | None = None) -> None:
        """Raise :class:`ImageLoadError` if the policy refuses this image input.

        Reads no file and fetches nothing: it checks the kind of source, the scheme, the
        ``file://`` host, the resolved path against ``roots`` and a URL against
        ``allow_urls`` / ``url_hosts``. :func:`load_image` checks the same, and the limits.
        """
        try:
            self._source(image)
        except PolicyRefusal as exc:
            raise ImageLoadError(
                REFUSED + str(exc), index=index, item_id=item_id, source=describe_image(image)
            ) from None
        except (OSError, ValueError) as exc:  # e.g. a NUL byte in a path
            raise ImageLoadError(
                f"{type(exc).__name__}: {exc}", index=index, item_id=item_id, source=describe_image(image)
            ) from None

    def check_all(self, images: Iterable[ImageInput | None], *, ids: Sequence[str] | None = None) -> None:
        """:meth:`check` every image (None entries are skipped), naming the first refused one by position and id."""
        for i, image in enumerate(images):
            if image is not None and isinstance(image, IMAGE_TYPES):
                self.check(image, index=i, item_id=None if ids is None else ids[i])

    def _source(self, image: ImageInput) -> tuple[str, Any]:
        """What to read: ``("image", pil)``, ``("bytes", data)``, ``("data", uri)``,
        ``("url", url)`` or ``("path", resolved_path)``; raises :class:`PolicyRefusal`."""
        if isinstance(image, Image.Image):
            return "image", image
        if isinstance(image, (bytes, bytearray)):
            return "bytes", bytes(image)
        text = os.fspath(image)
        if isinstance(text, bytes):
            text = os.fsdecode(text)
        if text.startswith("data:"):
            return "data", text
        match = URI_SCHEME.match(text)
        scheme = match.group(1).lower() if match else ("file" if text[:5].lower() == "file:" else None)
        if scheme in ("http", "https"):
            self._check_url(text)
            return "url", text
        if scheme == "file":
            text = file_uri_path(text)
        elif scheme is not None:
            raise PolicyRefusal(
                f"unsupported URI scheme {scheme!r}; an image source is a local path, a file:// URI, "
                "an http(s):// URL (with allow_urls) or a data: URI"
            )
        return "path", self._check_path(text)

    def _check_path(self, text: str) -> Path:
        resolved = Path(os.path.realpath(Path(text).expanduser()))
        if self.roots is not None and not any(resolved.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(root) for root in self.roots) or "none"
            raise PolicyRefusal(f"the path resolves to {str(resolved)!r}, outside the allowed roots ({allowed})")
        return resolved

    def _check_url(self, url: str) -> None:
        if not self.allow_urls:
            raise PolicyRefusal("fetching URLs is off (ImagePolicy(allow_urls=True) turns it on)")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise PolicyRefusal(f"unsupported URL scheme {parts.scheme!r} (http and https only)")
        host = (parts.hostname or "").lower()
        if not host:
            raise PolicyRefusal("the URL names no host")
        if self.url_hosts is not None and not any(
            host == allowed or (allowed.startswith(".") and (host == allowed[1:] or host.endswith(allowed)))
            for allowed in self.url_hosts
        ):
            raise PolicyRefusal(f"host {host!r} is not in url_hosts ({', '.join(self.url_hosts) or 'none'})")

    def check_decode(self, image: Image.Image) -> None:
        """Refuse an opened (not yet decoded) image whose decode would exceed ``max_decode_pixels``."""
        width, height = image.size
        if self.max_decode_pixels is not None and width * height > self.max_decode_pixels:
            raise PolicyRefusal(
                f"decoding it takes {width}x{height} pixels ({width * height / 1e6:.1f} MP), more than "
                f"max_decode_pixels={self.max_decode_pixels} ({self.max_decode_pixels / 1e6:.1f} MP); only a "
                "JPEG can be decoded at a reduced scale (at most 1/8), other formats are decoded in full"
            )

    # ---- fetching --------------------------------------------------------------

    def _fetch(self, url: str, timeout: float | None = None) -> bytes:
        """Download ``url``, streamed, within ``max_download_bytes`` and ``fetch_timeout`` (one total deadline
        over connect, headers, every redirect and the body: :mod:`.deadline`)."""
        limit = self.fetch_timeout if timeout is None else timeout
        try:
            with Deadline(limit) as deadline:
                with deadline_opener(deadline, _PolicyRedirects(self)).open(url, timeout=deadline.left()) as response:
                    length = response.headers.get("Content-Length", "")
                    if length.strip().isdigit() and int(length) > self.max_download_bytes:
                        raise PolicyRefusal(
                            f"the download is {int(length)} bytes, over max_download_bytes={self.max_download_bytes}"
                        )
                    data = bytearray()
                    while chunk := response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK):
                        deadline.left()
                        data += chunk
                        if len(data) > self.max_download_bytes:
                            raise PolicyRefusal(f"the download is over max_download_bytes={self.max_download_bytes}")
                    deadline.left()  # a body cut short by the deadline is not a whole image
        except PolicyRefusal:
            raise
        except Exception:  # the deadline shut the socket: urllib / http.client report it in many ways
            if deadline.passed:
                raise PolicyRefusal(
                    f"the download took longer than fetch_timeout={limit} s (connect, headers, redirects and body)"
                ) from None
            raise
        return bytes(data)


DEFAULT_IMAGE_POLICY = ImagePolicy()
"""The policy of :func:`load_image` and of encoders given none: any local path, no URLs,
32 MiB and 10 s per download (were URLs on), 40 MP decoded per image."""


def image_policy_of(encoder: object) -> ImagePolicy:
    """The :class:`ImagePolicy` an encoder loads images with (``encoder.image_policy``, else the default)."""
    policy = getattr(encoder, "image_policy", None)
    return policy if isinstance(policy, ImagePolicy) else DEFAULT_IMAGE_POLICY


def file_uri_path(uri: str) -> str:
    """The local path of a ``file:`` URI; refuses a URI naming another host or a relative path."""
    parts = urllib.parse.urlsplit(uri)
    if parts.netloc.lower() not in _LOCAL_HOSTS:
        raise PolicyRefusal(
            f"the file:// URI names the host {parts.netloc!r}; only local files are read "
            "(file:///path or file://localhost/path)"
        )
    if not parts.path.startswith("/"):
        raise PolicyRefusal("a file: URI must hold an absolute path (file:///path)")
    return urllib.request.url2pathname(parts.path)


class _PolicyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL the policy allows (scheme, host)."""

    def __init__(self, policy: ImagePolicy) -> None:
        self.policy = policy

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201 (urllib's signature)
        self.policy._check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


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


def open_image(image: ImageInput, policy: ImagePolicy, timeout: float | None) -> Image.Image:
    """Open (lazily) the image behind an input, as the policy allows; may raise anything PIL or urllib raise."""
    kind, source = policy._source(image)
    if kind == "image":
        return source
    if kind == "bytes":
        return Image.open(io.BytesIO(source))
    if kind == "url":
        return Image.open(io.BytesIO(policy._fetch(source, timeout)))
    if kind == "data":
        header, _, payload = source.partition(",")
        if not header.endswith(";base64"):
            raise ValueError("only base64 data URIs are supported")
        return Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
    return Image.open(_open_regular_file(source))  # the resolved path the policy checked


def _open_regular_file(path: Path) -> io.BufferedReader:
    """Open ``path`` for reading only if it is a regular file: a FIFO, device or socket would block or never end.

    The file is opened without blocking and checked through its descriptor, so it cannot be
    swapped between the check and the read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            what = "a directory" if stat.S_ISDIR(kind) else "a FIFO" if stat.S_ISFIFO(kind) else "not a regular file"
            raise PolicyRefusal(f"{str(path)!r} is {what}; only regular files are read")
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
