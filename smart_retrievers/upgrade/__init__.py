"""Upgrade a single-vector LanceDB table (LlamaIndex's, LangChain's, plain) to SMART in place.

:func:`upgrade_table` (in :mod:`.table`) checks the vectors, records the layout, backfills the
token columns (:mod:`.backfill`) and catches up rows written or changed since (:mod:`.catch_up`);
:mod:`.texts` says which text each row's vector was computed from.
"""

from .backfill import UpgradeConflictError
from .table import DEFAULT_MIN_COSINE, UpgradeReport, VectorMismatchError, upgrade_table

__all__ = ["DEFAULT_MIN_COSINE", "UpgradeConflictError", "UpgradeReport", "VectorMismatchError", "upgrade_table"]
