"""Fitting a table's codec: its first write's token states, topped up with a generic sample when they are few.

A first write of a handful of documents holds too few tokens for a PCA. The codec is then
fitted on the built-in generic English sample (:func:`generic_sample`) as the table's encoder
encodes it. That sample costs a forward pass over 320 passages, so it is paid once per model:

1. the default model's codec for the default preset, fitted on that sample, ships with the
   package (``data/generic_codec.json.gz``) and is used as it is, with no encoding at all;
2. any other model's sample states are cached on disk per encoder fingerprint
   (``<cache dir>/codec-samples``, see :func:`smart_retrievers.cache.default_cache_dir`), so
   only the first fit on a machine encodes them, with a progress bar.

``python benchmarks/compression.py --ship-codec`` rewrites the shipped codec (after a change of
the default preset or of the codec's format; ``tests/test_codec.py`` checks that it is current).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..cache import default_cache_dir
from .pooling import pool_documents
from .token_codec import DEFAULT_COMPRESSION, TokenCodec, parse_preset

__all__ = [
    "MIN_FIT_TOKENS",
    "fit_and_code",
    "fit_codec",
    "generic_codec",
    "generic_sample",
    "generic_states",
    "shipped_codec",
]

logger = logging.getLogger(__name__)

MIN_FIT_TOKENS = 4096
"""Fewest document tokens a PCA codec is fitted on; a smaller first write gets the generic sample's codec."""
SHIPPED_CODEC = "data/generic_codec.json.gz"
"""The default model's generic codec for :data:`DEFAULT_COMPRESSION`, package data."""
_SAMPLE_BATCH = 32
_STATES: dict[str, list[np.ndarray]] = {}


def generic_sample() -> list[str]:
    """The built-in generic English sample (320 varied passages) that small codec fits use."""
    text = files("smart_retrievers").joinpath("data/generic_sample.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def _identity(fingerprint: dict[str, Any]) -> str:
    """What makes two encoders' states the same (the fingerprint without the readable model name)."""
    return json.dumps({k: v for k, v in fingerprint.items() if k != "model"}, sort_keys=True, default=str)


def generic_states(encoder: Any, *, show_progress: bool | None = None) -> list[np.ndarray]:
    """The generic sample's document token states as ``encoder`` encodes them: from memory, the disk cache,
    or encoded (with a progress bar: ``show_progress``, else the encoder's own setting, so a quiet encoder
    draws none; on when both are None) and cached."""
    key = _identity(encoder.fingerprint)
    if key in _STATES:
        return _STATES[key]
    path = default_cache_dir() / "codec-samples" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"
    states = _read_states(path)
    if states is None:
        texts = generic_sample()
        states = []
        if show_progress is None:
            show_progress = getattr(encoder, "show_progress", None) is not False
        with tqdm(total=len(texts), desc="Codec sample (once per model)", unit="doc", disable=not show_progress) as bar:
            for first in range(0, len(texts), _SAMPLE_BATCH):
                batch = texts[first : first + _SAMPLE_BATCH]
                states += [np.asarray(e.tokens) for e in encoder.encode_documents(batch, show_progress=False)]
                bar.update(len(batch))
        _write_states(path, states)
    _STATES[key] = states
    return states


def _read_states(path: Path) -> list[np.ndarray] | None:
    try:
        with np.load(path) as saved:
            return np.split(saved["tokens"], np.cumsum(saved["lengths"])[:-1])
    except (OSError, KeyError, ValueError):  # absent, or a damaged file: encode again
        return None


def _write_states(path: Path, states: Sequence[np.ndarray]) -> None:
    """Write atomically (a temporary file renamed), so a concurrent reader never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        with os.fdopen(handle, "wb") as out:
            np.savez(out, tokens=np.concatenate(states).astype(np.float16), lengths=[len(s) for s in states])
        os.replace(temporary, path)
    except OSError as error:  # a read-only cache only costs the next process the encoding
        logger.warning("could not cache the codec sample at %s: %s", path, error)


def shipped_codec(preset: str, fingerprint: dict[str, Any]) -> TokenCodec | None:
    """The packaged generic codec, when it was fitted for this preset and an encoder of this fingerprint."""
    shipped = _read_shipped()
    if shipped is None or shipped[0] != preset or shipped[1] != _identity(fingerprint):
        return None
    return shipped[2]


@functools.cache
def _read_shipped() -> tuple[str, str, TokenCodec] | None:
    """The packaged codec's (preset, encoder identity, codec), read once per process (None: not packaged)."""
    resource = files("smart_retrievers").joinpath(SHIPPED_CODEC)
    if not resource.is_file():
        return None
    shipped = json.loads(gzip.decompress(resource.read_bytes()))
    return shipped["preset"], shipped["identity"], TokenCodec.from_json(shipped["codec"])


def generic_codec(preset: str, encoder: Any, *, show_progress: bool | None = None) -> TokenCodec:
    """``preset`` fitted on the generic sample alone, as ``encoder`` encodes it (the shipped one when it fits);
    ``show_progress``: the sample's progress bar, as for :func:`generic_states`."""
    shipped = shipped_codec(preset, encoder.fingerprint)
    return shipped or TokenCodec.fit(preset, generic_states(encoder, show_progress=show_progress))


def fit_codec(
    preset: str,
    tokens: Sequence[np.ndarray],
    encoder: Any = None,
    *,
    min_tokens: int = MIN_FIT_TOKENS,
    show_progress: bool | None = None,
) -> TokenCodec:
    """Fit ``preset`` on document token states, or on the generic sample when they hold fewer than ``min_tokens``.

    A first write of a few short documents would fit a PCA on a handful of tokens: its codec is
    :func:`generic_codec` instead (``encoder`` needed), which costs no encoding for the default model.
    ``show_progress``: the progress bar of that sample's one encoding (None: the encoder's own setting).
    """
    parts = [np.asarray(t, dtype=np.float32) for t in tokens]
    small = _too_few(preset, sum(len(p) for p in parts), encoder, min_tokens)
    return generic_codec(preset, encoder, show_progress=show_progress) if small else TokenCodec.fit(preset, parts)


def fit_and_code(
    preset: str,
    tokens: Sequence[np.ndarray],
    encoder: Any = None,
    *,
    min_tokens: int = MIN_FIT_TOKENS,
    show_progress: bool | None = None,
) -> tuple[TokenCodec, list[np.ndarray]]:
    """:func:`fit_codec`, and the documents' codes under it (each document pooled once, for the fit and its codes)."""
    if not len(tokens):
        raise ValueError("fit_and_code needs at least one document")
    pooled = pool_documents(tokens, parse_preset(preset)[0])
    small = _too_few(preset, sum(len(t) for t in tokens), encoder, min_tokens)
    codec = (
        generic_codec(preset, encoder, show_progress=show_progress) if small else TokenCodec.fit(preset, pooled.tokens)
    )
    return codec, np.split(codec.encode(pooled.tokens), np.cumsum(pooled.lengths)[:-1])


def _too_few(preset: str, count: int, encoder: Any, min_tokens: int) -> bool:
    """Whether ``count`` tokens are too few for a PCA of ``preset`` (then the generic sample's codec is used)."""
    if count >= min_tokens or parse_preset(preset)[1] is None:
        return False
    if encoder is None:
        raise ValueError(
            f"{count} tokens are too few to fit {preset!r} (need {min_tokens}); pass the encoder to fit on the generic sample"
        )
    return True


def write_shipped_codec(encoder: Any, preset: str = DEFAULT_COMPRESSION) -> Path:
    """Fit ``preset`` on the generic sample as ``encoder`` encodes it and write it as the shipped codec."""
    codec = TokenCodec.fit(preset, generic_states(encoder))
    path = Path(str(files("smart_retrievers").joinpath(SHIPPED_CODEC)))
    payload = {"preset": preset, "identity": _identity(encoder.fingerprint), "codec": codec.to_json()}
    path.write_bytes(gzip.compress(json.dumps(payload).encode(), mtime=0))
    _read_shipped.cache_clear()
    return path
