"""A model-free encoder for tests where the model is not what is under test: deterministic vectors from a
hash of each text (the one home of this helper; tests import it as ``from hash_encoder import HashEncoder``,
scripts a test starts put ``tests/`` on ``sys.path`` first).

Crash and concurrency trials start many processes; loading a transformer in each would
cost seconds. This encoder follows the :class:`~smart_retrievers.encoding.Encoder`
contract with numpy alone. It can also leave a trace of each batch it encodes (so a
trial can kill a writer after a chosen batch) and fail on a marked text (a failing call).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from smart_retrievers.encoding import Encoding

FAIL_MARK = "<fail here>"


class HashEncoder:
    """Deterministic unit vectors per text; ``trace`` gets one line per encoded batch."""

    name = "hash-encoder"
    device = "cpu"
    max_length = 64
    reads_images = False

    def __init__(self, dim: int = 32, trace: str | Path | None = None, n_tokens: int | None = None) -> None:
        self._dim = dim
        self.trace = Path(trace) if trace else None
        self.n_tokens = n_tokens  # tokens per text (default: 3 to 7, from the hash)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def token_dim(self) -> int:
        return self._dim

    @property
    def fingerprint(self) -> dict[str, Any]:
        return {"model": self.name, "dim": self._dim, "token_dim": self._dim, "pooling": "hash"}

    @property
    def base_fingerprint(self) -> dict[str, Any]:
        return self.fingerprint

    def _encode(self, texts: Sequence[str]) -> list[Encoding]:
        out = []
        for text in texts:
            if text == FAIL_MARK:
                raise RuntimeError("the encoder failed on a marked text")
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            rng = np.random.default_rng(seed)
            tokens = rng.standard_normal((self.n_tokens or 3 + seed % 5, self._dim)).astype(np.float32)
            tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
            pooled = tokens.mean(axis=0)
            out.append(Encoding(pooled=pooled / np.linalg.norm(pooled), tokens=tokens.astype(np.float16)))
        if self.trace is not None:
            with self.trace.open("a") as f:
                f.write(f"{len(texts)}\n")
        return out

    def encode_queries(self, texts: Sequence[str], **_: Any) -> list[Encoding]:
        return self._encode(texts)

    def encode_documents(self, texts: Sequence[str], **_: Any) -> list[Encoding]:
        return self._encode(texts)

    def encode_items(
        self, texts: Sequence[str | None], images: Sequence[Any] | None = None, **_: Any
    ) -> list[Encoding]:
        if images is not None and any(image is not None for image in images):
            raise TypeError("HashEncoder reads no images")
        return self._encode([t or "" for t in texts])
