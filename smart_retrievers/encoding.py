"""The Encoding contract shared by every encoder (text or vision) and the weights fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers.utils import cached_file

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_SAMPLE_BYTES = 1 << 20


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


def fingerprint_weights(model_name_or_path: str, local_files_only: bool = True) -> str:
    """A short, fast hash of a model's config and weight files.

    Hashes config.json plus each weight file's name, size and first/last MiB, so it
    changes with the weights without reading gigabytes.
    """
    config = cached_file(
        model_name_or_path,
        "config.json",
        local_files_only=local_files_only,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
    )
    digest = hashlib.sha256()
    if config is None:
        digest.update(model_name_or_path.encode())
        return digest.hexdigest()[:16]
    folder = Path(config).parent
    digest.update(Path(config).read_bytes())
    for weights in sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES):
        size = weights.stat().st_size
        digest.update(f"{weights.name}:{size}".encode())
        with weights.open("rb") as fh:
            digest.update(fh.read(_SAMPLE_BYTES))
            fh.seek(max(0, size - _SAMPLE_BYTES))
            digest.update(fh.read(_SAMPLE_BYTES))
    return digest.hexdigest()[:16]
