"""Evidence for text documents: each query token's best document token, as a character span of the stored text.

The document is **re-encoded** by the index's encoder (one forward pass): stored token states may
be pooled or coded by the table's codec, which no longer maps one state to one token. On a coded
table the matches are those of the stored codes (:mod:`.coded`), and the re-encoding tells which
tokens each code covers. The encoder
says which character span each kept token state comes from (its ``token_spans``, the same keep
rules as its encoding), so spans cannot drift from what was scored. A document cut at
``max_length`` only has evidence in the part the model saw (``Evidence.truncated``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..codec import TokenCodec
from .coded import code_spans, match_codes
from .evidence import Evidence
from .matching import match_tokens, query_side

__all__ = ["explain_text", "explain_texts"]


def explain_text(
    encoder: Any,
    query: str,
    text: str,
    *,
    doc_id: str | None = None,
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
) -> Evidence:
    """Evidence for ``text`` (a document, encoded as one) against ``query``, both encoded by ``encoder``."""
    return explain_texts(encoder, query, [text], doc_ids=[doc_id], lambda_pool=lambda_pool, lambda_late=lambda_late)[0]


def explain_texts(
    encoder: Any,
    query: str,
    texts: Sequence[str],
    *,
    doc_ids: Sequence[str | None] | None = None,
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
    codec: TokenCodec | None = None,
    stored: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[Evidence]:
    """:func:`explain_text` for several documents: the query is encoded once, the documents in one batched call.

    With ``codec`` and ``stored`` (each document's stored pooled vector and token codes: a coded
    table's rows), the matches and scores are those of the codes (:mod:`.coded`), each code
    showing the span of the tokens pooled into it.
    """
    texts = list(texts)
    doc_ids = list(doc_ids) if doc_ids is not None else [None] * len(texts)
    if len(doc_ids) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(doc_ids)} doc_ids")
    if not texts:
        return []
    q_enc, q_spans = query_side(encoder, query)
    out: list[Evidence] = []
    for text, doc_id, d_enc in zip(texts, doc_ids, encoder.encode_documents(texts, show_progress=False)):
        d_spans: list[tuple[int | None, int | None]]
        d_spans, truncated = encoder.token_spans(text, query=False)
        if len(d_spans) != len(d_enc.tokens):
            d_spans = [(None, None)] * len(d_enc.tokens)
        if codec is not None and stored is not None:
            pooled, codes = stored[len(out)]
            matched = match_codes(q_enc, pooled, codes, codec, lambda_pool, lambda_late)
            d_spans = code_spans(codec, np.asarray(d_enc.tokens, dtype=np.float32), d_spans, codes)
        else:
            matched = match_tokens(q_enc, d_enc, lambda_pool, lambda_late)
        doc_token = _span_token(text, d_spans)
        out.append(
            matched.evidence(query, q_spans, doc_id, text, doc_token, truncated=truncated or bool(d_enc.truncated))
        )
    return out


def _span_token(text: str, spans: Sequence[tuple[int | None, int | None]]) -> Callable[[int], dict[str, Any]]:
    """The document side of a match on ``text``: the token state's character span and its text."""

    def token(j: int) -> dict[str, Any]:
        start, end = spans[j]
        return {"doc_token": text[start:end] if start is not None else "", "start": start, "end": end}

    return token
