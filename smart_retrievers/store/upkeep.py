"""Table upkeep: compaction, old versions, the pooled ANN index (defaults measured in benchmarks/scale.py) and the
full-text index."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .errors import retry_preempted
from .fulltext import TextIndexSettings, create_text_index, text_index

ANN_INDEX_TYPES: tuple[str, ...] = (
    "IVF_FLAT",
    "IVF_SQ",
    "IVF_PQ",
    "IVF_RQ",
    "IVF_HNSW_SQ",
    "IVF_HNSW_PQ",
    "IVF_HNSW_FLAT",
)
"""LanceDB vector index types :meth:`SmartStore.optimize` can build on ``vector``."""
DEFAULT_ANN_INDEX = "IVF_SQ"
"""The index type built by default. At 1M rows (quiet, benchmarks/ann_types.py) IVF_SQ trains in 9 s and, with
its search defaults (:data:`~smart_retrievers.store.query.ANN_DEFAULTS`: 100 partitions, hits refined by a
factor of 2), keeps 0.9996 of the flat top-100 in 16.7 ms, the searching process holding 0.57 GB for it;
IVF_FLAT trains in 17 s and keeps 0.995 in 25.8 ms at 100 partitions (0.979 in 15.0 ms at 50), holding
1.74 GB (it repeats every pooled vector)."""
DEFAULT_ANN_MIN_ROWS = 10_000
"""Rows from which ``optimize()`` builds the ANN index by default (measured: from 10k rows it halves the
pooled search time; below, a flat scan takes tens of milliseconds and the index would add disk and work)."""

_CONFIG_NAMES = {
    "IVF_FLAT": "IvfFlat",
    "IVF_SQ": "IvfSq",
    "IVF_PQ": "IvfPq",
    "IVF_RQ": "IvfRq",
    "IVF_HNSW_SQ": "IvfHnswSq",
    "IVF_HNSW_PQ": "IvfHnswPq",
    "IVF_HNSW_FLAT": "IvfHnswFlat",
}
"""Our index type name -> LanceDB's config class (and the type name ``list_indices`` reports)."""
_INDEX_TYPE_NAMES = {config: name for name, config in _CONFIG_NAMES.items()}


@dataclass
class OptimizeReport:
    """What :meth:`SmartStore.optimize` / :meth:`SmartIndex.optimize` did.

    Attributes:
        rows: rows in the table after the call.
        fragments_before / fragments_after: LanceDB data fragments (compaction merges small ones).
        versions_before / versions_after: table versions kept (cleanup drops those past retention).
        index_built: True when the ANN index on ``vector`` was (re)trained by this call.
        index_name / index_type: the vector index after the call (None: no index).
        indexed_rows / unindexed_rows: rows the index covers / rows still searched flat.
        index_seconds: time spent training the index (0 when not built).
        text_index_built: True when this call built the full-text (BM25) index on the text column.
        text_indexed_rows / text_unindexed_rows: rows the full-text index covers / rows it still
            searches exhaustively (both 0 without one).
        optimize_seconds: time in LanceDB's ``optimize`` (compaction, cleanup, index update).
        seconds: the whole call.
    """

    rows: int = 0
    fragments_before: int = 0
    fragments_after: int = 0
    versions_before: int = 0
    versions_after: int = 0
    index_built: bool = False
    index_name: str | None = None
    index_type: str | None = None
    indexed_rows: int = 0
    unindexed_rows: int = 0
    index_seconds: float = 0.0
    text_index_built: bool = False
    text_indexed_rows: int = 0
    text_unindexed_rows: int = 0
    optimize_seconds: float = 0.0
    seconds: float = 0.0


def ann_config(index_type: str, num_partitions: int | None) -> Any:
    """The LanceDB index config of ``index_type`` with cosine distance."""
    from lancedb import index as lance_index

    config_class = getattr(lance_index, _CONFIG_NAMES[index_type])
    return config_class(distance_type="cosine", num_partitions=num_partitions)


def vector_index(table: Any, column: str) -> Any:
    """The LanceDB index config on ``column`` of ``table`` (name, type, indexed / unindexed rows), or None."""
    return next((i for i in table.list_indices() if list(i.columns) == [column]), None)


def index_type_name(index: Any) -> str | None:
    """Our name (one of :data:`ANN_INDEX_TYPES`) of a LanceDB index config's type; None for no index."""
    return None if index is None else _INDEX_TYPE_NAMES.get(index.index_type, index.index_type)


def _check_options(index_type: str, ann_min_rows: int | None, cleanup_older_than: timedelta | None) -> None:
    """Raise ``ValueError`` for an unknown index type, a bad ``ann_min_rows`` or a negative retention."""
    if index_type not in ANN_INDEX_TYPES:
        raise ValueError(f"index_type must be one of {ANN_INDEX_TYPES}, got {index_type!r}")
    if ann_min_rows is not None and (
        isinstance(ann_min_rows, bool) or not isinstance(ann_min_rows, int) or ann_min_rows < 0
    ):
        raise ValueError(f"ann_min_rows must be an int >= 0 or None, got {ann_min_rows!r}")
    if cleanup_older_than is not None and cleanup_older_than < timedelta(0):
        raise ValueError(f"cleanup_older_than must be >= 0, got {cleanup_older_than!r}")


def optimize_table(
    table: Any,
    column: str,
    *,
    cleanup_older_than: timedelta | None = timedelta(days=7),
    delete_unverified: bool = False,
    ann_min_rows: int | None = None,
    index_type: str = DEFAULT_ANN_INDEX,
    num_partitions: int | None = None,
    rebuild_index: bool = False,
    text_column: str | None = None,
    text_settings: TextIndexSettings | None = None,
) -> OptimizeReport:
    """Compact a LanceDB ``table`` (None: not created yet), drop old versions, and keep its ANN index on ``column``.

    1. LanceDB's ``table.optimize``: small data files are merged (compaction; every row
       and value is kept), versions older than ``cleanup_older_than`` are removed
       (``timedelta(0)``: all but the latest, unsafe while other processes read older
       versions; None: LanceDB's default of 7 days), and an existing index is brought up
       to date: rows written since it was trained are added to it (incrementally,
       without retraining its partitions).
    2. If the table has no index on ``column`` and holds at least ``ann_min_rows`` rows
       (None: never), or ``rebuild_index`` is set, a LanceDB ``index_type`` index with
       cosine distance is trained on every row (``num_partitions`` None: LanceDB's own
       choice from the row count).
    3. With a ``text_column``, the full-text (BM25) index on it is built once the table has
       rows and none exists (``text_settings``, None: the defaults); step 1 keeps an existing
       one up to date.
    4. Versions past ``cleanup_older_than`` are removed once more, so that those the
       steps above committed go too when the retention allows.
    """
    _check_options(index_type, ann_min_rows, cleanup_older_than)
    if table is None:
        return OptimizeReport(rows=0, seconds=0.0)
    start = time.perf_counter()
    stats = table.stats()
    report = OptimizeReport(
        rows=stats["num_rows"],
        fragments_before=stats["fragment_stats"]["num_fragments"],
        versions_before=len(table.list_versions()),
    )
    compact_start = time.perf_counter()
    _compact(table, cleanup_older_than, delete_unverified)
    report.optimize_seconds = time.perf_counter() - compact_start
    existing = vector_index(table, column)
    if rebuild_index or (existing is None and ann_min_rows is not None and report.rows >= ann_min_rows):
        # trained after compaction, so that no compaction has to remap (and copy) it right away
        index_start = time.perf_counter()
        table.create_index(column, config=ann_config(index_type, num_partitions), replace=True)
        report.index_built = True
        report.index_seconds = time.perf_counter() - index_start
    if text_column is not None and report.rows and text_index(table, text_column) is None:
        create_text_index(table, text_column, text_settings or TextIndexSettings())
        report.text_index_built = True
    if cleanup_older_than is not None and (existing is not None or report.index_built or report.text_index_built):
        # the versions committed after LanceDB's cleanup step (the index build, an index remapped by
        # the compaction) hold whole index copies: a second pass (no compaction left to do) drops them
        # too, retention permitting
        _compact(table, cleanup_older_than, delete_unverified)
    stats = table.stats()
    report.rows = stats["num_rows"]
    report.fragments_after = stats["fragment_stats"]["num_fragments"]
    report.versions_after = len(table.list_versions())
    index = vector_index(table, column)
    if index is not None:
        report.index_name = index.name
        report.index_type = index_type_name(index)
        report.indexed_rows = index.num_indexed_rows
        report.unindexed_rows = index.num_unindexed_rows
    fulltext = None if text_column is None else text_index(table, text_column)
    if fulltext is not None:
        report.text_indexed_rows = fulltext.num_indexed_rows
        report.text_unindexed_rows = fulltext.num_unindexed_rows
    report.seconds = time.perf_counter() - start
    return report


def _compact(table: Any, cleanup_older_than: timedelta | None, delete_unverified: bool) -> None:
    """LanceDB's ``optimize``: compaction, cleanup of old versions, index update; run again from the latest
    version when another writer's commit preempted it (a ``recompress`` swap: Lance's "preempted by Merge")."""

    def optimize() -> None:
        with warnings.catch_warnings():  # LanceDB warns on every cleanup_older_than=0; the docstring says it
            warnings.simplefilter("ignore", UserWarning)
            table.optimize(cleanup_older_than=cleanup_older_than, delete_unverified=delete_unverified)

    retry_preempted(table, optimize, f"optimize() of table {table.name!r}")
