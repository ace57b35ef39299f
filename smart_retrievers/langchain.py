"""LangChain integration (``pip install "smart-retrievers[langchain]"``); see :mod:`smart_retrievers.integrations.langchain`."""

from .integrations.langchain import SmartEmbeddings, SmartReranker, SmartRetriever, SmartVectorStore

__all__ = ["SmartEmbeddings", "SmartReranker", "SmartRetriever", "SmartVectorStore"]
