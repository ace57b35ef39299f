"""The training objective: a differentiable SMART late score and InfoNCE logits of a batch.

Each query of a batch is scored against every document of the batch: its positive, the
other queries' positives (in-batch negatives) and their mined hard negatives. The late
score of the whole batch is one padded document block, scored chunk by chunk, with a
sparse backward through the max (only the arg-max document token of each (query token,
document) pair gets a gradient).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..adapter import SmartAdapter
from ..scoring import PackedTokens
from .states import TokenStates

__all__ = ["Batch", "adapt_tokens", "batch_logits", "late_maxsim", "make_batches"]


class _LateMaxSim(torch.autograd.Function):
    """max over document tokens of query-token · document-token, with a sparse backward."""

    @staticmethod
    def forward(
        ctx: Any, queries: torch.Tensor, docs: torch.Tensor, doc_mask: torch.Tensor, chunk_size: int
    ) -> torch.Tensor:
        n_docs = docs.shape[0]
        best = queries.new_empty(len(queries), n_docs)
        where = torch.empty(len(queries), n_docs, dtype=torch.long)
        for start in range(0, n_docs, chunk_size):
            stop = min(start + chunk_size, n_docs)
            sims = torch.einsum("tr,nlr->tnl", queries, docs[start:stop])
            sims.masked_fill_(~doc_mask[None, start:stop], float("-inf"))
            best[:, start:stop], where[:, start:stop] = sims.max(dim=2)
        ctx.save_for_backward(queries, docs, where)
        return best

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        queries, docs, where = ctx.saved_tensors
        n_docs, length, dim = docs.shape
        n_tokens = len(queries)
        # S[(n, where[t, n]), t] = grad[t, n]: the only document token that won each max
        flat = (torch.arange(n_docs) * length)[None, :] + where  # (Tq, N) into the (N*L) rows
        cols = torch.arange(n_tokens).repeat_interleave(n_docs)
        select = torch.sparse_coo_tensor(
            torch.stack([flat.reshape(-1), cols]), grad.reshape(-1), (n_docs * length, n_tokens), check_invariants=False
        )
        grad_queries = grad_docs = None
        if ctx.needs_input_grad[0]:
            grad_queries = torch.sparse.mm(select.t(), docs.reshape(n_docs * length, dim))
        if ctx.needs_input_grad[1]:
            grad_docs = torch.sparse.mm(select, queries).reshape(n_docs, length, dim)
        return grad_queries, grad_docs, None, None


def late_maxsim(
    query_tokens: torch.Tensor,
    query_lengths: torch.Tensor,
    doc_tokens: torch.Tensor,
    doc_mask: torch.Tensor,
    *,
    max_elements: int = 1 << 25,
) -> torch.Tensor:
    """Differentiable SMART late scores (Q, N) of packed queries against a padded doc block.

    Args:
        query_tokens: (Tq, r) every query's tokens, concatenated.
        query_lengths: (Q,) tokens per query (each >= 1).
        doc_tokens: (N, L, r) zero-padded document tokens.
        doc_mask: (N, L) bool, True on real tokens (each row has one at least).
        max_elements: similarity entries computed at once (memory bound).

    Same values as :func:`smart_retrievers.scoring.maxsim_flat`; the gradient of each max
    flows to its arg-max document token only.
    """
    if int(query_lengths.sum()) != len(query_tokens) or bool((query_lengths < 1).any()):
        raise ValueError("query_lengths must be >= 1 and sum to the number of query tokens")
    chunk = max(1, max_elements // max(1, len(query_tokens) * doc_tokens.shape[1]))
    best = _LateMaxSim.apply(query_tokens, doc_tokens, doc_mask, chunk)  # (Tq, N)
    segment = torch.repeat_interleave(torch.arange(len(query_lengths)), query_lengths)
    total = best.new_zeros(len(query_lengths), best.shape[1]).index_add(0, segment, best)
    return total / query_lengths[:, None].to(best.dtype)


@dataclass
class Batch:
    """(query, positive) pairs sharing every document of the batch as a candidate."""

    query_rows: list[int]
    doc_rows: list[int]
    target: torch.Tensor  # (B,) column of each query's positive
    blocked: torch.Tensor  # (B, D) True where the doc is another positive of the query


def make_batches(
    pairs: Sequence[tuple[int, int]],
    positives: Mapping[int, set[int]],
    negatives: Mapping[int, Sequence[int]],
    order: Sequence[int],
    batch_size: int,
) -> list[Batch]:
    """Group ``pairs`` (query row, positive doc row), taken in ``order``, into batches.

    A batch's documents are its positives, then its queries' ``negatives``; a query's other
    ``positives`` among them are blocked (not counted as negatives).
    """
    batches = []
    for start in range(0, len(order), batch_size):
        chosen = [pairs[i] for i in order[start : start + batch_size]]
        doc_rows: dict[int, int] = {}
        for _, pos in chosen:
            doc_rows.setdefault(pos, len(doc_rows))
        for q, _ in chosen:
            for neg in negatives[q]:
                doc_rows.setdefault(neg, len(doc_rows))
        columns = list(doc_rows)
        target = torch.tensor([doc_rows[pos] for _, pos in chosen])
        blocked = torch.tensor(
            [[d in positives[q] and d != pos for d in columns] for q, pos in chosen], dtype=torch.bool
        )
        batches.append(Batch([q for q, _ in chosen], columns, target, blocked))
    return batches


def adapt_tokens(
    adapter: SmartAdapter, tokens: PackedTokens, *, dtype: torch.dtype = torch.float32, chunk_tokens: int = 1 << 16
) -> PackedTokens:
    """``tokens`` (numpy values) passed through ``adapter``, ``chunk_tokens`` at a time, as ``dtype``.

    Differentiable in the adapter's parameters unless called under ``torch.no_grad()``.
    """
    values = torch.cat(
        [
            adapter(torch.from_numpy(np.asarray(tokens.values[start : start + chunk_tokens], dtype=np.float32))).to(
                dtype
            )
            for start in range(0, len(tokens.values), chunk_tokens)
        ]
    )
    return PackedTokens(values=values, offsets=tokens.offsets)


def batch_logits(
    adapter: SmartAdapter,
    queries: TokenStates,
    docs: TokenStates,
    batch: Batch,
    *,
    tau: float,
    fused: bool = False,
) -> torch.Tensor:
    """InfoNCE logits (B, D) of a batch: late (or, ``fused``, pooled cos + late) scores over
    ``tau``, blocked entries -inf. Differentiable in the adapter's parameters."""
    q_tokens = adapt_tokens(adapter, queries.tokens.take(batch.query_rows))
    d_block, d_mask = adapt_tokens(adapter, docs.tokens.take(batch.doc_rows)).padded()
    scores = late_maxsim(torch.as_tensor(q_tokens.values), q_tokens.lengths, d_block, d_mask)
    if fused:
        scores = (
            scores
            + torch.from_numpy(queries.pooled[batch.query_rows]) @ torch.from_numpy(docs.pooled[batch.doc_rows]).T
        )
    return (scores / tau).masked_fill(batch.blocked, float("-inf"))
