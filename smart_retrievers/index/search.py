"""The search modes: each is one function ``(store, query, where_sql, options, settings) -> hits``.

* "rerank": the pooled top-``candidates`` (ANN or flat, with the SQL prefilter), then exact SMART
  on their token states; the tokens come with the pooled search (``token_fetch="query"``) or by a
  second read of the candidates' rows (``"take"``);
* "pooled": single-vector cosine only (the baseline; also search by a caller's vector);
* "exhaustive": exact SMART over every matching row, streamed batch by batch.

A new mode is one function and one entry of :data:`MODES`.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from ..encoding import Encoding
from ..options import SearchOptions
from ..scoring import Ranking, rank
from ..store import META_COLUMNS, SmartStore, tokens_from_arrow, vectors_block
from .hits import Hit, hit_from_row
from .options import IndexOptions

__all__ = ["MODES", "rank_rows", "run_search"]

SearchFunction = Callable[[SmartStore, Encoding, "str | None", SearchOptions, IndexOptions], list[Hit]]


def run_search(store: SmartStore, query: Encoding, opts: SearchOptions, settings: IndexOptions) -> list[Hit]:
    """``opts`` (resolved) searched in its mode: the filter and modality rendered to SQL once, then the mode's function."""
    if store.table is None:  # nothing written yet: no fields to filter on, no hits
        return []
    where_sql = store.where_sql(opts.where)
    modality_sql = None if opts.modality is None else store.modality_sql(opts.modality)
    if modality_sql is not None:
        where_sql = f"({where_sql}) AND {modality_sql}" if where_sql else modality_sql
    return MODES[opts.mode](store, query, where_sql, opts, settings)


def rank_rows(
    store: SmartStore, query: Encoding, rows: pa.Table | pa.RecordBatch, opts: SearchOptions, k: int | None = None
) -> Ranking:
    """Rank stored rows (``vector`` and, unless ``lambda_late`` is 0, ``tokens``) against ``query``."""
    late = opts.lambda_late != 0
    return rank(
        query.pooled,
        query.tokens,
        vectors_block(rows.column("vector")),
        tokens_from_arrow(rows.column("tokens")) if late and len(rows) else None,
        lambda_pool=opts.lambda_pool,
        lambda_late=opts.lambda_late,
        k=opts.k if k is None else k,
        codec=store.codec,
    )


def _ranked_hits(store: SmartStore, query: Encoding, rows: pa.Table, opts: SearchOptions) -> list[Hit]:
    ranking = rank_rows(store, query, rows, opts)
    meta = rows.select(META_COLUMNS).to_pylist()
    weights = (opts.lambda_pool, opts.lambda_late)
    return [
        hit_from_row(meta[i], ranking.fused[i], ranking.pooled[i], ranking.late[i], weights=weights)
        for i in ranking.order
    ]


def _ann(opts: SearchOptions) -> dict:
    return {"nprobes": opts.nprobes, "refine_factor": opts.refine_factor, "ef": opts.ef, "flat": opts.flat}


def search_pooled(
    store: SmartStore, query: Encoding, where_sql: str | None, opts: SearchOptions, settings: IndexOptions
) -> list[Hit]:
    """The pooled top-``k`` by cosine alone (weights 1 / 0)."""
    rows = store.search_pooled(query.pooled, opts.k, where=where_sql, columns=[*META_COLUMNS, "vector"], **_ann(opts))
    return _ranked_hits(store, query, rows, opts.updated(lambda_pool=1.0, lambda_late=0.0))


def search_rerank(
    store: SmartStore, query: Encoding, where_sql: str | None, opts: SearchOptions, settings: IndexOptions
) -> list[Hit]:
    """The pooled top-``candidates``, ranked by exact SMART on their token states."""
    n_candidates = max(opts.k, opts.candidates)
    if settings.token_fetch == "query":
        columns = [*META_COLUMNS, "vector", "tokens"]
        rows = store.search_pooled(query.pooled, n_candidates, where=where_sql, columns=columns, **_ann(opts))
    else:  # "take": the candidates' ids first, then only their rows' tokens
        found = store.search_pooled(
            query.pooled,
            n_candidates,
            where=where_sql,
            columns=[*META_COLUMNS, "vector"],
            with_row_id=True,
            **_ann(opts),
        )
        tokens = store.take_rows(found.column("_rowid").to_pylist(), ["tokens"])
        rows = found.drop_columns(["_rowid"]).append_column("tokens", tokens.column("tokens"))
    return _ranked_hits(store, query, rows, opts)


def search_exhaustive(
    store: SmartStore, query: Encoding, where_sql: str | None, opts: SearchOptions, settings: IndexOptions
) -> list[Hit]:
    """Exact SMART over every matching row, batch by batch, keeping the best ``k`` (ties: table order)."""
    best: list[tuple[float, int, dict, float, float]] = []
    seen = 0
    for batch in store.scan([*META_COLUMNS, "vector", "tokens"], where=where_sql):
        ranking = rank_rows(store, query, batch, opts)
        meta = batch.select(META_COLUMNS).to_pylist()
        best.extend(
            (float(ranking.fused[i]), seen + i, meta[i], float(ranking.pooled[i]), float(ranking.late[i]))
            for i in ranking.order
        )
        best = sorted(best, key=lambda b: (-b[0], b[1]))[: opts.k]
        seen += len(batch)
    weights = (opts.lambda_pool, opts.lambda_late)
    return [hit_from_row(m, f, p, late, weights=weights) for f, _, m, p, late in best]


MODES: dict[str, SearchFunction] = {"rerank": search_rerank, "pooled": search_pooled, "exhaustive": search_exhaustive}
"""Search mode (``SearchOptions.mode``) -> the function that runs it."""
