"""LangChain integration (``pip install "smart-retrievers[langchain]"``); see :mod:`smart_retrievers.integrations.langchain`."""

from .integrations.langchain import SmartReranker, SmartRetriever
from .integrations.langchain_store import SmartEmbeddings, SmartVectorStore

__all__ = ["SmartEmbeddings", "SmartReranker", "SmartRetriever", "SmartVectorStore"]
