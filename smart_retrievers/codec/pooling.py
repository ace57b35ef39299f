"""Token pooling: a document's token states merged into fewer, each covering a contiguous run of tokens.

A document of ``L`` token states keeps ``K = ⌈L / factor⌉``, each the L2-normalised mean of a run of
neighbouring tokens. The runs are the segmentation of the document into exactly ``K`` runs of 1 to
``2·factor - 1`` tokens that loses the least (Ward's criterion, kept contiguous): the smallest total
squared distance of the token states to their run's mean, so near-duplicate neighbours (the sub-words
of one word, repeated words) merge first, and no long chain of merely similar tokens is averaged into
one vector. It is solved exactly by dynamic programming over (position, balance), where the balance
``factor · runs - position`` stays within ``±factor``: the runs may thin or thicken locally, never
drift far from one kept token per ``factor``. Only neighbours merge, so every pooled token covers one
contiguous span of the text (what evidence shows).

The cost is linear in the tokens: a few row-wise products for the runs' losses, then one pass over
positions that advances every document of the batch at once (documents grouped by length, so
padding stays small), and one pass back. Ward clustering, which this replaces, needed an L×L
distance matrix and a hierarchical linkage per document; cutting the weakest neighbour links (the
pooling in between) cost SciFact 0.006 nDCG@10 through its long runs (see BENCHMARKS.md).

Documents of fewer than ``min_tokens`` states are kept whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

__all__ = ["Pooled", "pool_documents", "pool_tokens"]

_CHUNK_CELLS = 1 << 18
"""Most (document, position) cells the dynamic programme holds at once (it pads documents to the longest)."""


@dataclass(frozen=True)
class Pooled:
    """Pooled documents, concatenated.

    Attributes:
        tokens: (T', dim) float32 unit vectors, document after document.
        lengths: (N,) pooled tokens per document.
        starts: (T',) index, within its document, of the first original token each pooled token covers
            (it covers ``starts[k]`` up to the next pooled token's start, or the document's end).
    """

    tokens: np.ndarray
    lengths: np.ndarray
    starts: np.ndarray

    def runs(self, doc: int, n_original: int) -> list[tuple[int, int]]:
        """Document ``doc``'s pooled tokens as ``[first, stop)`` ranges of its ``n_original`` original tokens."""
        offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        first = self.starts[offsets[doc] : offsets[doc + 1]].tolist()
        return list(zip(first, first[1:] + [n_original]))


def pool_documents(docs: Sequence[np.ndarray], factor: int, *, min_tokens: int = 3) -> Pooled:
    """Pool each document's (n_i, dim) unit token states to ``⌈n_i / factor⌉`` runs of neighbours, each kept as its
    unit mean: the runs of 1 to ``2·factor - 1`` tokens with the least squared error around their means.

    ``factor`` 1 (or a document of fewer than ``min_tokens`` states) keeps the states as they are.
    """
    if factor < 1:
        raise ValueError(f"the pooling factor must be >= 1, got {factor}")
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    if not len(docs):
        return Pooled(np.zeros((0, 0), np.float32), lengths, np.zeros(0, np.int64))
    x = np.ascontiguousarray(np.concatenate(docs), dtype=np.float32)
    doc_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    first = np.ones(len(x), dtype=bool)  # first[t]: token t begins a run (every token, until pooled)
    pooled = np.flatnonzero((lengths >= max(min_tokens, 2)) & (factor > 1))
    if len(pooled):
        _segment(x, lengths, doc_start, pooled, factor, first)
    return pooled_runs(x, lengths, first)


def pooled_runs(x: np.ndarray, lengths: np.ndarray, first: np.ndarray) -> Pooled:
    """Documents' concatenated (T, dim) states ``x`` (``lengths`` each) pooled into runs: ``first[t]`` is True
    where a run begins (every document's first token must), and each run becomes its states' unit mean."""
    doc_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    starts = np.flatnonzero(first)
    group = np.cumsum(first) - 1
    members = csr_matrix((np.ones(len(x), np.float32), (group, np.arange(len(x)))), shape=(len(starts), len(x)))
    sums = np.asarray(members @ x)
    tokens = sums / np.sqrt(np.einsum("ij,ij->i", sums, sums))[:, None].clip(1e-12)
    per_doc = np.diff(np.searchsorted(starts, np.concatenate([doc_start, [len(x)]])))
    return Pooled(tokens=tokens, lengths=per_doc, starts=starts - np.repeat(doc_start, per_doc))


def pool_tokens(tokens: np.ndarray, factor: int, *, min_tokens: int = 3) -> np.ndarray:
    """One document's (n, dim) token states pooled to ``⌈n / factor⌉`` (:func:`pool_documents`)."""
    return pool_documents([tokens], factor, min_tokens=min_tokens).tokens


def _segment(
    x: np.ndarray, lengths: np.ndarray, doc_start: np.ndarray, which: np.ndarray, factor: int, first: np.ndarray
) -> None:
    """Mark in ``first`` the runs that documents ``which`` pool into (their tokens' entries are overwritten)."""
    longest = 2 * factor - 1
    # gain[s - 1][t]: minus the squared error of the s unit states from t around their mean, ‖sum‖² / s - s,
    # from the products of tokens k apart (k < s), summed over the run through prefix sums
    gain = np.zeros((longest, len(x)))
    pairs = np.zeros((longest, len(x) + 1))  # pairs[k][t]: sum of x[j]·x[j + k] for j < t
    for k in range(1, min(longest, len(x))):
        pairs[k, 1 : len(x) - k + 1] = np.cumsum(np.einsum("ij,ij->i", x[:-k], x[k:]), dtype=np.float64)
        pairs[k, len(x) - k + 1 :] = pairs[k, len(x) - k]
    begin = np.arange(len(x))
    for s in range(2, longest + 1):
        inner = sum(pairs[k, np.minimum(begin + s - k, len(x))] - pairs[k, begin] for k in range(1, s))
        gain[s - 1] = (s + 2 * inner) / s - s
    first[np.repeat(doc_start[which], lengths[which]) + _ranges(lengths[which])] = False  # set again run by run
    order = which[np.argsort(lengths[which], kind="stable")]
    sizes = lengths[order]
    at = 0
    while at < len(order):  # documents of similar length together, so padding to the longest costs little
        cells = np.arange(1, len(order) - at + 1) * sizes[at:]  # chunk [at, at + m) pads to sizes[at + m - 1]
        stop = at + max(1, int(np.count_nonzero(cells <= _CHUNK_CELLS)))
        _segment_chunk(gain, sizes[at:stop], doc_start[order[at:stop]], factor, first)
        at = stop


def _segment_chunk(
    gain: np.ndarray, lengths: np.ndarray, doc_start: np.ndarray, factor: int, first: np.ndarray
) -> None:
    """The dynamic programme for documents of ``lengths`` starting at ``doc_start``, all in lockstep."""
    longest, n, top = len(gain), len(lengths), int(lengths.max())
    slack = factor  # the balance factor·runs - position stays in [-slack, slack]; it ends in [0, factor - 1]
    width = 2 * slack + 1
    # padded[s - 1, p, i, 0]: the gain of document i's run of s tokens from position p (-inf where it passes the end)
    position = np.arange(top)
    inside = position[None, :, None] + np.arange(1, longest + 1)[:, None, None] <= lengths[None, None, :]
    index = np.minimum(doc_start[None, None, :] + position[None, :, None], gain.shape[1] - 1)
    padded = np.where(inside, gain[np.arange(longest)[:, None, None], index], -np.inf)[..., None]
    # current[i, factor - 1 + b + slack]: the best gain of document i's first p tokens at balance b, with
    # factor - 1 columns of -inf either side; a run of s tokens moves the balance by factor - s, so the
    # window of columns [s - 1, s - 1 + width) is where each balance after the run comes from
    current = np.full((n, width + 2 * (factor - 1)), -np.inf)
    current[:, factor - 1 + slack] = 0.0
    windows = np.lib.stride_tricks.sliding_window_view(current, width, axis=1).transpose(1, 0, 2)  # (longest, n, width)
    # ahead[q % (longest + 1), s - 1]: the best gain of the first q tokens if their last run has s tokens
    ahead = np.full((longest + 1, longest, n, width), -np.inf)
    runs = np.arange(1, longest + 1)
    choice = np.zeros((top + 1, n, width), dtype=np.int8)
    for p in range(top + 1):
        if p:
            candidates = ahead[p % (longest + 1)]
            choice[p] = candidates.argmax(axis=0)
            current[:, factor - 1 : factor - 1 + width] = candidates.max(axis=0)
        if p < top:
            ahead[(p + runs) % (longest + 1), runs - 1] = windows + padded[:, p]
    # back from each document's end, whose balance factor·⌈L / factor⌉ - L is fixed
    p = lengths.copy()
    column = factor * -(-lengths // factor) - lengths + slack
    live = np.arange(n)
    while len(live):
        s = choice[p[live], live, column[live]].astype(np.int64) + 1
        p[live] -= s
        column[live] -= factor - s
        first[doc_start[live] + p[live]] = True  # the run [p - s, p) starts at p - s
        live = live[p[live] > 0]


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """0, 1, …, n_0 - 1, 0, 1, …, n_1 - 1, … for ``lengths`` n_i."""
    return np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
