"""LanceDB integration: SMART as the rerank step of your own LanceDB queries; see :mod:`smart_retrievers.integrations.lancedb_rerank`."""

from .integrations.lancedb_rerank import SmartLanceReranker

__all__ = ["SmartLanceReranker"]
