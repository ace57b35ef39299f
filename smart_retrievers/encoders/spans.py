"""Token spans: where in a text each kept token state comes from (the encoders' ``token_spans``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["Spans", "kept_spans", "require_offsets"]

Spans = list[tuple[int, int]]


def require_offsets(encoder: Any) -> None:
    """Raise NotImplementedError unless ``encoder`` has a fast tokenizer (one that gives offset mappings)."""
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is None or not getattr(tokenizer, "is_fast", False):
        raise NotImplementedError(
            f"token spans need a fast tokenizer (offset mapping); {type(encoder).__name__} has none"
        )


def kept_spans(
    text: str, offsets: Sequence[Sequence[int]], keep: Sequence[bool], *, start: int = 0, end: int | None = None
) -> Spans:
    """The spans in ``text`` of the kept tokens, given their offsets in a string where ``text`` sits at
    ``[start, end)``; a token outside it gets an empty span at the nearer edge. Whitespace that byte-level
    BPE offsets include is trimmed (" red" -> "red")."""
    limit = len(text) if end is None else end - start
    out = []
    for (s, e), k in zip(offsets, keep):
        if not k:
            continue
        s, e = min(max(0, s - start), limit), min(max(0, e - start), limit)
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        out.append((s, e))
    return out
