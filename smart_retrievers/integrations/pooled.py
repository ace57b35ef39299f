"""What both framework vector stores do on pooled vectors only: search by a caller's vector, and MMR.

SMART's late interaction needs the query's token states, which only the store's own encoder
gives. A caller's embedding (``similarity_search_by_vector``, ``VectorStoreQuery.query_embedding``)
has none, so these searches rank by the pooled cosine alone (``mode="pooled"``), as any
single-vector store would. Maximal marginal relevance is computed on the pooled vectors too:
relevance is the cosine of the query's pooled vector with each candidate's, redundancy the
cosine between candidates, over the pooled top-``fetch_k`` (the same algorithm as LangChain's
and LlamaIndex's own MMR).

Framework-free (numpy and the index only), so both integrations share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..encoding import Encoding
    from ..index import Hit, SmartIndex

__all__ = ["mmr_order", "mmr_search", "vector_query"]


def vector_query(index: SmartIndex, vector: Sequence[float]) -> Encoding:
    """A caller's embedding as a query :class:`~smart_retrievers.encoding.Encoding` for ``mode="pooled"``.

    The vector is L2-normalised (the stored pooled vectors are); its dimension must be the
    encoder's. It is its own single token state, which a pooled search never reads.
    """
    from ..encoding import Encoding

    pooled = np.asarray(vector, dtype=np.float32)
    dim = index.encoder.dim
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


def mmr_search(
    index: SmartIndex,
    query: Encoding,
    k: int,
    *,
    fetch_k: int = 20,
    lambda_mult: float = 0.5,
    where: Any = None,
) -> list[Hit]:
    """MMR over the pooled top-``fetch_k`` rows matching ``where``: ``k`` hits in MMR order.

    Each hit's ``score`` is its pooled cosine (``pooled_score``; ``late_score`` 0) and its
    ``relevance`` that cosine clipped to [0, 1].
    """
    from ..store import vectors_block

    hits = index.search_encoded(query, k=max(k, fetch_k), mode="pooled", where=where)
    if not hits:
        return []
    rows = index.store.get([hit.id for hit in hits], columns=["id", "vector"])
    vectors = vectors_block(rows.column("vector")).numpy()
    position = {row_id: i for i, row_id in enumerate(rows.column("id").to_pylist())}
    hits = [hit for hit in hits if hit.id in position]  # a row deleted in between: dropped
    order = mmr_order(query.pooled, vectors[[position[hit.id] for hit in hits]], k, lambda_mult)
    return [hits[i] for i in order]
