"""The lexical part of :meth:`SmartIndex.explain`: a hybrid hit's BM25 term, shared among the query words that matched."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..explain import Evidence
from ..explain.lexical import term_bm25, with_lexical
from ..filters import column_in
from ..lexical import query_words
from .hits import Hit
from .search import lexical_context

__all__ = ["add_lexical_evidence"]


def add_lexical_evidence(index: Any, query: str, evidence: Evidence, source: str | Hit, lambda_lex: float) -> Evidence:
    """``evidence`` of a text row with its lexical part at weight ``lambda_lex``.

    For a :class:`Hit` the lexical term is the hit's own ``lex_score`` (so the parts add up to the
    score it was ranked by); for a row id it is what an unfiltered "hybrid" search gives the row:
    the query's lexical trust times the row's BM25 over the query's best.
    """
    store = index.store
    doc_id = evidence.doc_id
    if not lambda_lex or doc_id is None or store.text_index is None:
        return evidence
    words = term_bm25(store, query, [doc_id])[doc_id]
    if isinstance(source, Hit):
        lex = source.lex_score
    else:
        encoded = index.encoder.encode_queries([query], show_progress=False)[0]
        context = lexical_context(store, encoded, None, index.resolve(mode="hybrid"), index.options, query)
        own = store.search_text(query, 1, columns=["id"], where=store.where_sql(column_in("id", [doc_id])))
        bm25 = float(own.column("_score")[0].as_py()) if len(own) else 0.0
        lex = context.trust * bm25 / context.best if context.best > 0 else 0.0
    return with_lexical(evidence, words, lex=lex, lambda_lex=lambda_lex, counts=Counter(query_words(query)))
