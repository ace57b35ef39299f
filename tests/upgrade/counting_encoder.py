"""The test HashEncoder, counting what it encodes: it can fail on a chosen call (an interrupted upgrade) and
sleep per call (a slow model, so that another process writes while an upgrade runs)."""

from __future__ import annotations

import time
from typing import Any

from hash_encoder import HashEncoder


class Interrupted(RuntimeError):
    """The failure :class:`Counting` raises on its ``fail_on`` call."""


class Counting(HashEncoder):
    """HashEncoder that counts the documents it encodes, fails on call ``fail_on`` and sleeps ``sleep`` s per call."""

    def __init__(self, fail_on: int | None = None, sleep: float = 0.0) -> None:
        super().__init__()
        self.fail_on, self.sleep, self.calls, self.encoded = fail_on, sleep, 0, 0

    def encode_documents(self, texts: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.fail_on:
            raise Interrupted("killed mid-upgrade")
        time.sleep(self.sleep)
        self.encoded += len(texts)
        return super().encode_documents(texts, **kwargs)
