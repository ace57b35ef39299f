"""Hit, the one search result type, and how a stored row becomes one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..scoring import relevance
from ..store import restore_key_order

__all__ = ["Hit", "hit_from_row", "load_metadata"]


@dataclass
class Hit:
    """One search result. ``score`` is the fused SMART score used for ranking.

    ``score = λ_pool·pooled_score + λ_late·late_score + λ_lex·lex_score`` with the search's
    weights; ``lex_score`` is the normalised BM25 times the query's lexical trust
    (:mod:`smart_retrievers.lexical`), 0 outside "hybrid" mode. ``relevance`` is the score mapped
    into [0, 1] by :func:`~smart_retrievers.scoring.relevance` (``clip(score / Σ weights, 0, 1)``,
    the lexical weight counted at the query's trust): what score thresholds and framework
    relevance functions use. 0 for rows read without a search.
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    score: float = 0.0
    pooled_score: float = 0.0
    late_score: float = 0.0
    lex_score: float = 0.0
    ref_id: str | None = None
    image: str | None = None
    modality: str = "text"
    relevance: float = 0.0


def load_metadata(raw: Any) -> dict[str, Any]:
    """A stored ``metadata`` value (JSON text, bytes, a mapping or None) as a dict, in the key order it was written in."""
    if raw is None:
        return {}
    if isinstance(raw, (bytes, str)):
        return restore_key_order(json.loads(raw))
    return restore_key_order(dict(raw))


def hit_from_row(
    row: Mapping[str, Any],
    fused: Any = 0.0,
    pooled: Any = 0.0,
    late: Any = 0.0,
    *,
    weights: tuple[float, float] | None = None,
    lex: Any = 0.0,
) -> Hit:
    """A stored row (``META_COLUMNS``) and its scores as a :class:`Hit`; ``weights`` (the search's, the second
    including the lexical weight in "hybrid" mode) set its relevance."""
    return Hit(
        id=row["id"],
        text=row["text"],
        metadata=load_metadata(row.get("metadata")),
        score=float(fused),
        pooled_score=float(pooled),
        late_score=float(late),
        lex_score=float(lex),
        ref_id=row.get("ref_id"),
        image=row.get("image"),
        modality=row.get("modality") or "text",
        relevance=0.0 if weights is None else relevance(float(fused), *weights),
    )
