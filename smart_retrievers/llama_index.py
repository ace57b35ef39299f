"""LlamaIndex integration (``pip install "smart-retrievers[llama-index]"``); see :mod:`smart_retrievers.integrations.llama_index`."""

from .integrations.llama_index import SmartNodeWithScore, SmartRerank, SmartRetriever, SmartVectorIndex, to_smart_filter
from .integrations.llama_index_store import SmartEmbedding, SmartVectorStore

__all__ = [
    "SmartEmbedding",
    "SmartNodeWithScore",
    "SmartRerank",
    "SmartRetriever",
    "SmartVectorIndex",
    "SmartVectorStore",
    "to_smart_filter",
]
