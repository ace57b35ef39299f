"""SMART late-interaction scoring: the only place the scoring math lives.

For a query ``q`` and a document ``d``::

    score(q, d) = λ_pool · cos(pool(q), pool(d))
                + λ_late · mean_{i ∈ q tokens} max_{j ∈ d tokens} cos(h_q,i, h_d,j)

Token states and pooled vectors are expected to be L2-normalised already, so
every cosine is a plain dot product. The late term is a *mean* over query
tokens (not a sum) and there is no temperature. An input with zero tokens uses
its pooled vector as its single token. All arithmetic is done in float32;
numpy (float16/float32) arrays and torch tensors are accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .codec import TokenCodec

ArrayLike = np.ndarray | torch.Tensor

__all__ = [
    "PackedTokens",
    "Ranking",
    "Scores",
    "fuse",
    "maxsim",
    "maxsim_flat",
    "pad_tokens",
    "rank",
    "relevance",
    "rerank_candidates",
    "smart_scores",
]


@dataclass(frozen=True)
class Scores:
    """Fused, pooled and late scores, each (N,) for one query or (Q, N) for many."""

    fused: torch.Tensor
    pooled: torch.Tensor
    late: torch.Tensor


def _as_float32(x: ArrayLike) -> torch.Tensor:
    """Float32 CPU tensor view/copy of ``x``; never shares a read-only buffer."""
    if isinstance(x, torch.Tensor):
        return x.to(torch.float32)
    arr = np.ascontiguousarray(x, dtype=np.float32)
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


def _as_bool(x: ArrayLike) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(torch.bool)
    return torch.from_numpy(np.array(x, dtype=bool))


def pad_tokens(tokens: Sequence[ArrayLike], pooled: ArrayLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ragged (n_i, d) token arrays into a zero-padded float32 block (N, L, d) and a bool mask (N, L).

    An empty entry (n_i == 0) takes ``pooled[i]`` as its single token (ValueError if
    ``pooled`` is None then). L >= 1.
    """
    n = len(tokens)
    shapes = [tuple(t.shape) for t in tokens]
    for i, shape in enumerate(shapes):
        if len(shape) != 2:
            raise ValueError(f"token entry {i} must be 2-D (n_tokens, dim), got shape {shape}")
    if pooled is not None:
        pooled_shape = tuple(pooled.shape)
        if len(pooled_shape) != 2 or pooled_shape[0] != n:
            raise ValueError(f"pooled must have shape ({n}, dim) to match the tokens, got {pooled_shape}")
        dim = pooled_shape[1]
    elif shapes:
        dim = shapes[0][1]
    else:
        raise ValueError("cannot infer the dimension of an empty token list without pooled vectors")
    for i, shape in enumerate(shapes):
        if shape[1] != dim:
            raise ValueError(f"token entry {i} has dim {shape[1]}, expected {dim}")

    length = max([1, *(shape[0] for shape in shapes)])
    block = torch.zeros(n, length, dim, dtype=torch.float32)
    mask = torch.zeros(n, length, dtype=torch.bool)
    for i, (t, shape) in enumerate(zip(tokens, shapes)):
        if shape[0] == 0:
            if pooled is None:
                raise ValueError(f"token entry {i} is empty and no pooled vector was given to stand in for it")
            block[i, 0] = _as_float32(pooled[i])
            mask[i, 0] = True
        else:
            block[i, : shape[0]] = _as_float32(t)
            mask[i, : shape[0]] = True
    return block, mask


def maxsim(
    query_tokens: ArrayLike,
    query_mask: ArrayLike,
    doc_tokens: ArrayLike,
    doc_mask: ArrayLike,
    *,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Late scores (Q, N): mean over unmasked query tokens of the max over unmasked doc tokens of the dot.

    ``query_tokens`` (Q, Lq, d), ``query_mask`` (Q, Lq) bool, ``doc_tokens`` (N, Ld, d),
    ``doc_mask`` (N, Ld) bool. Docs are scored ``chunk_size`` at a time, so peak extra
    memory is about Q * chunk_size * Lq * Ld floats.
    """
    q = _as_float32(query_tokens)
    d = _as_float32(doc_tokens)
    q_mask = _as_bool(query_mask)
    d_mask = _as_bool(doc_mask)
    if q.ndim != 3 or d.ndim != 3:
        raise ValueError(f"token blocks must be 3-D, got query {tuple(q.shape)} and doc {tuple(d.shape)}")
    if q.shape[2] != d.shape[2]:
        raise ValueError(f"query dim {q.shape[2]} does not match doc dim {d.shape[2]}")
    if q_mask.shape != q.shape[:2] or d_mask.shape != d.shape[:2]:
        raise ValueError(
            f"masks must match the token blocks' first two dims: query mask {tuple(q_mask.shape)} vs "
            f"{tuple(q.shape[:2])}, doc mask {tuple(d_mask.shape)} vs {tuple(d.shape[:2])}"
        )
    if not (q_mask.any(dim=1).all() and d_mask.any(dim=1).all()):
        raise ValueError("every query and every doc needs at least one unmasked token")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    n_docs = d.shape[0]
    q_count = q_mask.sum(dim=1, keepdim=True).to(torch.float32)  # (Q, 1)
    q_pad = ~q_mask[:, None, :]  # (Q, 1, Lq)
    out = torch.empty(q.shape[0], n_docs, dtype=torch.float32)
    for start in range(0, n_docs, chunk_size):
        stop = min(start + chunk_size, n_docs)
        sims = torch.einsum("qid,njd->qnij", q, d[start:stop])  # (Q, c, Lq, Ld)
        sims.masked_fill_(~d_mask[None, start:stop, None, :], float("-inf"))
        best = sims.amax(dim=3).masked_fill_(q_pad, 0.0)  # (Q, c, Lq)
        out[:, start:stop] = best.sum(dim=2) / q_count
    return out


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
    query, (Q, N) with ``query_lengths``. Equals :func:`maxsim`.

    With a ``codec``, ``doc_tokens`` are its packed codes (T, bytes) and the float query
    tokens are scored against them asymmetrically: projected once, codes decoded one chunk
    at a time, and each query token's offset added back (see :mod:`smart_retrievers.codec`).
    """
    q = _as_float32(query_tokens)
    offsets_q = None
    if codec is not None:
        q, offsets_q = codec.query(q)
    lengths = torch.as_tensor(doc_lengths, dtype=torch.long)
    decode = _as_float32 if codec is None else codec.keys
    if q.ndim != 2 or doc_tokens.ndim != 2 or (codec is None and q.shape[1] != doc_tokens.shape[1]):
        raise ValueError(
            f"need query (Lq, d) and doc (T, d) tokens of one dim, got {tuple(q.shape)} and {tuple(doc_tokens.shape)}"
        )
    if len(q) == 0 or (lengths < 1).any() or int(lengths.sum()) != len(doc_tokens):
        raise ValueError(f"need >= 1 query token and doc lengths >= 1 summing to {len(doc_tokens)}")
    q_lengths = torch.as_tensor([len(q)] if query_lengths is None else query_lengths, dtype=torch.long)
    if (q_lengths < 1).any() or int(q_lengths.sum()) != len(q):
        raise ValueError(f"query lengths must be >= 1 and sum to {len(q)}")
    best = torch.empty(len(lengths), len(q))
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]).tolist()
    first = 0
    while first < len(lengths):  # chunks of whole docs, about chunk_tokens tokens each
        last = first + 1
        while last < len(lengths) and offsets[last + 1] - offsets[first] <= chunk_tokens:
            last += 1
        sims = decode(doc_tokens[offsets[first] : offsets[last]]) @ q.T  # (t, Lq)
        owner = torch.repeat_interleave(torch.arange(last - first), lengths[first:last])[:, None].expand_as(sims)
        best[first:last] = torch.full((last - first, len(q)), float("-inf")).scatter_reduce(0, owner, sims, "amax")
        first = last
    if offsets_q is not None:  # max_j (b + q'·c_j) = b + max_j q'·c_j
        best += offsets_q[None, :]
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
            values: ArrayLike = torch.cat([t.detach() for t in tokens])
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
        rows = np.asarray(rows, dtype=np.int64)
        starts, stops = self.offsets[rows], self.offsets[rows + 1]
        index = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)]) if len(rows) else np.zeros(0, np.int64)
        values = self.values[torch.from_numpy(index)] if isinstance(self.values, torch.Tensor) else self.values[index]
        return PackedTokens(values=values, offsets=np.concatenate([[0], np.cumsum(stops - starts)]))

    def item(self, row: int) -> ArrayLike:
        """Item ``row``'s (n, d) states."""
        return self.values[self.offsets[row] : self.offsets[row + 1]]

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


def _is_padded(doc_tokens: object) -> bool:
    """True for a ``(block, mask)`` pair as returned by :func:`pad_tokens`."""
    if not (isinstance(doc_tokens, tuple) and len(doc_tokens) == 2 and doc_tokens[0].ndim == 3):
        return False
    mask = doc_tokens[1]
    if isinstance(mask, torch.Tensor):
        return mask.dtype == torch.bool
    return np.asarray(mask).dtype == np.bool_


def smart_scores(
    query_pooled: ArrayLike,
    query_tokens: ArrayLike | Sequence[ArrayLike],
    doc_pooled: ArrayLike,
    doc_tokens: Sequence[ArrayLike] | tuple[torch.Tensor, torch.Tensor],
    *,
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
    chunk_size: int = 1024,
) -> Scores:
    """SMART scores of one query (``query_pooled`` (d,), ``query_tokens`` (n, d)) or many
    (``query_pooled`` (Q, d), ``query_tokens`` a list of Q (n_i, d) arrays) against N docs.

    ``doc_pooled`` is (N, d); ``doc_tokens`` is a list of N ragged (n_i, d) arrays or a
    ``(block, mask)`` pair from :func:`pad_tokens`. Empty token arrays fall back to the
    matching pooled vector. Returns :class:`Scores` of shape (N,) or (Q, N).
    """
    q_pooled = _as_float32(query_pooled)
    d_pooled = _as_float32(doc_pooled)
    single = q_pooled.ndim == 1
    if single:
        q_pooled = q_pooled[None]
    if q_pooled.ndim != 2 or d_pooled.ndim != 2:
        raise ValueError(
            f"query_pooled must be (d,) or (Q, d) and doc_pooled (N, d), got "
            f"{tuple(query_pooled.shape)} and {tuple(doc_pooled.shape)}"
        )
    if q_pooled.shape[1] != d_pooled.shape[1]:
        raise ValueError(f"query dim {q_pooled.shape[1]} does not match doc dim {d_pooled.shape[1]}")

    if isinstance(query_tokens, (np.ndarray, torch.Tensor)):
        query_tokens = [query_tokens]
    q_block, q_mask = pad_tokens(query_tokens, q_pooled)

    if _is_padded(doc_tokens):
        d_block, d_mask = doc_tokens
        if d_block.shape[0] != d_pooled.shape[0] or d_block.shape[2] != d_pooled.shape[1]:
            raise ValueError(
                f"padded doc tokens {tuple(d_block.shape)} do not match doc_pooled {tuple(d_pooled.shape)}"
            )
    else:
        if len(doc_tokens) != d_pooled.shape[0]:
            raise ValueError(f"doc_tokens has {len(doc_tokens)} entries but doc_pooled has {d_pooled.shape[0]} rows")
        d_block, d_mask = pad_tokens(doc_tokens, d_pooled)

    pooled = q_pooled @ d_pooled.T
    late = maxsim(q_block, q_mask, d_block, d_mask, chunk_size=chunk_size)
    fused = fuse(pooled, late, lambda_pool, lambda_late)
    if single:
        return Scores(fused=fused[0], pooled=pooled[0], late=late[0])
    return Scores(fused=fused, pooled=pooled, late=late)


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
