"""A LlamaIndex embedding model on a SMART encoder (its pooled vectors), for the framework's embedding step."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

if TYPE_CHECKING:
    from ...encoders import SmartEncoder
    from ...rerank import EncodingCache

__all__ = ["SmartEmbedding"]


class SmartEmbedding(BaseEmbedding):
    """A LlamaIndex embedding model returning a SMART encoder's pooled vectors.

    ``get_text_embedding`` encodes as a document and ``get_query_embedding`` as a query (the
    encoder's document / query prompts), exactly as :class:`~smart_retrievers.SmartIndex`
    stores and searches them, so ``Settings.embed_model = SmartEmbedding()`` keeps a
    ``VectorStoreIndex`` over a :class:`SmartVectorStore` on one model. Calls go through
    ``BaseEmbedding``'s public methods, so ``CBEventType.EMBEDDING`` events fire and
    ``TokenCountingHandler`` counts them.

    Args:
        encoder: the encoder (default: the bundled all-MiniLM-L6-v2).
        embed_batch_size: texts per encoder call.
        cache: an :class:`~smart_retrievers.rerank.EncodingCache` that receives the document
            encodings (pooled vector and token states) this model computes; a
            :class:`SmartVectorStore` sharing it writes those texts without encoding them
            again. :meth:`SmartVectorStore.embed_model` sets it up.
    """

    embed_batch_size: int = Field(default=32, gt=0, description="Texts per encoder call.")

    _encoder: Any = PrivateAttr()
    _cache: Any = PrivateAttr(default=None)

    def __init__(
        self,
        encoder: SmartEncoder | None = None,
        *,
        embed_batch_size: int = 32,
        cache: EncodingCache | None = None,
        **kwargs: Any,
    ) -> None:
        from ...encoders import default_encoder

        encoder = encoder or default_encoder()
        super().__init__(model_name=encoder.name, embed_batch_size=embed_batch_size, **kwargs)
        self._encoder = encoder
        self._cache = cache

    @classmethod
    def class_name(cls) -> str:
        return "SmartEmbedding"

    @property
    def encoder(self) -> SmartEncoder:
        """The encoder computing the vectors."""
        return self._encoder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encoder.encode_queries([query], show_progress=False)[0].pooled.tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        encodings = self._encoder.encode_documents(list(texts), show_progress=False)
        if self._cache is not None:
            for text, enc in zip(texts, encodings):
                self._cache.put(text, enc)
        return [enc.pooled.tolist() for enc in encodings]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
