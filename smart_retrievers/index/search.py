"""The search modes: each is one function ``(store, query, where_sql, options, settings, text) -> hits``.

* "hybrid" (the default): "rerank"'s candidates plus the full-text top-``text_candidates``, ranked by
  exact SMART plus ``λ_lex`` times the normalised BM25 at the query's lexical trust
  (:mod:`smart_retrievers.lexical`); "rerank" where the table has no full-text index or the query
  no text, and exactly "rerank" when the trust or ``λ_lex`` is 0;
* "text": BM25 alone, from the full-text index;
* "rerank": the pooled top-``candidates`` (ANN or flat, with the SQL prefilter), then exact SMART
  on their token states; the tokens come with the pooled search (``token_fetch="query"``) or by a
  second read of the candidates' rows (``"take"``);
* "pooled": single-vector cosine only (the baseline; also search by a caller's vector);
* "exhaustive": exact SMART over every matching row, streamed batch by batch.

A new mode is one function and one entry of :data:`MODES`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..encoding import Encoding
from ..lexical import length_trust, lexical_scores, mean_words, normalised_bm25
from ..options import ResolvedSearchOptions
from ..scoring import Ranking, rank
from ..store import META_COLUMNS, SmartStore, tokens_from_arrow, vectors_block
from .hits import Hit, hit_from_row
from .options import IndexOptions

__all__ = ["MODES", "LexicalContext", "lexical_context", "rank_rows", "run_search"]

logger = logging.getLogger(__name__)

_CANDIDATE_COLUMNS = [*META_COLUMNS, "vector", "tokens"]
"""What SMART scores a candidate row with, and what its hit is made of."""

SearchFunction = Callable[
    [SmartStore, Encoding, "str | None", ResolvedSearchOptions, IndexOptions, "str | None"], list[Hit]
]


def run_search(
    store: SmartStore, query: Encoding, opts: ResolvedSearchOptions, settings: IndexOptions, *, text: str | None = None
) -> list[Hit]:
    """``opts`` (resolved) searched in its mode: the filter and modality rendered to SQL once, then the mode's function.

    ``text`` is the query's words, for the full-text index ("hybrid", "text").
    """
    if store.table is None:  # nothing written yet: no fields to filter on, no hits
        return []
    where_sql = store.where_sql(opts.where)
    modality_sql = None if opts.modality is None else store.modality_sql(opts.modality)
    if modality_sql is not None:
        where_sql = f"({where_sql}) AND {modality_sql}" if where_sql else modality_sql
    return MODES[opts.mode](store, query, where_sql, opts, settings, text)


def rank_rows(
    store: SmartStore,
    query: Encoding,
    rows: pa.Table | pa.RecordBatch,
    opts: ResolvedSearchOptions,
    k: int | None = None,
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


def _ranked_hits(store: SmartStore, query: Encoding, rows: pa.Table, opts: ResolvedSearchOptions) -> list[Hit]:
    ranking = rank_rows(store, query, rows, opts)
    meta = (
        rows.select(META_COLUMNS).take(pa.array(ranking.order, pa.int64())).to_pylist()
    )  # only the hits' rows become dicts
    weights = (opts.lambda_pool, opts.lambda_late)
    return [
        hit_from_row(m, ranking.fused[i], ranking.pooled[i], ranking.late[i], weights=weights)
        for m, i in zip(meta, ranking.order)
    ]


def _ann(opts: ResolvedSearchOptions) -> dict:
    return {"nprobes": opts.nprobes, "refine_factor": opts.refine_factor, "ef": opts.ef, "flat": opts.flat}


def search_pooled(
    store: SmartStore,
    query: Encoding,
    where_sql: str | None,
    opts: ResolvedSearchOptions,
    settings: IndexOptions,
    text: str | None = None,
) -> list[Hit]:
    """The pooled top-``k`` by cosine alone (weights 1 / 0)."""
    rows = store.search_pooled(query.pooled, opts.k, where=where_sql, columns=[*META_COLUMNS, "vector"], **_ann(opts))
    return _ranked_hits(store, query, rows, opts.updated(lambda_pool=1.0, lambda_late=0.0))


def search_rerank(
    store: SmartStore,
    query: Encoding,
    where_sql: str | None,
    opts: ResolvedSearchOptions,
    settings: IndexOptions,
    text: str | None = None,
) -> list[Hit]:
    """The pooled top-``candidates``, ranked by exact SMART on their token states."""
    return _ranked_hits(store, query, _pooled_candidates(store, query, where_sql, opts, settings), opts)


def _pooled_candidates(
    store: SmartStore, query: Encoding, where_sql: str | None, opts: ResolvedSearchOptions, settings: IndexOptions
) -> pa.Table:
    """The pooled top-``candidates`` rows with ``META_COLUMNS``, ``vector`` and ``tokens``."""
    n_candidates = max(opts.k, opts.candidates)
    if settings.token_fetch == "query":
        rows = store.search_pooled(
            query.pooled, n_candidates, where=where_sql, columns=_CANDIDATE_COLUMNS, **_ann(opts)
        )
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
    return rows


def search_exhaustive(
    store: SmartStore,
    query: Encoding,
    where_sql: str | None,
    opts: ResolvedSearchOptions,
    settings: IndexOptions,
    text: str | None = None,
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


_warned_no_text_index: set[tuple[str, str]] = set()


def _has_text_index(store: SmartStore) -> bool:
    """Whether the table has its full-text index; the first time it has none, say how to build it."""
    if store.text_index is not None:
        return True
    key = (str(store.uri), store.table_name)
    if key not in _warned_no_text_index:
        _warned_no_text_index.add(key)
        logger.warning(
            "table %r has no full-text index: 'hybrid' searches rank as 'rerank' until optimize() builds it",
            store.table_name,
        )
    return False


@dataclass(frozen=True)
class LexicalContext:
    """What a query's lexical term is made of.

    Attributes:
        rows: the pooled candidates, then the full-text candidates they lack (``META_COLUMNS``,
            ``vector``, ``tokens``); only the pooled ones when the lexical term is off.
        bm25: each row's BM25 (0 where the full-text search did not return it).
        words: the pooled candidates' mean words (the length gate).
        best: the query's best BM25 (0 when no full-text query was needed).
        trust: the query's lexical trust (0: no lexical term).
        n_rows: the table's rows (0 when no full-text query was needed).
    """

    rows: pa.Table
    bm25: np.ndarray
    words: float
    best: float
    trust: float
    n_rows: int


_text_gate_open: dict[tuple[str, str], bool] = {}
_text_search_pool: ThreadPoolExecutor | None = None


def _text_candidates(store: SmartStore, text: str, where_sql: str | None, opts: ResolvedSearchOptions) -> pa.Table:
    """The full-text top-``text_candidates`` with the columns SMART scores (one read, no second take)."""
    return store.search_text(text, opts.text_candidates, columns=_CANDIDATE_COLUMNS, where=where_sql)


def lexical_context(
    store: SmartStore,
    query: Encoding,
    where_sql: str | None,
    opts: ResolvedSearchOptions,
    settings: IndexOptions,
    text: str,
) -> LexicalContext:
    """The pooled candidates and (unless their texts are short) the full-text candidates, with the
    same filter, prefiltered, and the query's lexical trust (:func:`~smart_retrievers.lexical.lexical_scores`).

    The full-text search runs on a worker thread while the pooled search runs, when the table's
    previous hybrid query needed it (the first always does); otherwise only after the length gate
    has opened, so a table of short texts makes no full-text queries.
    """
    global _text_search_pool
    key = (str(store.uri), store.table_name)
    pending: Future[pa.Table] | None = None
    if _text_gate_open.get(key, True):
        _text_search_pool = _text_search_pool or ThreadPoolExecutor(2, thread_name_prefix="smart-fts")
        pending = _text_search_pool.submit(_text_candidates, store, text, where_sql, opts)
    rows = _pooled_candidates(store, query, where_sql, opts, settings)
    words = mean_words(rows.column("text").to_pylist())
    _text_gate_open[key] = length_trust(words) > 0.0
    if not _text_gate_open[key]:  # short texts: no lexical term (a speculative search is left unread)
        return LexicalContext(rows, np.zeros(len(rows)), words, 0.0, 0.0, 0)
    found = pending.result() if pending is not None else _text_candidates(store, text, where_sql, opts)
    scores = dict(zip(found.column("id").to_pylist(), found.column("_score").to_pylist()))
    best = max(scores.values(), default=0.0)
    n_rows = store.count()
    _, trust = lexical_scores([], best_bm25=best, words=words, text=text, n_rows=n_rows)
    if trust > 0.0:
        pooled_ids = set(rows.column("id").to_pylist())
        new = [i for i, row_id in enumerate(found.column("id").to_pylist()) if row_id not in pooled_ids]
        if new:
            taken = found.take(new).select(rows.column_names).cast(rows.schema)
            rows = pa.concat_tables([rows, taken])
    bm25 = np.array([scores.get(i, 0.0) for i in rows.column("id").to_pylist()], dtype=np.float64)
    return LexicalContext(rows, bm25, words, best, trust, n_rows)


def search_hybrid(
    store: SmartStore,
    query: Encoding,
    where_sql: str | None,
    opts: ResolvedSearchOptions,
    settings: IndexOptions,
    text: str | None = None,
) -> list[Hit]:
    """Exact SMART plus lexical evidence over the pooled top-``candidates`` ∪ the BM25 top-``text_candidates``.

    The pooled candidates' mean length in words gates the lexical term (short texts: none);
    the full-text search gives the query's BM25 scores (same filter, prefiltered) and its
    lexical trust (:func:`lexical_context`). Candidates the full-text search did not return
    have BM25 0.
    """
    if not text or not opts.lambda_lex or not _has_text_index(store):
        return search_rerank(store, query, where_sql, opts, settings)
    context = lexical_context(store, query, where_sql, opts, settings, text)
    rows = context.rows
    if context.trust == 0.0:
        return _ranked_hits(store, query, rows, opts)
    lex, _ = lexical_scores(context.bm25, best_bm25=context.best, words=context.words, text=text, n_rows=context.n_rows)
    ranking = rank_rows(store, query, rows, opts, k=len(rows))
    total = np.asarray(ranking.fused, dtype=np.float64) + opts.lambda_lex * lex
    order = np.argsort(-total, kind="stable")[: opts.k].tolist()
    meta = rows.select(META_COLUMNS).take(pa.array(order, pa.int64())).to_pylist()
    weights = (opts.lambda_pool, opts.lambda_late + opts.lambda_lex * context.trust)
    return [
        hit_from_row(m, total[i], ranking.pooled[i], ranking.late[i], weights=weights, lex=lex[i])
        for m, i in zip(meta, order)
    ]


def search_text(
    store: SmartStore,
    query: Encoding,
    where_sql: str | None,
    opts: ResolvedSearchOptions,
    settings: IndexOptions,
    text: str | None = None,
) -> list[Hit]:
    """BM25 alone: ``score`` is the BM25 score, ``lex_score`` and ``relevance`` it over the query's best."""
    if not text:
        raise ValueError("mode='text' needs a query text (an image or a bare vector has no words to match)")
    if store.text_index is None:
        raise ValueError(f"table {store.table_name!r} has no full-text index: call optimize() to build it")
    found = store.search_text(text, opts.k, columns=META_COLUMNS, where=where_sql)
    scores = found.column("_score").to_pylist()
    lex = normalised_bm25(scores)
    meta = found.select(META_COLUMNS).to_pylist()
    hits = [hit_from_row(row, score, lex=lex[i]) for i, (row, score) in enumerate(zip(meta, scores))]
    for hit in hits:
        hit.relevance = hit.lex_score
    return hits


MODES: dict[str, SearchFunction] = {
    "hybrid": search_hybrid,
    "rerank": search_rerank,
    "pooled": search_pooled,
    "exhaustive": search_exhaustive,
    "text": search_text,
}
"""Search mode (``SearchOptions.mode``) -> the function that runs it."""
