"""The pooled-vector query: cosine search on the pooled column, prefiltered, through the ANN index if any."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_NPROBES: int | None = 50
"""IVF partitions probed per query, at least (measured at 1M rows, quiet: 50 keeps 0.992 of the flat top-100
in 20.6 ms per pooled search, 100 keeps 0.995 in 30.3 ms, 200 keeps 1.000 in 52.6 ms; LanceDB's default
of 20 kept 0.988; the SMART search's nDCG@10 was the same at 50 and 100)."""
DEFAULT_REFINE_FACTOR: int | None = None
"""Index hits re-ranked by exact cosine, as a multiple of the rows asked for (None/0: no refinement). A
search's own default comes from its table's index type (:data:`ANN_DEFAULTS`)."""
ANN_DEFAULTS: dict[str, dict[str, int]] = {
    "IVF_SQ": {"nprobes": 100, "refine_factor": 2},
    "IVF_HNSW_SQ": {"refine_factor": 2},
}
"""A search's knobs by default on an index of this type, where they differ from the module defaults.
Measured at 1M rows, quiet (benchmarks/ann_types.py): IVF_SQ keeps 0.978 of the flat top-100 with 50
partitions alone, 0.990 refined by a factor of 2, and 0.9996 refined with 100 partitions, in 16.7 ms."""
DEFAULT_EF: int | None = None
"""HNSW search list size (None: LanceDB's default); never below the rows asked for."""


def pooled_query(
    table: Any,
    column: str,
    vector: np.ndarray,
    k: int,
    *,
    select: Sequence[str],
    where: str | None = None,
    nprobes: int | None = None,
    refine_factor: int | None = None,
    ef: int | None = None,
    with_row_id: bool = False,
    flat: bool = False,
    index_type: str | None = None,
) -> Any:
    """The LanceDB query for the top ``k`` rows of ``table`` by cosine on ``column``, with ``select`` and ``_distance``.

    The filter applies before the top-k (prefilter), through the table's vector index when
    it has one (rows written since the index was last updated are searched flat and merged
    in), and exhaustively otherwise. ``nprobes`` / ``refine_factor`` / ``ef`` tune the index
    search (None: the defaults of the table's ``index_type`` in :data:`ANN_DEFAULTS`, else
    :data:`DEFAULT_NPROBES`, :data:`DEFAULT_REFINE_FACTOR`, :data:`DEFAULT_EF`); without an
    index they change nothing. ``flat`` bypasses the index: an exact search over
    every (matching) row.
    """
    query = table.search(np.asarray(vector, dtype=np.float32), vector_column_name=column).distance_type("cosine")
    if where:
        query = query.where(where, prefilter=True)
    defaults = ANN_DEFAULTS.get(index_type or "", {})
    nprobes = defaults.get("nprobes", DEFAULT_NPROBES) if nprobes is None else nprobes
    refine_factor = defaults.get("refine_factor", DEFAULT_REFINE_FACTOR) if refine_factor is None else refine_factor
    ef = DEFAULT_EF if ef is None else ef
    if nprobes:  # at least this many partitions; more when a filter leaves fewer than k rows in them
        # a refined search without a filter is held to them: unbounded, LanceDB probed every partition
        query = query.minimum_nprobes(nprobes).maximum_nprobes(nprobes if refine_factor and not where else 0)
    if refine_factor:
        query = query.refine_factor(refine_factor)
    if ef:
        query = query.ef(max(ef, k))
    if with_row_id:
        query = query.with_row_id(True)
    if flat:
        query = query.bypass_vector_index()
    return query.select([*select, "_distance"]).limit(k)
