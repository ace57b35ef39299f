"""The lexical methods of ``smart-retrievers eval``: BM25, LanceDB's RRF hybrid, and hybrid SMART.

BM25 comes from LanceDB's native full-text index over the documents' texts (a temporary table
with the index's default :class:`~smart_retrievers.store.TextIndexSettings`); hybrid SMART scores
exactly as :class:`~smart_retrievers.index.SmartIndex` "hybrid" mode does (same candidates, same
:func:`~smart_retrievers.lexical.lexical_scores`), on the encodings the other methods use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..lexical import DEFAULT_LAMBDA_LEX, lexical_scores, mean_words, rrf
from ..options import DEFAULT_TEXT_CANDIDATES
from ..scoring import PackedTokens, rank
from ..store.fulltext import bm25_top

__all__ = ["LEXICAL_METHODS", "lexical_rankings"]

LEXICAL_METHODS = ("bm25", "hybrid-rrf", "smart-hybrid")


def lexical_rankings(
    doc_texts: Sequence[str],
    query_texts: Sequence[str],
    q_pooled: torch.Tensor,
    q_tokens: Sequence[Any],
    pooled: torch.Tensor,
    d_pooled: torch.Tensor,
    d_tokens: PackedTokens,
    *,
    candidates: int,
    depth: int,
    text_candidates: int | None = None,
    lambda_pool: float,
    lambda_late: float,
    lambda_lex: float = DEFAULT_LAMBDA_LEX,
    codec: Any = None,
    show_progress: bool = True,
) -> dict[str, list[list[int]]]:
    """Rankings (document positions, cut at ``depth``) of "bm25", "hybrid-rrf" and "smart-hybrid".

    ``pooled`` is the query × document pooled cosine matrix. "hybrid-rrf" is RRF (k=60) of the
    pooled and the BM25 rankings, what LanceDB's default hybrid query gives; "smart-hybrid" is
    SMART on the pooled top-``candidates`` ∪ the BM25 top-``text_candidates`` (None: the search default)
    plus ``lambda_lex`` times the lexical term.
    """
    text_candidates = DEFAULT_TEXT_CANDIDATES if text_candidates is None else text_candidates
    lexical = bm25_top(doc_texts, query_texts, max(candidates, text_candidates, depth), show_progress=show_progress)
    out: dict[str, list[list[int]]] = {method: [] for method in LEXICAL_METHODS}
    n_docs = len(doc_texts)
    for i in tqdm(range(len(query_texts)), desc="SMART hybrid", disable=not show_progress):
        bm25 = lexical[i]
        by_bm25 = sorted(bm25, key=lambda d: -bm25[d])
        by_pooled = torch.topk(pooled[i], min(max(candidates, depth), n_docs)).indices.tolist()
        out["bm25"].append(by_bm25[:depth])
        out["hybrid-rrf"].append([int(d) for d in rrf(by_pooled, by_bm25)[:depth]])
        pool = by_pooled[:candidates]
        words = mean_words([doc_texts[d] for d in pool])
        best = max(bm25.values(), default=0.0)
        in_pool = set(pool)
        union = pool + [d for d in by_bm25[:text_candidates] if d not in in_pool]
        lex, _ = lexical_scores(
            [bm25.get(d, 0.0) for d in union], best_bm25=best, words=words, text=query_texts[i], n_rows=n_docs
        )
        if not lex.any():
            union = pool
            lex = lex[: len(pool)]
        ranking = rank(
            q_pooled[i],
            q_tokens[i],
            d_pooled[union],
            d_tokens.take(union),
            lambda_pool=lambda_pool,
            lambda_late=lambda_late,
            k=len(union),
            codec=codec,
        )
        total = np.asarray(ranking.fused, dtype=np.float64) + lambda_lex * lex
        order = sorted(range(len(union)), key=lambda j: -total[j])
        out["smart-hybrid"].append([union[j] for j in order[:depth]])
    return out
