"""A LanceDB reranker scoring a user's own vector, FTS or hybrid query results with SMART.

:class:`SmartLanceReranker` is a ``lancedb.rerankers.Reranker``: pass it to ``.rerank(...)`` of
any LanceDB query. It scores each result row's text (``column``) against the query string with
:class:`~smart_retrievers.rerank.SmartScorer`: candidates are encoded once and kept in an LRU
cache keyed by text; with ``index=`` (the :class:`~smart_retrievers.SmartIndex` whose table is
being queried), rows whose id and text the index holds reuse its stored token states, without
a forward pass. The scorer decides; this class only moves columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
from lancedb.rerankers import Reranker

from ..options import check_weights

if TYPE_CHECKING:
    from pathlib import Path

    from ..encoders import SmartEncoder
    from ..index import SmartIndex

__all__ = ["SmartLanceReranker"]

SCORE_COLUMNS = ("_smart_score", "_pooled_score", "_late_score")
"""The raw SMART scores, added beside ``_relevance_score`` when ``return_score="all"``."""


class SmartLanceReranker(Reranker):
    """Rerank LanceDB query results with SMART late interaction.

    Each result gets ``_relevance_score``: the fused SMART score mapped into [0, 1] by
    :func:`~smart_retrievers.scoring.relevance` (``clip(fused / (lambda_pool + lambda_late), 0, 1)``),
    and results come back sorted by it, best first. With ``return_score="all"`` the query's own
    ``_distance`` / ``_score`` columns are kept and the raw ``_smart_score`` (fused),
    ``_pooled_score`` and ``_late_score`` are added. Hybrid results are merged (deduplicated by
    ``_rowid``) before scoring.

    Args:
        index: the :class:`~smart_retrievers.SmartIndex` whose table is queried, to reuse its
            stored token states for rows whose ``id_column`` and text it holds (None: encode
            every candidate, e.g. for a plain LanceDB table).
        encoder: the encoder (default: the index's, else the bundled all-MiniLM-L6-v2). For a
            plain table, use the model its vectors came from, so the pooled term means what it
            should.
        model: a model to load instead (a hub id or local directory; with ``index``, it must be
            the index's model); ``device`` the device it is loaded on. The rule is
            :meth:`~smart_retrievers.rerank.SmartScorer.create`'s, as for every reranker.
        column: the text column scored.
        id_column: the id column matched against the index's ids (used only with ``index``).
        lambda_pool / lambda_late: fusion weights.
        batch_size / cache_size: encoder batch size and LRU cache size for candidates.
        return_score: ``"relevance"`` or ``"all"`` (see above).

    Example:
        >>> import tempfile, lancedb
        >>> from smart_retrievers.encoders import default_encoder
        >>> tmp = tempfile.TemporaryDirectory()
        >>> encoder = default_encoder()
        >>> texts = ["Code P2 labels the blue circle.", "Code K7 labels the red star.", "Code M4 labels the yellow triangle."]
        >>> table = lancedb.connect(tmp.name).create_table(
        ...     "docs", [{"text": t, "vector": e.pooled.tolist()} for t, e in zip(texts, encoder.encode_documents(texts))]
        ... )
        >>> query = "which code labels the red star?"
        >>> vector = encoder.encode_queries([query])[0].pooled
        >>> rows = table.search(vector).limit(3).rerank(SmartLanceReranker(encoder=encoder), query_string=query).to_list()
        >>> rows[0]["text"]
        'Code K7 labels the red star.'
        >>> tmp.cleanup()
    """

    def __init__(
        self,
        index: SmartIndex | None = None,
        encoder: SmartEncoder | None = None,
        *,
        model: str | Path | None = None,
        device: str | None = None,
        column: str = "text",
        id_column: str = "id",
        lambda_pool: float = 1.0,
        lambda_late: float = 1.0,
        batch_size: int | None = None,
        cache_size: int = 4096,
        return_score: str = "relevance",
    ) -> None:
        from ..rerank import SmartScorer

        super().__init__(return_score)
        check_weights(lambda_pool, lambda_late)
        self.column = column
        self.id_column = id_column
        self.lambda_pool = lambda_pool
        self.lambda_late = lambda_late
        self.scorer = SmartScorer.create(
            model=model,
            encoder=encoder,
            index=index,
            device=device,
            lambda_pool=lambda_pool,
            lambda_late=lambda_late,
            batch_size=batch_size,
            cache_size=cache_size,
        )

    def __str__(self) -> str:
        return f"SmartLanceReranker(model={self.scorer.encoder.name})"

    def _rerank(self, results: pa.Table, query: str) -> pa.Table:
        if not isinstance(query, str) or not query.strip():
            raise ValueError(
                "SmartLanceReranker needs the query text: pass query_string= to rerank() of a vector query"
            )
        if self.column not in results.column_names:
            raise ValueError(f"the results have no {self.column!r} column to score (columns: {results.column_names})")
        results = self._handle_empty_results(results)
        if len(results) == 0:
            return results
        texts = [text or "" for text in results.column(self.column).to_pylist()]
        ids = None
        if self.scorer.index is not None and self.id_column in results.column_names:
            ids = [None if i is None else str(i) for i in results.column(self.id_column).to_pylist()]
        n = len(texts)
        fused, pooled, late, scores = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
        for cand in self.scorer.score(query, texts, ids):
            i = cand.position
            fused[i], pooled[i], late[i], scores[i] = cand.score, cand.pooled_score, cand.late_score, cand.relevance
        if self.score == "all":
            for name, values in zip(SCORE_COLUMNS, (fused, pooled, late)):
                results = results.append_column(name, pa.array(values, type=pa.float32()))
        results = results.append_column("_relevance_score", pa.array(scores, type=pa.float32()))
        return results

    def rerank_vector(self, query: str, vector_results: pa.Table) -> pa.Table:
        results = self._rerank(vector_results, query)
        if self.score == "relevance" and "_distance" in results.column_names:
            results = results.drop_columns(["_distance"])
        return results.sort_by([("_relevance_score", "descending")])

    def rerank_fts(self, query: str, fts_results: pa.Table) -> pa.Table:
        results = self._rerank(fts_results, query)
        if self.score == "relevance" and "_score" in results.column_names:
            results = results.drop_columns(["_score"])
        return results.sort_by([("_relevance_score", "descending")])

    def rerank_hybrid(self, query: str, vector_results: pa.Table, fts_results: pa.Table) -> pa.Table:
        if self.score == "all":
            combined = self._merge_and_keep_scores(vector_results, fts_results)
        else:
            combined = self.merge_results(vector_results, fts_results)
        results = self._keep_relevance_score(self._rerank(combined, query))
        return results.sort_by([("_relevance_score", "descending")])
