"""Evidence for an index's stored rows: one row (``SmartIndex.explain``) or a search's hits (``evidence=True``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..validation import check_text
from .coded import stored_codes
from .evidence import Evidence
from .image import explain_image
from .text import explain_texts

__all__ = ["EVIDENCE_SPANS", "compact_evidence", "explain_row"]

EVIDENCE_SPANS = 5
"""Matched spans per hit in the frameworks' compact evidence (``metadata["smart_evidence"]``, ``evidence=True``)."""


def explain_row(
    index: Any, query: str, doc_id_or_hit: Any, *, weights: tuple[float, float], image: Any = None
) -> Evidence:
    """Why a row of ``index`` (a :class:`~smart_retrievers.index.SmartIndex`) matched ``query``.

    ``doc_id_or_hit`` is a row id or a hit (its stored text is used). A text row is re-encoded for
    exact per-token evidence, each query token getting its best document token's span, cosine and
    share of the late score. An image row (vision encoder) is re-encoded from its stored ``image``
    location, or from ``image`` when given (rows added from bytes or in-memory images store none).
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    check_text(query, what="query")
    if isinstance(doc_id_or_hit, str):
        found = index.get([doc_id_or_hit])
        if not found:
            raise KeyError(f"no row with id {doc_id_or_hit!r} in table {index.store.table_name!r}")
        hit = found[0]
    else:
        hit = doc_id_or_hit
    lambda_pool, lambda_late = weights
    if hit.modality != "text" or hit.image is not None:
        source = image if image is not None else hit.image
        if source is None:
            raise ValueError(f"row {hit.id!r} is an image stored without a location: pass image= to explain it")
        return explain_image(
            index.encoder, query, source, doc_id=hit.id, text=hit.text, lambda_pool=lambda_pool, lambda_late=lambda_late
        )
    if image is not None:
        raise ValueError(f"row {hit.id!r} is a text row: image= is for image rows")
    return explain_texts(
        index.encoder,
        query,
        [hit.text],
        doc_ids=[hit.id],
        lambda_pool=lambda_pool,
        lambda_late=lambda_late,
        codec=index.codec,
        stored=stored_codes(index, [hit.id]),
    )[0]


def compact_evidence(index: Any, query: str, hits: Sequence[Any], n: int = EVIDENCE_SPANS) -> list[Any]:
    """The frameworks' ``evidence=True`` form: per hit, its top ``n`` matched spans
    (:meth:`Evidence.top_spans`, JSON-serialisable), or None for an image row (use
    :meth:`SmartIndex.explain` for its heat map). One query encoding and one batched
    re-encoding of the text hits."""
    text_rows = [i for i, hit in enumerate(hits) if hit.modality == "text" and hit.image is None]
    out: list[Any] = [None] * len(hits)
    if not text_rows:
        return out
    evidence = explain_texts(
        index.encoder,
        query,
        [hits[i].text for i in text_rows],
        doc_ids=[hits[i].id for i in text_rows],
        lambda_pool=index.lambda_pool,
        lambda_late=index.lambda_late,
        codec=index.codec,
        stored=stored_codes(index, [hits[i].id for i in text_rows]),
    )
    for i, ev in zip(text_rows, evidence):
        out[i] = ev.top_spans(n)
    return out
