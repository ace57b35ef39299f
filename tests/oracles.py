"""The test oracle for SMART scores: the padded MaxSim, written for clarity, not speed.

Production scores through :func:`smart_retrievers.scoring.maxsim_flat` (unpadded, chunked, codec-aware),
:func:`~smart_retrievers.scoring.rank` and the training loss's ``late_maxsim``; the tests compare those
against this independent path: ragged tokens padded into a block with a mask, one einsum, a masked max
and the mean over query tokens. An item with no tokens uses its pooled vector as its single token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class Scores:
    """Fused, pooled and late scores, each (N,) for one query or (Q, N) for many."""

    fused: torch.Tensor
    pooled: torch.Tensor
    late: torch.Tensor


def _float32(x: ArrayLike) -> torch.Tensor:
    return x.to(torch.float32) if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x, dtype=np.float32))


def pad_tokens(tokens: Sequence[ArrayLike], pooled: ArrayLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged (n_i, d) arrays as a zero-padded float32 block (N, L, d) and its bool mask (N, L), L >= 1.

    An empty entry takes ``pooled[i]`` as its single token.
    """
    dim = pooled.shape[1] if pooled is not None else tokens[0].shape[1]
    length = max([1, *(len(t) for t in tokens)])
    block = torch.zeros(len(tokens), length, dim)
    mask = torch.zeros(len(tokens), length, dtype=torch.bool)
    for i, t in enumerate(tokens):
        rows = _float32(t) if len(t) else _float32(pooled[i])[None]
        block[i, : len(rows)] = rows
        mask[i, : len(rows)] = True
    return block, mask


def maxsim(query_tokens: ArrayLike, query_mask: ArrayLike, doc_tokens: ArrayLike, doc_mask: ArrayLike) -> torch.Tensor:
    """Late scores (Q, N): mean over unmasked query tokens of the max over unmasked doc tokens of the dot."""
    q, d = _float32(query_tokens), _float32(doc_tokens)
    q_mask, d_mask = torch.as_tensor(query_mask, dtype=torch.bool), torch.as_tensor(doc_mask, dtype=torch.bool)
    sims = torch.einsum("qid,njd->qnij", q, d).masked_fill(~d_mask[None, :, None, :], float("-inf"))
    best = sims.amax(dim=3).masked_fill(~q_mask[:, None, :], 0.0)  # (Q, N, Lq)
    return best.sum(dim=2) / q_mask.sum(dim=1, keepdim=True)


def smart_scores(
    query_pooled: ArrayLike,
    query_tokens: ArrayLike | Sequence[ArrayLike],
    doc_pooled: ArrayLike,
    doc_tokens: Sequence[ArrayLike],
    *,
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
) -> Scores:
    """SMART scores of one query (``query_pooled`` (d,), ``query_tokens`` (n, d)) or many (``(Q, d)`` and a
    list of Q arrays) against N docs (``doc_pooled`` (N, d), ``doc_tokens`` N ragged arrays)."""
    q_pooled, d_pooled = _float32(query_pooled), _float32(doc_pooled)
    single = q_pooled.ndim == 1
    if single:
        q_pooled, query_tokens = q_pooled[None], [query_tokens]
    pooled = q_pooled @ d_pooled.T
    late = maxsim(*pad_tokens(query_tokens, q_pooled), *pad_tokens(doc_tokens, d_pooled))
    fused = lambda_pool * pooled + lambda_late * late
    return Scores(fused=fused[0], pooled=pooled[0], late=late[0]) if single else Scores(fused, pooled, late)
