"""LlamaIndex queries for SMART: a ``QueryBundle`` (text, several strings, or an image) as one query encoding."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from llama_index.core.indices.query.schema import QueryType
from llama_index.core.schema import QueryBundle

if TYPE_CHECKING:
    from ...encoders import SmartEncoder
    from ...encoding import Encoding

__all__ = ["as_query_bundle", "encode_query_bundle", "model_id"]

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
