"""The Encoding contract shared by every encoder (text or vision) and the weights fingerprint."""

from __future__ import annotations

import hashlib
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import cached_file

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_SAMPLE_BYTES = 1 << 20
_PUNCTUATION = set(string.punctuation) | set("“”‘’«»…–—")
_SUBWORD_MARKS = ("##", "Ġ", "▁", "Ċ")


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


# ---- helpers shared by every encoder (text and vision) -------------------


def auto_device() -> str:
    """The first available of "cuda", "mps" and "cpu"."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def default_dtype(device: str) -> torch.dtype:
    """bfloat16 on CUDA devices that support it, float32 elsewhere."""
    return torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


def load_adapter(adapter: Any, base_fingerprint: dict[str, Any], device: str) -> torch.nn.Module | None:
    """Load (if given as a path) a SMART adapter, check it was trained on this base model, move it to ``device``."""
    if adapter is None:
        return None
    from .adapter import SmartAdapter

    if not isinstance(adapter, SmartAdapter):
        adapter = SmartAdapter.load(adapter)
    adapter.check_base(base_fingerprint)
    return adapter.to(device).eval()


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

    A row whose mask keeps nothing gets its pooled vector (through the adapter) as its
    single token, so token states are never empty.
    """
    pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
    tokens = states.float() if adapter is None else adapter(states.float())
    tokens = torch.nn.functional.normalize(tokens.float(), dim=-1).half().cpu().numpy()
    keep_np = keep.cpu().numpy()
    pooled_np = pooled.cpu().numpy()
    out = []
    for row in range(len(pooled_np)):
        toks = tokens[row][keep_np[row]]
        if len(toks) == 0:  # nothing left after masking: the pooled vector stands in
            stand_in = pooled[row : row + 1] if adapter is None else adapter(pooled[row : row + 1])
            toks = torch.nn.functional.normalize(stand_in.float(), dim=-1).half().cpu().numpy()
        modality = modalities[row] if modalities is not None else "text"
        out.append(Encoding(pooled=pooled_np[row], tokens=np.ascontiguousarray(toks), modality=modality))
    return out
