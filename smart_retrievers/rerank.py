"""SmartScorer: SMART scores for arbitrary candidates, the rerank step after any retriever.

Candidates already in a :class:`SmartIndex` reuse their stored token states (looked up by
id, and only when the stored text is the candidate's text; no forward pass); the others are encoded once and kept in an LRU cache keyed by text.
Both framework rerankers call :meth:`SmartScorer.score`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .encoder import SmartEncoder
from .encoding import Encoding
from .index import SmartIndex, _check_lambdas
from .scoring import smart_scores
from .store import tokens_block, vectors_block


@dataclass(frozen=True)
class CandidateScore:
    """SMART scores of one candidate, at its position in the input list."""

    position: int
    score: float
    pooled_score: float
    late_score: float


class EncodingCache:
    """A bounded, thread-safe LRU cache of document encodings keyed by their text."""

    def __init__(self, max_items: int = 4096) -> None:
        self.max_items = max_items
        self._items: OrderedDict[str, Encoding] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Encoding | None:
        with self._lock:
            enc = self._items.get(key)
            if enc is not None:
                self._items.move_to_end(key)
            return enc

    def put(self, key: str, enc: Encoding) -> None:
        with self._lock:
            self._items[key] = enc
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class SmartScorer:
    """Scores (query, candidates) pairs with SMART, reusing stored or cached token states.

    Args:
        encoder: the encoder for the query and uncached candidates; when omitted, the
            index's current encoder (so it follows ``reindex_tokens``), else the bundled default.
        index: an optional :class:`SmartIndex` whose stored token states are reused
            for candidates whose id it holds.
        lambda_pool / lambda_late: fusion weights.
        batch_size: encoder batch size for uncached candidates.
        cache_size: how many encoded candidates the LRU cache keeps.
    """

    def __init__(
        self,
        encoder: SmartEncoder | None = None,
        *,
        index: SmartIndex | None = None,
        lambda_pool: float = 1.0,
        lambda_late: float = 1.0,
        batch_size: int | None = None,
        cache_size: int = 4096,
    ) -> None:
        _check_lambdas(lambda_pool, lambda_late)
        self.index = index
        self._encoder = encoder if encoder is not None or index is not None else SmartEncoder.default()
        self.lambda_pool = lambda_pool
        self.lambda_late = lambda_late
        self.batch_size = batch_size
        self.cache = EncodingCache(cache_size)

    @property
    def encoder(self) -> SmartEncoder:
        """The encoder in use: the one given, else the index's current one."""
        return self._encoder if self._encoder is not None else self.index.encoder

    def encode_candidates(self, texts: Sequence[str], ids: Sequence[str | None] | None = None) -> list[Encoding]:
        """Encodings for candidates: stored ones by id, then cached, then freshly encoded."""
        found: dict[int, Encoding] = {}
        if self.index is not None and ids is not None:
            wanted = {i: cid for i, cid in enumerate(ids) if cid}
            rows = self.index.store.get(list(dict.fromkeys(wanted.values())), columns=["id", "text", "vector", "tokens", "modality"])
            if len(rows):
                pooled = vectors_block(rows.column("vector")).numpy()
                block, mask = tokens_block(rows.column("tokens"))
                stored = {
                    (rid, text): Encoding(pooled=pooled[r], tokens=block[r][mask[r]].numpy(), modality=mod or "text")
                    for r, (rid, text, mod) in enumerate(zip(*(rows.column(c).to_pylist() for c in ("id", "text", "modality"))))
                }
                # an id from another source with other text must not borrow these states
                found = {i: stored[(cid, texts[i])] for i, cid in wanted.items() if (cid, texts[i]) in stored}
        missing = []
        for i, text in enumerate(texts):
            if i not in found:
                cached = self.cache.get(text)
                if cached is None:
                    missing.append(i)
                else:
                    found[i] = cached
        if missing:
            unique = list(dict.fromkeys(texts[i] for i in missing))
            fresh = dict(zip(unique, self.encoder.encode_documents(unique, batch_size=self.batch_size)))
            for text, enc in fresh.items():
                self.cache.put(text, enc)
            found.update({i: fresh[texts[i]] for i in missing})
        return [found[i] for i in range(len(texts))]

    def score(
        self,
        query: str | Encoding,
        texts: Sequence[str],
        ids: Sequence[str | None] | None = None,
        *,
        top_n: int | None = None,
    ) -> list[CandidateScore]:
        """Score candidates for a query, best first (ties keep input order), cut to ``top_n``."""
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"got {len(texts)} candidates but {len(ids)} ids")
        if not texts:
            return []
        q = query if isinstance(query, Encoding) else self.encoder.encode_queries([query], show_progress=False)[0]
        docs = self.encode_candidates(texts, ids)
        scores = smart_scores(
            q.pooled,
            q.tokens,
            np.stack([d.pooled for d in docs]),
            [d.tokens for d in docs],
            lambda_pool=self.lambda_pool,
            lambda_late=self.lambda_late,
        )
        order = np.argsort(-scores.fused.numpy(), kind="stable")[: top_n or len(texts)]
        return [CandidateScore(int(i), float(scores.fused[i]), float(scores.pooled[i]), float(scores.late[i])) for i in order]
