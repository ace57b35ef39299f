"""Token pooling: a document's token states merged into fewer, each covering a contiguous run of tokens.

A document of ``L`` token states keeps ``⌈L / factor⌉``: the ``⌈L / factor⌉ - 1`` weakest links
between neighbouring tokens (lowest cosine) are cut, and each run between cuts becomes one
token, the L2-normalised mean of its states. Only neighbours merge, so every pooled token
covers one contiguous span of the text (what evidence shows), and near-duplicate neighbours
(the sub-words of one word, repeated words) are what merges first. The whole batch is pooled
at once: one row-wise product, one sort and one segment sum, in linear memory, so pooling
costs a small fraction of the forward pass that made the states (Ward clustering, which this
replaces, needed an L×L distance matrix and a hierarchical linkage per document).

Documents of fewer than ``min_tokens`` states are kept whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

__all__ = ["Pooled", "pool_documents", "pool_tokens"]


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
    """Pool each document's (n_i, dim) unit token states to ``⌈n_i / factor⌉`` by cutting its weakest neighbour links.

    ``factor`` 1 (or a document of fewer than ``min_tokens`` states) keeps the states as they are.
    """
    if factor < 1:
        raise ValueError(f"the pooling factor must be >= 1, got {factor}")
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    if not len(docs):
        return Pooled(np.zeros((0, 0), np.float32), lengths, np.zeros(0, np.int64))
    x = np.ascontiguousarray(np.concatenate(docs), dtype=np.float32)
    doc_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    keep = np.where((lengths < max(min_tokens, 2)) | (factor == 1), lengths, -(-lengths // factor))
    # link i joins token i and i + 1; links across a document boundary are always cut and never counted
    owner = np.repeat(np.arange(len(docs)), lengths)
    link_doc = owner[:-1]
    inside = owner[1:] == link_doc
    similarity = np.einsum("ij,ij->i", x[:-1], x[1:])
    # rank each document's inner links from weakest to strongest; the first keep - 1 are cut
    order = np.lexsort((similarity, ~inside, link_doc))
    rank = np.empty(len(order), dtype=np.int64)
    first_link = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # document i's links start at its first token
    rank[order] = np.arange(len(order)) - first_link[link_doc[order]]
    cut = ~inside | (rank < keep[link_doc] - 1)
    starts = np.flatnonzero(np.concatenate([[True], cut]))
    group = np.cumsum(np.concatenate([[False], cut]))
    members = csr_matrix((np.ones(len(x), np.float32), (group, np.arange(len(x)))), shape=(len(starts), len(x)))
    sums = np.asarray(members @ x)
    pooled = sums / np.sqrt(np.einsum("ij,ij->i", sums, sums))[:, None].clip(1e-12)
    per_doc = np.diff(np.searchsorted(starts, np.concatenate([doc_start, [len(x)]])))
    return Pooled(tokens=pooled, lengths=per_doc, starts=starts - np.repeat(doc_start, per_doc))


def pool_tokens(tokens: np.ndarray, factor: int, *, min_tokens: int = 3) -> np.ndarray:
    """One document's (n, dim) token states pooled to ``⌈n / factor⌉`` (:func:`pool_documents`)."""
    return pool_documents([tokens], factor, min_tokens=min_tokens).tokens
