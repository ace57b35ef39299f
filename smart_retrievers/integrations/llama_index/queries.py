"""LlamaIndex queries for SMART: a ``QueryBundle`` (text, several strings, or an image) as one query encoding."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from llama_index.core.indices.query.schema import QueryType
from llama_index.core.schema import QueryBundle
from llama_index.core.vector_stores.types import VectorStoreQueryMode

if TYPE_CHECKING:
    from ...encoders import SmartEncoder
    from ...encoding import Encoding

__all__ = [
    "DEFAULT_MMR_FETCH_K",
    "QUERY_KWARGS",
    "QUERY_MODES",
    "as_query_bundle",
    "encode_query_bundle",
    "mmr_fetch_k",
    "mode_settings",
    "model_id",
    "query_settings",
    "search_mode",
]

DEFAULT_MMR_FETCH_K = 20
"""Pooled candidates MMR chooses from (at least 4 x similarity_top_k), unless ``mmr_prefetch_k`` is given."""
QUERY_KWARGS = ("mmr_threshold", "mmr_prefetch_k", "mmr_prefetch_factor", "query_type")
"""What ``SmartVectorStore.query`` understands in its keyword arguments (a retriever's ``vector_store_kwargs``)."""
QUERY_TYPES = {"vector": None, "fts": "text", "hybrid": "hybrid"}
"""``query_type`` values (as LlamaIndex's LanceDB store names them) and the SmartIndex search mode of each
(None: the default SMART search)."""

QUERY_MODES = (
    VectorStoreQueryMode.DEFAULT,
    VectorStoreQueryMode.HYBRID,
    VectorStoreQueryMode.TEXT_SEARCH,
    VectorStoreQueryMode.MMR,
)
"""The ``VectorStoreQueryMode`` values ``SmartVectorStore.query`` answers."""

logger = logging.getLogger(__name__)


def encode_query_bundle(encoder: SmartEncoder, query_bundle: QueryBundle) -> Encoding:
    """Encode a query bundle's ``embedding_strs`` (``custom_embedding_strs`` or ``query_str``).

    Several strings (e.g. HyDE's hypothetical document plus the query) give one query whose
    pooled vector is their normalised mean, as LlamaIndex aggregates embeddings, and whose
    token states are all of theirs. A precomputed ``query_bundle.embedding`` is never used:
    it may come from another model and carries no token states.

    A bundle with an ``image_path`` is an image query (the encoder must be a vision
    encoder); its strings, if any, are encoded with the image as one interleaved query
    (Qwen-VL encoders; CLIP/SigLIP take an image or a text, not both).
    """
    from ...encoders import reads_images
    from ...encoding import Encoding

    if not isinstance(query_bundle, QueryBundle):
        raise TypeError(f"expected a QueryBundle, got {type(query_bundle).__name__}")
    texts = query_bundle.embedding_strs
    if query_bundle.image_path:
        if not reads_images(encoder):
            raise TypeError(f"an image query needs a vision encoder; {type(encoder).__name__} cannot encode images")
        text = "\n".join(t for t in texts if t.strip()) or None
        return encoder.encode_inputs(texts=[text], images=[query_bundle.image_path], query=True, show_progress=False)[0]
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError(
            f"the query has no text to encode (query_str={query_bundle.query_str!r}, custom_embedding_strs={query_bundle.custom_embedding_strs!r})"
        )
    if query_bundle.embedding is not None:
        logger.debug("ignoring QueryBundle.embedding: SMART encodes the query text itself")
    encodings = encoder.encode_queries(list(texts), show_progress=False)
    if len(encodings) == 1:
        return encodings[0]
    pooled = np.mean([e.pooled for e in encodings], axis=0)
    return Encoding(
        pooled=(pooled / np.linalg.norm(pooled)).astype(np.float32),
        tokens=np.concatenate([e.tokens for e in encodings]),
        modality="text",
    )


def as_query_bundle(str_or_query_bundle: QueryType, *, image: bool = False) -> QueryBundle:
    """A ``QueryBundle`` for a query string (an image path/URL when ``image``), as LlamaIndex builds it."""
    if isinstance(str_or_query_bundle, QueryBundle):
        return str_or_query_bundle
    if not isinstance(str_or_query_bundle, str):
        raise TypeError(f"expected a str or QueryBundle, got {type(str_or_query_bundle).__name__}")
    return (
        QueryBundle(query_str="", image_path=str_or_query_bundle)
        if image
        else QueryBundle(query_str=str_or_query_bundle)
    )


def model_id(encoder: Any) -> str:
    """What loads ``encoder`` again through :func:`~smart_retrievers.encoders.as_encoder`: the bundled
    model's name, else the hub id / directory it was loaded from (else its name)."""
    from ...encoders import BUNDLED_MODEL_NAMES

    name = getattr(encoder, "name", None)
    if name in BUNDLED_MODEL_NAMES:
        return name
    return str(getattr(encoder, "model_name_or_path", None) or name or type(encoder).__name__)


def query_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` of a vector store query, checked: an unknown key raises rather than being dropped."""
    unknown = sorted(set(kwargs) - set(QUERY_KWARGS))
    if unknown:
        raise TypeError(
            f"SmartVectorStore.query() got unexpected keyword argument(s) {unknown} (from vector_store_kwargs?); "
            f"it understands {', '.join(QUERY_KWARGS)}"
        )
    if kwargs.get("mmr_prefetch_k") is not None and kwargs.get("mmr_prefetch_factor") is not None:
        raise ValueError("'mmr_prefetch_factor' and 'mmr_prefetch_k' cannot coexist; pass one of them")
    return dict(kwargs)


def mmr_fetch_k(k: int, settings: dict[str, Any]) -> int:
    """Pooled candidates for MMR: ``mmr_prefetch_k``, else ``k * mmr_prefetch_factor``, else max(20, 4 k)."""
    if settings.get("mmr_prefetch_k") is not None:
        return settings["mmr_prefetch_k"]
    factor = settings.get("mmr_prefetch_factor")
    if factor is not None:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
            raise ValueError(f"mmr_prefetch_factor must be a number > 0, got {factor!r}")
        return max(k, int(k * factor))
    return max(DEFAULT_MMR_FETCH_K, 4 * k)


def search_mode(query_type: Any) -> dict[str, Any]:
    """The SmartIndex search settings for a ``query_type`` ("vector": SMART; "fts": full text; "hybrid")."""
    from typing import get_args

    from ...options import SearchMode

    if query_type is None or query_type == "vector":
        return {}
    if not isinstance(query_type, str) or query_type not in QUERY_TYPES:
        raise ValueError(f"query_type must be one of {', '.join(map(repr, QUERY_TYPES))}, got {query_type!r}")
    mode = QUERY_TYPES[query_type]
    if mode not in get_args(SearchMode):
        raise ValueError(
            f"query_type={query_type!r} needs the SmartIndex search mode {mode!r}, which this version lacks"
        )
    return {"mode": mode}


def mode_settings(mode: VectorStoreQueryMode, alpha: float | None, dense_weight: float) -> dict[str, Any]:
    """The SmartIndex search settings for a query mode: ``TEXT_SEARCH`` is "text"; ``HYBRID`` is "hybrid" with
    ``alpha`` (LlamaIndex's share of the dense part) mapped onto λ_lex, so that
    ``alpha = (λ_pool + λ_late) / (λ_pool + λ_late + λ_lex)``, ``dense_weight`` being the index's
    ``λ_pool + λ_late``; DEFAULT: nothing (the index's own mode)."""
    if mode == VectorStoreQueryMode.TEXT_SEARCH:
        return {"mode": "text"}
    if mode != VectorStoreQueryMode.HYBRID:
        return {}
    if alpha is None:
        return {"mode": "hybrid"}
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if alpha == 0.0:  # the dense part weighs nothing: BM25 alone
        return {"mode": "text"}
    return {"mode": "hybrid", "lambda_lex": dense_weight * (1.0 - alpha) / alpha}
