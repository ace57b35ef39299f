"""LlamaIndex integration (``pip install "smart-retrievers[llama-index]"``); see :mod:`smart_retrievers.integrations.llama_index`."""

from .integrations.llama_index import SmartNodeWithScore, SmartRerank, SmartRetriever, SmartVectorIndex, to_smart_filter

__all__ = ["SmartNodeWithScore", "SmartRerank", "SmartRetriever", "SmartVectorIndex", "to_smart_filter"]
