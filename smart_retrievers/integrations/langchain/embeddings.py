"""LangChain ``Embeddings`` on a SMART encoder (its pooled vectors)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    from ...encoders import SmartEncoder

__all__ = ["SmartEmbeddings"]


class SmartEmbeddings(Embeddings):
    """LangChain ``Embeddings`` returning a SMART encoder's pooled vectors (L2-normalised).

    ``embed_documents`` encodes as documents and ``embed_query`` as a query (the encoder's
    prompts), as :class:`~smart_retrievers.SmartIndex` stores and searches them.

    Args:
        encoder: the encoder (default: the bundled all-MiniLM-L6-v2).
    """

    def __init__(self, encoder: SmartEncoder | None = None) -> None:
        from ...encoders import default_encoder

        self.encoder = encoder or default_encoder()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [enc.pooled.tolist() for enc in self.encoder.encode_documents(list(texts), show_progress=False)]

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode_queries([text], show_progress=False)[0].pooled.tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed_query, text)
