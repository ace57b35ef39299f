"""One loaded copy per process of the bundled model: every class that needs the default encoder shares it.

An index, a retriever, a reranker and an embedding model opened without an encoder all ask
:func:`shared_encoder` for it, so a process holds the model's weights once however many of them
it opens. Copies are keyed on the model path, the device, the dtype and the other settings the
encoder was asked for (``batch_size``, ``max_length``, ``adapter``...): a different setting gets
its own copy, since those are the encoder object's own attributes. The copies live until
:func:`clear_shared_encoders` (or the process ends).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["clear_shared_encoders", "shared_encoder"]

_LOCK = threading.Lock()
_SHARED: dict[Hashable, Any] = {}


def shared_key(path: str, settings: dict[str, Any]) -> Hashable | None:
    """The cache key of ``path`` loaded with ``settings``: the resolved device and dtype, then the rest sorted.

    None when a setting is not hashable (an adapter object, a policy with lists): such a load is not shared.
    """
    from .loading import auto_device, default_dtype

    device = settings.get("device") or auto_device()
    dtype = settings.get("dtype") or default_dtype(device)
    rest = tuple(sorted((name, value) for name, value in settings.items() if name not in ("device", "dtype")))
    key = (str(path), str(device), str(dtype), rest)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def shared_encoder(path: str, load: Callable[..., Any], **settings: Any) -> Any:
    """The process's copy of the encoder ``load(**settings)`` gives for the model at ``path``; loaded on first use.

    Thread-safe: two threads asking at once load it once.
    """
    key = shared_key(path, settings)
    if key is None:
        return load(**settings)
    with _LOCK:
        encoder = _SHARED.get(key)
        if encoder is None:
            encoder = _SHARED[key] = load(**settings)
        return encoder


def clear_shared_encoders() -> int:
    """Forget every shared copy (objects still referenced elsewhere stay alive); returns how many there were."""
    with _LOCK:
        count = len(_SHARED)
        _SHARED.clear()
        return count
