"""SMART late-interaction scoring: the only place the scoring math lives.

For a query ``q`` and a document ``d``::

    score(q, d) = λ_pool · cos(pool(q), pool(d))
                + λ_late · mean_{i ∈ q tokens} max_{j ∈ d tokens} cos(h_q,i, h_d,j)

Token states and pooled vectors are expected to be L2-normalised already, so
every cosine is a plain dot product. The late term is a *mean* over query
tokens (not a sum) and there is no temperature; every item has at least one
token. All arithmetic is done in float32; numpy (float16/float32) arrays and
torch tensors are accepted. (The tests check :func:`maxsim_flat` against a
padded MaxSim written for clarity: ``tests/oracles.py``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import numpy as np
import torch

if TYPE_CHECKING:
    from .codec import TokenCodec

ArrayLike = np.ndarray | torch.Tensor

__all__ = [
    "PackedTokens",
    "Ranking",
    "fuse",
    "maxsim_flat",
    "rank",
    "relevance",
    "rerank_candidates",
]


def _as_float32(x: ArrayLike) -> torch.Tensor:
    """Float32 CPU tensor view/copy of ``x``; never shares a read-only buffer."""
    if isinstance(x, torch.Tensor):
        return x.to(torch.float32)
    arr = np.ascontiguousarray(x, dtype=np.float32)
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


def maxsim_flat(
    query_tokens: ArrayLike,
    doc_tokens: ArrayLike,
    doc_lengths: ArrayLike,
    *,
    query_lengths: ArrayLike | None = None,
    chunk_tokens: int = 1 << 16,
    codec: TokenCodec | None = None,
) -> torch.Tensor:
    """Late scores of queries against N docs whose token states are concatenated, unpadded.

    ``doc_tokens`` (T, d), doc i owning the next ``doc_lengths[i]`` rows. ``query_tokens`` is
    one query's (Lq, d) states, or with ``query_lengths`` (Q,) several queries' states
    concatenated the same way. One (T, Lq) matmul and a segment max per chunk of about
    ``chunk_tokens`` doc tokens: no padded (N, Ld, d) block is built. Returns (N,) for one
    query, (Q, N) with ``query_lengths``.

    With a ``codec``, ``doc_tokens`` are its packed codes (T, bytes) and the float query
    tokens are scored against them asymmetrically: projected once, codes decoded one chunk
    at a time, and each query token's offset added back (see :mod:`smart_retrievers.codec`).
    """
    q = _as_float32(query_tokens)
    offsets_q = None
    if codec is not None:
        q, offsets_q = codec.query(q)
    lengths = torch.as_tensor(doc_lengths, dtype=torch.long)
    if q.ndim != 2 or doc_tokens.ndim != 2 or (codec is None and q.shape[1] != doc_tokens.shape[1]):
        raise ValueError(
            f"need query (Lq, d) and doc (T, d) tokens of one dim, got {tuple(q.shape)} and {tuple(doc_tokens.shape)}"
        )
    if len(q) == 0 or (lengths < 1).any() or int(lengths.sum()) != len(doc_tokens):
        raise ValueError(f"need >= 1 query token and doc lengths >= 1 summing to {len(doc_tokens)}")
    q_lengths = torch.as_tensor([len(q)] if query_lengths is None else query_lengths, dtype=torch.long)
    if (q_lengths < 1).any() or int(q_lengths.sum()) != len(q):
        raise ValueError(f"query lengths must be >= 1 and sum to {len(q)}")
    maxima = np.empty((len(lengths), len(q)), dtype=np.float32)  # (N, Lq): each doc's best per query token
    offsets = np.concatenate([[0], lengths.cumsum(0).numpy()])
    first = 0
    while first < len(lengths):  # chunks of whole docs, about chunk_tokens tokens each
        last = int(np.searchsorted(offsets, offsets[first] + chunk_tokens, side="right")) - 1
        last = min(max(last, first + 1), len(lengths))
        chunk = doc_tokens[offsets[first] : offsets[last]]
        sims = (_as_float32(chunk) @ q.T if codec is None else codec.similarities(chunk, q)).numpy()  # (t, Lq)
        # each doc's rows are one contiguous segment: a segment max (reduceat), no owner index
        np.maximum.reduceat(sims, offsets[first:last] - offsets[first], axis=0, out=maxima[first:last])
        first = last
    best = torch.from_numpy(maxima)
    if codec is not None and offsets_q is not None:  # max_j (b + q'·c_j) = b + max_j q'·c_j
        best = codec.calibrate(best + offsets_q[None, :])  # monotone: the same as mapping before the max
    if query_lengths is None:
        return best.mean(dim=1)
    q_owner = torch.repeat_interleave(torch.arange(len(q_lengths)), q_lengths)
    sums = torch.zeros(len(q_lengths), len(lengths)).index_add_(0, q_owner, best.T)
    return sums / q_lengths[:, None].to(torch.float32)


@dataclass(frozen=True)
class PackedTokens:
    """Ragged token states of N items stored flat: item i owns ``values[offsets[i]:offsets[i + 1]]``.

    ``values`` is (T, d), float16/float32 numpy or torch (possibly a read-only memmap).
    """

    values: ArrayLike
    offsets: np.ndarray

    @classmethod
    def from_list(cls, tokens: Sequence[ArrayLike]) -> PackedTokens:
        """Pack ragged (n_i, d) arrays; every entry needs at least one token."""
        if not tokens:
            raise ValueError("no token arrays to pack")
        lengths = np.array([len(t) for t in tokens], dtype=np.int64)
        if (lengths < 1).any():
            raise ValueError(f"token entry {int(np.argmin(lengths))} is empty")
        if isinstance(tokens[0], torch.Tensor):
            values: ArrayLike = torch.cat([torch.as_tensor(t).detach() for t in tokens])
        else:
            values = np.concatenate([np.asarray(t) for t in tokens])
        return cls(values=values, offsets=np.concatenate([[0], np.cumsum(lengths)]))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> torch.Tensor:
        """Tokens per item, (N,) int64."""
        return torch.from_numpy(np.diff(self.offsets))

    def take(self, rows: Sequence[int]) -> PackedTokens:
        """The items at ``rows``, in that order, packed anew."""
        picked = np.asarray(rows, dtype=np.int64)
        starts, stops = self.offsets[picked], self.offsets[picked + 1]
        index = (
            np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)]) if len(picked) else np.zeros(0, np.int64)
        )
        values = self.values[torch.from_numpy(index)] if isinstance(self.values, torch.Tensor) else self.values[index]
        return PackedTokens(values=values, offsets=np.concatenate([[0], np.cumsum(stops - starts)]))

    def item(self, row: int) -> ArrayLike:
        """Item ``row``'s (n, d) states."""
        return self.values[self.offsets[row] : self.offsets[row + 1]]

    def item_numpy(self, row: int) -> np.ndarray:
        """Item ``row``'s (n, d) states as a numpy array (a view of CPU values, not a copy)."""
        item = self.item(row)
        return item.numpy() if isinstance(item, torch.Tensor) else item

    def padded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A zero-padded float32 block (N, L, d) and its bool mask (N, L)."""
        lengths = self.lengths
        mask = torch.arange(max(1, int(lengths.max()) if len(lengths) else 1))[None, :] < lengths[:, None]
        block = torch.zeros(*mask.shape, self.values.shape[1], dtype=torch.float32)
        block[mask] = _as_float32(self.values)
        return block, mask


@dataclass(frozen=True)
class Ranking:
    """Candidates ranked by fused score: ``order`` holds candidate positions, best first.

    ``fused``, ``pooled`` and ``late`` are the scores of every candidate, in input order.
    """

    order: list[int]
    fused: torch.Tensor
    pooled: torch.Tensor
    late: torch.Tensor


def rank(
    query_pooled: ArrayLike,
    query_tokens: ArrayLike,
    doc_pooled: ArrayLike,
    doc_tokens: PackedTokens | None,
    *,
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
    k: int | None = None,
    codec: TokenCodec | None = None,
) -> Ranking:
    """THE ranker: one query against N candidates, by ``λ_pool·cos + λ_late·late``.

    ``query_pooled`` (d,), ``query_tokens`` (Lq, d), ``doc_pooled`` (N, d), ``doc_tokens``
    the candidates' packed states (None only when ``lambda_late`` is 0: the late term is
    then skipped and reported as 0). Ties keep input order; ``order`` is cut to ``k``.
    With a ``codec``, ``doc_tokens`` hold its codes and are scored asymmetrically.
    """
    d_pooled = _as_float32(doc_pooled)
    pooled = d_pooled @ _as_float32(query_pooled)
    if lambda_late == 0 or len(d_pooled) == 0:
        late = torch.zeros_like(pooled)
    else:
        if doc_tokens is None:
            raise ValueError("doc_tokens are needed when lambda_late > 0")
        if len(doc_tokens) != len(d_pooled):
            raise ValueError(f"{len(doc_tokens)} token entries for {len(d_pooled)} pooled vectors")
        late = maxsim_flat(query_tokens, doc_tokens.values, doc_tokens.lengths, codec=codec)
    fused = fuse(pooled, late, lambda_pool, lambda_late)
    order = torch.sort(fused, descending=True, stable=True).indices[: len(fused) if k is None else k].tolist()
    return Ranking(order=order, fused=fused, pooled=pooled, late=late)


def rerank_candidates(
    query_pooled: ArrayLike,
    query_tokens: Sequence[ArrayLike],
    doc_pooled: ArrayLike,
    doc_tokens: PackedTokens,
    *,
    candidates: int = 100,
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
    show_progress: bool = False,
    codec: TokenCodec | None = None,
) -> tuple[torch.Tensor, list[list[int]]]:
    """Two-stage SMART over an in-memory corpus, as :class:`SmartIndex` "rerank" ranks.

    Each of the Q queries (``query_pooled`` (Q, d), ``query_tokens`` Q arrays) takes its
    pooled top-``candidates`` documents, which :func:`rank` then orders.

    Returns:
        (the pooled scores (Q, N), per query the doc rows of its candidates, SMART order).
    """
    from tqdm.auto import tqdm

    q_pooled = _as_float32(query_pooled)
    d_pooled = _as_float32(doc_pooled)
    pooled = q_pooled @ d_pooled.T
    top = torch.topk(pooled, min(candidates, d_pooled.shape[0]), dim=1).indices.tolist()
    ranked = []
    for qi, cand in enumerate(tqdm(top, desc="SMART rerank", disable=not show_progress)):
        r = rank(
            q_pooled[qi],
            query_tokens[qi],
            d_pooled[cand],
            doc_tokens.take(cand),
            lambda_pool=lambda_pool,
            lambda_late=lambda_late,
            codec=codec,
        )
        ranked.append([cand[i] for i in r.order])
    return pooled, ranked


def fuse(pooled: torch.Tensor, late: torch.Tensor, lambda_pool: float = 1.0, lambda_late: float = 1.0) -> torch.Tensor:
    """``lambda_pool * pooled + lambda_late * late``; a zero weight drops its term exactly."""
    if pooled.shape != late.shape:
        raise ValueError(f"pooled scores {tuple(pooled.shape)} and late scores {tuple(late.shape)} differ in shape")
    if lambda_late == 0:
        return lambda_pool * pooled
    if lambda_pool == 0:
        return lambda_late * late
    return lambda_pool * pooled + lambda_late * late


@overload
def relevance(fused: float, lambda_pool: float = ..., lambda_late: float = ...) -> float: ...
@overload
def relevance(fused: torch.Tensor, lambda_pool: float = ..., lambda_late: float = ...) -> torch.Tensor: ...
@overload
def relevance(fused: np.ndarray, lambda_pool: float = ..., lambda_late: float = ...) -> np.ndarray: ...
def relevance(fused: float | ArrayLike, lambda_pool: float = 1.0, lambda_late: float = 1.0) -> float | ArrayLike:
    """The relevance score in [0, 1] of a fused score: ``clip(fused / (λ_pool + λ_late), 0, 1)``.

    The fused score ``λ_pool·cos + λ_late·late`` lies in [-(λ_pool + λ_late), λ_pool + λ_late];
    divided by the weights' sum it is the weighted mean of the two cosines, and negative values
    (anti-correlated) are clipped to 0. It is fixed (no per-query or per-corpus normalisation) and
    increasing in the fused score, so it ranks as the fused score does and a threshold means the
    same on every query. With ``lambda_late=0`` (or ``mode="pooled"``) it is the pooled cosine
    clipped at 0, the relevance other vector stores report for normalised embeddings. Accepts a
    float, a numpy array or a torch tensor and returns the same kind.
    """
    total = lambda_pool + lambda_late
    if not total > 0:
        raise ValueError(f"lambda_pool + lambda_late must be > 0, got {lambda_pool} + {lambda_late}")
    if isinstance(fused, torch.Tensor):
        return (fused.to(torch.float32) / total).clamp(0.0, 1.0)
    if isinstance(fused, np.ndarray):
        return np.clip(fused.astype(np.float32) / total, 0.0, 1.0)
    return min(1.0, max(0.0, float(fused) / total))
