"""Information-retrieval metrics: nDCG@k, recall@k and MRR@k.

They follow the conventions BEIR gets from ``pytrec_eval`` (``ndcg_cut``, ``recall``)
and from its own ``mrr``: linear gains, ideal DCG computed from the query's judgements,
and relevance ``<= 0`` treated as non-relevant.

Every metric takes ``ranking`` (query id -> doc ids, best first), ``qrels`` (query id ->
{doc id: relevance}) and a cutoff ``k >= 1``, and averages over every query in ``qrels``:
a query absent from the ranking scores 0 (BEIR's pytrec_eval path would instead skip it,
which only matters for incomplete runs). Duplicate doc ids count once, at their first
position (a pytrec_eval run cannot hold them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

__all__ = ["RankedIds", "evaluate_ranking", "mrr_at_k", "ndcg_at_k", "ndcg_per_query", "recall_at_k"]

RankedIds = Mapping[str, Sequence[str]]
"""A run: query id -> doc ids, best first (not :class:`smart_retrievers.scoring.Ranking`, one query's scores)."""
Qrels = Mapping[str, Mapping[str, int]]


def _per_query_mean(
    ranking: RankedIds, qrels: Qrels, k: int, score: Callable[[list[str], Mapping[str, int]], float]
) -> float:
    """Average ``score(top-k doc ids, judgements)`` over every query in ``qrels``.

    Raises:
        ValueError: ``k < 1`` or ``qrels`` is empty.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not qrels:
        raise ValueError("qrels is empty")
    total = 0.0
    for qid, judged in qrels.items():
        top_k = list(dict.fromkeys(ranking.get(qid, ())))[:k]
        total += score(top_k, judged)
    return total / len(qrels)


def _ndcg(top_k: list[str], judged: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranking with linear gain ``rel / log2(rank + 1)``."""
    dcg = sum(max(judged.get(doc_id, 0), 0) / math.log2(rank + 1) for rank, doc_id in enumerate(top_k, start=1))
    ideal = sorted((rel for rel in judged.values() if rel > 0), reverse=True)[:k]
    idcg = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def _recall(top_k: list[str], judged: Mapping[str, int]) -> float:
    """Relevant docs in the top k over all relevant docs (0 when none is relevant)."""
    relevant = {doc_id for doc_id, rel in judged.items() if rel > 0}
    return len(relevant.intersection(top_k)) / len(relevant) if relevant else 0.0


def _reciprocal_rank(top_k: list[str], judged: Mapping[str, int]) -> float:
    """1 / rank of the first relevant doc in the top k, else 0."""
    return next((1.0 / rank for rank, doc_id in enumerate(top_k, start=1) if judged.get(doc_id, 0) > 0), 0.0)


def ndcg_at_k(ranking: RankedIds, qrels: Qrels, k: int = 10) -> float:
    """Mean nDCG@k as pytrec_eval's ``ndcg_cut`` computes it.

    DCG uses linear gain ``rel / log2(rank + 1)``; the ideal DCG sorts the query's judged
    relevances descending and cuts at ``k``. Relevance <= 0 and unjudged docs give no gain.
    """
    return _per_query_mean(ranking, qrels, k, lambda top_k, judged: _ndcg(top_k, judged, k))


def ndcg_per_query(ranking: RankedIds, qrels: Qrels, k: int = 10) -> list[float]:
    """nDCG@k of each query of ``qrels``, in its order (their mean is :func:`ndcg_at_k`)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return [_ndcg(list(dict.fromkeys(ranking.get(qid, ())))[:k], judged, k) for qid, judged in qrels.items()]


def recall_at_k(ranking: RankedIds, qrels: Qrels, k: int = 100) -> float:
    """Mean recall@k: relevant (relevance > 0) docs in the top k over all relevant docs."""
    return _per_query_mean(ranking, qrels, k, _recall)


def mrr_at_k(ranking: RankedIds, qrels: Qrels, k: int = 10) -> float:
    """Mean reciprocal rank of the first relevant (relevance > 0) doc in the top k."""
    return _per_query_mean(ranking, qrels, k, _reciprocal_rank)


def evaluate_ranking(ranking: RankedIds, qrels: Qrels) -> dict[str, float]:
    """The standard BEIR summary: ``ndcg@10``, ``recall@100`` and ``mrr@10``."""
    return {
        "ndcg@10": ndcg_at_k(ranking, qrels, 10),
        "recall@100": recall_at_k(ranking, qrels, 100),
        "mrr@10": mrr_at_k(ranking, qrels, 10),
    }
