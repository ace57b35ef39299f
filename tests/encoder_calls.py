"""Record what an encoder is asked to encode, to prove which candidates reuse stored token states."""

from __future__ import annotations

from typing import Any

import pytest

# public entry point -> the items of one call (texts, or the image of an image item)
_ITEMS = {
    "encode_documents": lambda texts, *_, **__: list(texts),
    "encode_images": lambda images, *_, **__: list(images),
    "encode_items": lambda texts, images=None, *_, **__: [
        t if im is None else im for t, im in zip(texts, images or [None] * len(texts))
    ],
}


def record_document_encodings(monkeypatch: pytest.MonkeyPatch, encoder: Any) -> list[Any]:
    """A list that receives every item ``encoder`` encodes as a document (not as a query).

    ``encode_documents``, ``encode_images`` and ``encode_items`` are wrapped on the instance,
    so the list is right whichever of them the caller uses; a call one of them makes to
    another (a vision encoder's ``encode_items`` calls ``encode_images``) is not counted twice.
    """
    recorded: list[Any] = []
    depth = 0

    def wrap(name: str) -> None:
        original = getattr(encoder, name)
        if not callable(original):
            return

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal depth
            if depth == 0 and not kwargs.get("query", False):
                recorded.extend(_ITEMS[name](*args, **kwargs))
            depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                depth -= 1

        monkeypatch.setattr(encoder, name, counting)

    for name in _ITEMS:
        if hasattr(encoder, name):
            wrap(name)
    return recorded
