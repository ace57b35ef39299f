"""Evidence on a coded table: the matches of the stored codes that ranked the row, mapped to text spans.

A coded table scores a query against each row's stored codes (pooled, projected, quantised token
states). Its evidence is computed from those same codes and the row's stored pooled vector, by
the ranker search uses, so ``Evidence.late`` and ``Evidence.score`` are the hit's own scores and
the matches' similarities average to ``late``. Each stored code is one pooled token; the text is
re-encoded and pooled again to learn which original tokens it covers, and its span runs from
the first of them to the last. Where the re-pooled tokens do not line up with the stored codes
(a row written with another pooling), each code is mapped to its most similar original token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..codec import TokenCodec, pool_documents
from ..encoding import Encoding
from ..scoring import PackedTokens, fuse, rank
from ..store import tokens_from_arrow, vectors_block
from .matching import Matched, Span

__all__ = ["code_spans", "match_codes", "stored_codes"]


def stored_codes(index: Any, doc_ids: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """The rows' stored (pooled vector, token codes), in ``doc_ids`` order; None for a float16 table."""
    if index.codec is None:
        return None
    rows = index.store.get(list(doc_ids), columns=["id", "vector", "tokens"])
    found = rows.column("id").to_pylist()
    if found != list(doc_ids):
        raise KeyError(f"rows {sorted(set(doc_ids) - set(found))} are not in table {index.store.table_name!r}")
    vectors = vectors_block(rows.column("vector")).numpy()
    codes = tokens_from_arrow(rows.column("tokens"))
    return [(vectors[i], np.asarray(codes.item(i))) for i in range(len(found))]


def match_codes(
    q_enc: Encoding, pooled: np.ndarray, codes: np.ndarray, codec: TokenCodec, lambda_pool: float, lambda_late: float
) -> Matched:
    """Each query token's best stored code, as the coded late score takes it, and the row's scores."""
    ranking = rank(
        q_enc.pooled,
        q_enc.tokens,
        pooled[None, :],
        PackedTokens.from_list([codes]),
        lambda_pool=lambda_pool,
        lambda_late=lambda_late,
        codec=codec,
    )
    projected, offsets = codec.query(q_enc.tokens)
    sims = codec.similarities(codes, projected).T + offsets[:, None]  # what maxsim_flat maximises, per query token
    best = sims.argmax(dim=1)
    best_sims = codec.calibrate(sims[torch.arange(len(sims)), best]).double().numpy()
    total = float(best_sims.sum())
    shares = best_sims / total if total > 0 else np.full(len(best_sims), 1.0 / len(best_sims))
    late = ranking.late[:1]
    return Matched(
        best=best.tolist(),
        similarities=best_sims,
        shares=shares,
        pooled=float(ranking.pooled[0]),
        late=float(late[0]),
        score=float(fuse(ranking.pooled[:1], late, lambda_pool, lambda_late)[0]),
        lambda_pool=lambda_pool,
        lambda_late=lambda_late,
    )


def code_spans(codec: TokenCodec, tokens: np.ndarray, spans: Sequence[Span], codes: np.ndarray) -> list[Span]:
    """The character span each stored code covers: from the first to the last original token pooled into it.

    ``tokens`` and ``spans`` are the re-encoded document's token states and their spans. When the
    pooling does not give one run per stored code, each code gets the span of its most similar token.
    """
    pooled = pool_documents([tokens], codec.pool)
    if len(pooled.tokens) == len(codes):
        return [_cover(spans, first, stop) for first, stop in pooled.runs(0, len(tokens))]
    nearest = (codec.keys(codes) @ torch.nn.functional.normalize(codec.project(tokens), dim=-1).T).argmax(dim=1)
    return [spans[j] for j in nearest.tolist()]


def _cover(spans: Sequence[Span], first: int, stop: int) -> Span:
    starts = [s for s, _ in spans[first:stop] if s is not None]
    ends = [e for _, e in spans[first:stop] if e is not None]
    return (min(starts), max(ends)) if starts and ends else (None, None)
