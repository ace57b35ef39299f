"""LlamaIndex integration (``pip install "smart-retrievers[llama-index]"``); see :mod:`smart_retrievers.integrations.llama_index`."""

from .integrations.llama_index import (
    SmartEmbedding,
    SmartNodeWithScore,
    SmartRerank,
    SmartRetriever,
    SmartVectorIndex,
    SmartVectorStore,
    to_smart_filter,
)

__all__ = [
    "SmartEmbedding",
    "SmartNodeWithScore",
    "SmartRerank",
    "SmartRetriever",
    "SmartVectorIndex",
    "SmartVectorStore",
    "to_smart_filter",
]
