"""Searches on pooled vectors only: a caller's embedding as a query, and maximal marginal relevance.

SMART's late interaction needs the query's token states, which only the index's own encoder
gives. A caller's embedding (LangChain's ``similarity_search_by_vector``, LlamaIndex's
``query_embedding``) has none, so a search by vector ranks by the pooled cosine alone, as any
single-vector store would. MMR is computed on the pooled vectors too: relevance is the cosine of
the query's pooled vector with each candidate's, redundancy the cosine between candidates (the
same algorithm as LangChain's and LlamaIndex's own MMR).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..encoding import Encoding
from ..store import SmartStore, vectors_block
from .hits import Hit

__all__ = ["mmr_order", "mmr_select", "vector_query"]


def vector_query(vector: Sequence[float] | np.ndarray, dim: int) -> Encoding:
    """A caller's embedding as a query :class:`~smart_retrievers.encoding.Encoding` for a pooled search.

    The vector is L2-normalised (the stored pooled vectors are); its dimension must be ``dim`` (the
    encoder's). It is its own single token state, which a pooled search never reads.
    """
    pooled = np.asarray(vector, dtype=np.float32)
    if pooled.ndim != 1 or pooled.shape[0] != dim or not np.isfinite(pooled).all():
        raise ValueError(f"the query vector must be {dim} finite floats (the encoder's pooled dimension)")
    norm = float(np.linalg.norm(pooled))
    if norm == 0:
        raise ValueError("the query vector is all zeros")
    pooled = pooled / norm
    return Encoding(pooled=pooled, tokens=pooled[None, :].astype(np.float16), modality="text")


def mmr_order(query: np.ndarray, vectors: np.ndarray, k: int, lambda_mult: float = 0.5) -> list[int]:
    """Maximal marginal relevance: up to ``k`` rows of ``vectors`` (N, d), in selection order.

    Each step takes the row maximising ``lambda_mult * cos(query, row) - (1 - lambda_mult) *
    max cos(row, selected)``; the first is the most similar row. Ties keep input order.
    ``lambda_mult`` 1 is plain similarity order, 0 maximal diversity.
    """
    if not 0.0 <= lambda_mult <= 1.0:
        raise ValueError(f"lambda_mult must be in [0, 1], got {lambda_mult}")
    if len(vectors) == 0 or k < 1:
        return []
    vectors = np.asarray(vectors, dtype=np.float32)
    relevance = vectors @ np.asarray(query, dtype=np.float32)
    pairwise = vectors @ vectors.T
    selected = [int(np.argmax(relevance))]
    redundancy = pairwise[selected[0]].copy()
    while len(selected) < min(k, len(vectors)):
        score = lambda_mult * relevance - (1.0 - lambda_mult) * redundancy
        score[selected] = -np.inf
        best = int(np.argmax(score))
        selected.append(best)
        redundancy = np.maximum(redundancy, pairwise[best])
    return selected


def mmr_select(store: SmartStore, query: Encoding, hits: Sequence[Hit], k: int, lambda_mult: float) -> list[Hit]:
    """``k`` of the pooled ``hits`` in MMR order, on their stored pooled vectors (a row deleted meanwhile is dropped)."""
    if not hits:
        return []
    rows = store.get([hit.id for hit in hits], columns=["id", "vector"])
    vectors = vectors_block(rows.column("vector")).numpy()
    position = {row_id: i for i, row_id in enumerate(rows.column("id").to_pylist())}
    hits = [hit for hit in hits if hit.id in position]
    order = mmr_order(query.pooled, vectors[[position[hit.id] for hit in hits]], k, lambda_mult)
    return [hits[i] for i in order]
