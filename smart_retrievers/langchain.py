"""LangChain integration (``pip install "smart-retrievers[langchain]"``); see :mod:`smart_retrievers.integrations.langchain`."""

from .integrations.langchain import SmartReranker, SmartRetriever

__all__ = ["SmartReranker", "SmartRetriever"]
