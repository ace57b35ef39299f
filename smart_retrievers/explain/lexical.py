"""The lexical part of a hybrid hit's evidence: which query words matched the document and what each added.

BM25 is a sum over the query's words (a repeated word counts again), so a word's contribution in
one document is the BM25 of that word alone, restricted to the document: one full-text query per
distinct word, prefiltered to the documents explained. Each word's share of the hit's lexical
term ``λ_lex · lex`` is its share of the document's BM25, so the contributions add up to that term
exactly, whatever words the index's tokenizer drops or stems.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..filters import column_in
from ..lexical import query_words
from .evidence import Evidence, TermMatch

__all__ = ["term_bm25", "with_lexical"]


def term_bm25(store: Any, text: str, doc_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per document of ``doc_ids``: each query word's BM25 in it (count included), for the words that matched.

    ``store`` is a :class:`~smart_retrievers.store.SmartStore` with a full-text index.
    """
    ids = list(dict.fromkeys(doc_ids))
    out: dict[str, dict[str, float]] = {doc_id: {} for doc_id in ids}
    if not ids:
        return out
    where = store.where_sql(column_in("id", ids))  # the row id, never a metadata field named "id"
    for word, count in Counter(query_words(text)).items():
        found = store.search_text(word, len(ids), columns=["id"], where=where)
        for doc_id, score in zip(found.column("id").to_pylist(), found.column("_score").to_pylist()):
            if score > 0:
                out[doc_id][word] = count * float(score)
    return out


def with_lexical(
    evidence: Evidence, bm25: Mapping[str, float], *, lex: float, lambda_lex: float, counts: Mapping[str, int]
) -> Evidence:
    """``evidence`` with its lexical part: ``lex`` (the hit's ``lex_score``) at weight ``lambda_lex``, shared among
    the matched words by their BM25 (``bm25``: word -> BM25, from :func:`term_bm25`), and the score raised by it."""
    total = sum(bm25.values())
    part = lambda_lex * lex
    terms = [
        TermMatch(term=w, count=counts.get(w, 1), bm25=b, contribution=part * b / total if total > 0 else 0.0)
        for w, b in sorted(bm25.items(), key=lambda item: -item[1])
    ]
    return dataclasses.replace(evidence, lex=lex, lambda_lex=lambda_lex, terms=terms, score=evidence.score + part)
