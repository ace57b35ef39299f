"""One query against one encoded document: each query token's best document token, and the scores.

The scores come from :mod:`smart_retrievers.scoring` (the ranker search uses), so evidence shows
exactly what a search scores; only the *which token* (the arg max) is evidence's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..encoding import Encoding
from ..scoring import PackedTokens, fuse, rank
from .evidence import Evidence, Match

__all__ = ["Matched", "match_tokens", "query_side"]

Span = tuple[int | None, int | None]
"""A character span (start, end) of a text; (None, None) where no text stands behind a token."""


@dataclass(frozen=True)
class Matched:
    """Per query token: its best document token (``best``), their cosine and its share of the late score; the scores
    and the fusion weights they were fused with."""

    best: list[int]
    similarities: np.ndarray
    shares: np.ndarray
    pooled: float
    late: float
    score: float
    lambda_pool: float
    lambda_late: float

    def evidence(
        self,
        query: str,
        query_spans: Sequence[Span],
        doc_id: str | None,
        text: str,
        doc_token: Callable[[int], dict[str, Any]],
        **extra: Any,
    ) -> Evidence:
        """The :class:`Evidence` of this pair: one :class:`Match` per query token, whose document side
        (``doc_token``, ``start``, ``end``; ``patch`` and ``box`` for an image) ``doc_token(position)`` gives;
        ``extra``: the other :class:`Evidence` fields (``truncated``, ``modality``, ``grid``...)."""
        matches = []
        for i, j in enumerate(self.best):
            qs, qe = query_spans[i]
            matches.append(
                Match(
                    query_token=query[qs:qe] if qs is not None else "",
                    query_start=qs,
                    query_end=qe,
                    similarity=float(self.similarities[i]),
                    share=float(self.shares[i]),
                    doc_position=j,
                    **doc_token(j),
                )
            )
        return Evidence(
            query=query,
            doc_id=doc_id,
            text=text,
            pooled=self.pooled,
            late=self.late,
            score=self.score,
            lambda_pool=self.lambda_pool,
            lambda_late=self.lambda_late,
            matches=matches,
            **extra,
        )


def query_side(encoder: Any, query: str) -> tuple[Encoding, list[Span]]:
    """The query's encoding and the spans of its token states (none when only the pooled stand-in was kept)."""
    q_enc = encoder.encode_queries([query], show_progress=False)[0]
    spans: list[Span] = list(encoder.token_spans(query, query=True)[0])
    if len(spans) != len(q_enc.tokens):  # nothing kept: the pooled stand-in is the one token
        spans = [(None, None)] * len(q_enc.tokens)
    return q_enc, spans


def match_tokens(q_enc: Encoding, d_enc: Encoding, lambda_pool: float, lambda_late: float) -> Matched:
    """Each query token's best document token, and the pooled, late and fused scores of the pair."""
    ranking = rank(q_enc.pooled, q_enc.tokens, d_enc.pooled[None, :], PackedTokens.from_list([d_enc.tokens]))
    pooled, late = ranking.pooled[:1], ranking.late[:1]
    sims = q_enc.tokens.astype(np.float32) @ d_enc.tokens.astype(np.float32).T
    best = sims.argmax(axis=1)
    best_sims = sims[np.arange(len(sims)), best].astype(np.float64)
    total = float(best_sims.sum())
    shares = best_sims / total if total > 0 else np.full(len(best_sims), 1.0 / len(best_sims))
    return Matched(
        best=best.tolist(),
        similarities=best_sims,
        shares=shares,
        pooled=float(pooled[0]),
        late=float(late[0]),
        score=float(fuse(pooled, late, lambda_pool, lambda_late)[0]),
        lambda_pool=lambda_pool,
        lambda_late=lambda_late,
    )
