"""Rankings from cached states through an adapter: the pooled top-k, SMART over it, held-out nDCG@10."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..adapter import SmartAdapter
from ..evaluation.metrics import ndcg_at_k
from ..scoring import PackedTokens, rerank_candidates
from .loss import adapt_tokens
from .states import TokenStates

__all__ = ["smart_rankings", "top_pooled", "validation_ndcg"]


def top_pooled(queries: TokenStates, docs: TokenStates, query_rows: Sequence[int], k: int) -> torch.Tensor:
    """Doc rows of each query's top-k pooled cosines (len(query_rows), k)."""
    d_pooled = torch.from_numpy(docs.pooled)
    k = min(k, len(docs))
    out = []
    for start in range(0, len(query_rows), 1024):
        q = torch.from_numpy(queries.pooled[list(query_rows[start : start + 1024])])
        out.append(torch.topk(q @ d_pooled.T, k, dim=1).indices)
    return torch.cat(out) if out else torch.empty(0, k, dtype=torch.long)


@torch.no_grad()
def _adapt(tokens: PackedTokens, adapter: SmartAdapter | None) -> PackedTokens:
    """``tokens`` through ``adapter`` as float16, as an index would store them (as they are, when None)."""
    return tokens if adapter is None else adapt_tokens(adapter, tokens, dtype=torch.float16)


def smart_rankings(
    queries: TokenStates,
    docs: TokenStates,
    adapter: SmartAdapter | None = None,
    *,
    query_ids: Sequence[str] | None = None,
    candidates: int = 100,
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
    show_progress: bool = False,
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Single-vector and SMART rankings from cached states, as :class:`SmartIndex` "rerank" ranks.

    Each query's pooled top-``candidates`` documents are re-scored with
    ``lambda_pool * cos(pooled) + lambda_late * late`` on token states passed through
    ``adapter`` (as stored, when None); queries and documents use the same adapter.
    Only the documents some query has among its candidates are adapted.

    Returns:
        (pooled ranking, SMART ranking): query id → the candidate doc ids, best first.
    """
    query_ids = list(queries.ids if query_ids is None else query_ids)
    q_rows = [queries.row[q] for q in query_ids]
    top = top_pooled(queries, docs, q_rows, candidates).tolist()
    pool = sorted({d for cand in top for d in cand})  # every query's candidates, and so its top-k among these rows
    q_tokens = _adapt(queries.tokens.take(q_rows), adapter)
    _, ranked = rerank_candidates(
        queries.pooled[q_rows],
        [q_tokens.item(i) for i in range(len(q_tokens))],
        docs.pooled[pool],
        _adapt(docs.tokens.take(pool), adapter),
        candidates=candidates,
        lambda_pool=lambda_pool,
        lambda_late=lambda_late,
        show_progress=show_progress,
    )
    single = {qid: [docs.ids[d] for d in cand] for qid, cand in zip(query_ids, top)}
    smart = {qid: [docs.ids[pool[i]] for i in rows] for qid, rows in zip(query_ids, ranked)}
    return single, smart


def validation_ndcg(
    adapter: SmartAdapter,
    queries: TokenStates,
    docs: TokenStates,
    query_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
    candidates: int,
) -> float:
    """nDCG@10 of the SMART ranking through ``adapter`` of the held-out ``query_ids``."""
    _, ranking = smart_rankings(queries, docs, adapter, query_ids=query_ids, candidates=candidates)
    return ndcg_at_k(ranking, {q: qrels[q] for q in query_ids}, 10)
