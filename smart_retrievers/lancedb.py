"""LanceDB integration: SMART as the rerank step of your own LanceDB queries; see :mod:`smart_retrievers.integrations.lancedb`."""

from .integrations.lancedb import SmartLanceReranker

__all__ = ["SmartLanceReranker"]
