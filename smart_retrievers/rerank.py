"""SmartScorer: SMART scores for arbitrary candidates, the rerank step after any retriever.

Candidates already in a :class:`SmartIndex` reuse their stored token states (looked up by
id, and only when the stored text is the candidate's text; no forward pass); the others are
encoded once and kept in an LRU cache keyed by text. With a compressed index, stored codes
are reused as they are and fresh candidates are coded by the index's codec before scoring.
Image candidates (``images=``) are encoded by a vision encoder and cached by their location
or content; they reuse stored states only from an image row with the same id, text and location.
Every reranker (LlamaIndex, LangChain, LanceDB) builds its scorer with :meth:`SmartScorer.create`
and calls :meth:`SmartScorer.score`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .encoders import SmartEncoder, default_encoder
from .encoders.images import ImageInput, image_cache_key, image_uri
from .encoding import Encoding
from .index import SmartIndex
from .lexical import length_trust, lexical_scores, mean_words
from .options import check_lambda_lex, check_weights
from .scoring import PackedTokens, rank, relevance
from .store import tokens_from_arrow, vectors_block
from .store.fulltext import bm25_top


@dataclass(frozen=True)
class CandidateScore:
    """SMART scores of one candidate, at its position in the input list.

    ``score = λ_pool·pooled_score + λ_late·late_score + λ_lex·lex_score`` (``lex_score`` 0 unless the
    scorer's ``lambda_lex`` is set); ``relevance`` is ``score`` in [0, 1]
    (:func:`~smart_retrievers.scoring.relevance`, the lexical weight counted at the query's trust).
    """

    position: int
    score: float
    pooled_score: float
    late_score: float
    lex_score: float = 0.0
    relevance: float = 0.0


class EncodingCache:
    """A bounded, thread-safe LRU cache of document encodings keyed by their text (or an image key)."""

    def __init__(self, max_items: int = 4096) -> None:
        self.max_items = max_items
        self._items: OrderedDict[Hashable, Encoding] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Encoding | None:
        with self._lock:
            enc = self._items.get(key)
            if enc is not None:
                self._items.move_to_end(key)
            return enc

    def put(self, key: Hashable, enc: Encoding) -> None:
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
        lambda_lex: weight of the lexical term (0: SMART alone). Above 0, text candidates also get
            BM25 evidence, as "hybrid" search does (:mod:`smart_retrievers.lexical`, same gates), with
            the candidates themselves as the corpus: LanceDB's full-text index on a temporary table
            of them, so IDF comes from the candidate set.
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
        lambda_lex: float = 0.0,
        batch_size: int | None = None,
        cache_size: int = 4096,
    ) -> None:
        check_weights(lambda_pool, lambda_late)
        check_lambda_lex(lambda_lex)
        self.index = index
        self._encoder = encoder if encoder is not None or index is not None else default_encoder()
        self.lambda_pool = lambda_pool
        self.lambda_late = lambda_late
        self.lambda_lex = lambda_lex
        self.batch_size = batch_size
        self.cache = EncodingCache(cache_size)

    @classmethod
    def create(
        cls,
        model: str | Path | None = None,
        encoder: SmartEncoder | None = None,
        index: SmartIndex | None = None,
        device: str | None = None,
        **settings: Any,
    ) -> SmartScorer:
        """A scorer on the encoder a reranker's arguments name: the one rule every reranker follows.

        * ``index`` alone: the index's current encoder (the scorer follows ``reindex_tokens``).
        * ``model`` (a hub id or model directory; also a string ``encoder``) is loaded, on ``device``;
          an ``encoder`` object is used as it is; neither: the bundled model (on ``device``).
        * ``model`` or ``encoder`` with ``index``: accepted when its fingerprint is the index's encoder's
          (the stored token states then match), else ``ValueError``.
        * ``model`` with ``encoder``, or ``device`` with ``encoder`` / ``index`` (nothing is loaded
          there): ``ValueError``.

        ``settings`` are the other :class:`SmartScorer` arguments (``lambda_pool``, ``batch_size``...).
        """
        from .encoders import as_encoder

        check_weights(settings.get("lambda_pool", 1.0), settings.get("lambda_late", 1.0))  # before a model loads
        check_lambda_lex(settings.get("lambda_lex", 0.0))
        if model is not None and encoder is not None:
            raise ValueError("pass model= (a model to load) or encoder= (an encoder object), not both")
        if isinstance(encoder, (str, Path)):  # a name given as encoder=: loaded like model=
            model, encoder = encoder, None
        if model is not None and not isinstance(model, (str, Path)):
            raise TypeError(
                f"model must be a hub id or a model directory (str), got {type(model).__name__}; "
                "pass encoder objects as encoder="
            )
        if device is not None and (encoder is not None or (index is not None and model is None)):
            raise ValueError("device= applies only to a model the reranker loads (model=, or no index= or encoder=)")
        if index is not None and not isinstance(index, SmartIndex):
            raise TypeError(f"index must be a SmartIndex, got {type(index).__name__}")
        if model is not None or (encoder is None and index is None):
            encoder = as_encoder(model, **({} if device is None else {"device": device}))
        if index is not None and encoder is not None and encoder.fingerprint != index.encoder.fingerprint:
            named = f"model={str(model)!r}" if model is not None else "encoder"
            raise ValueError(
                f"{named} differs from the index's encoder; its stored token states would not match "
                "(leave model= and encoder= unset to score with the index's)"
            )
        if index is not None:
            encoder = None  # the same model: follow the index's current encoder
        return cls(encoder, index=index, **settings)

    @property
    def encoder(self) -> SmartEncoder:
        """The encoder in use: the one given, else the index's current one."""
        if self._encoder is not None:
            return self._encoder
        assert self.index is not None  # __init__ takes an encoder, an index, or builds the default encoder
        return self.index.encoder

    def encode_candidates(
        self,
        texts: Sequence[str],
        ids: Sequence[str | None] | None = None,
        images: Sequence[ImageInput | None] | None = None,
    ) -> list[Encoding]:
        """Encodings for candidates: stored ones by id, then cached, then freshly encoded.

        A candidate with ``images[i]`` is an image: it is encoded by the (vision) encoder
        from that image, and ``texts[i]`` is only its caption.
        """
        images = list(images) if images is not None else [None] * len(texts)
        found: dict[int, Encoding] = {}
        if self.index is not None and ids is not None:
            wanted = {i: cid for i, cid in enumerate(ids) if cid}
            rows = self.index.store.get(
                list(dict.fromkeys(wanted.values())), columns=["id", "text", "image", "vector", "tokens", "modality"]
            )
            if len(rows):
                pooled = vectors_block(rows.column("vector")).numpy()
                tokens = tokens_from_arrow(rows.column("tokens"))
                columns = (rows.column(c).to_pylist() for c in ("id", "text", "image", "modality"))
                stored = {
                    (rid, text, mod or "text", image): Encoding(
                        pooled=pooled[r], tokens=tokens.item_numpy(r), modality=mod or "text"
                    )
                    for r, (rid, text, image, mod) in enumerate(zip(*columns))
                }
                # an id from another source with other content must not borrow these states;
                # an image candidate must match an image row's location (unknown: no reuse)
                for i, cid in wanted.items():
                    image = images[i]
                    uri = None if image is None else image_uri(image)
                    if image is not None and uri is None:  # an in-memory image: nothing to check it against
                        continue
                    row_key = (cid, texts[i], "text" if image is None else "image", uri)
                    if row_key in stored:
                        found[i] = stored[row_key]
        keys: list[Hashable] = [
            text if image is None else ("image", image_cache_key(image)) for text, image in zip(texts, images)
        ]
        missing = []
        for i, key in enumerate(keys):
            if i not in found:
                cached = self.cache.get(key)
                if cached is None:
                    missing.append(i)
                else:
                    found[i] = cached
        if missing:
            fresh = self._encode_missing(texts, images, keys, missing)
            for key, enc in fresh.items():
                self.cache.put(key, enc)
            found.update({i: fresh[keys[i]] for i in missing})
        return [found[i] for i in range(len(texts))]

    def _encode_missing(
        self, texts: Sequence[str], images: list[ImageInput | None], keys: list[Hashable], missing: list[int]
    ) -> dict[Hashable, Encoding]:
        """Encode each distinct missing candidate once; returns the encodings by cache key."""
        first: dict[Hashable, int] = {}  # cache key -> first candidate position with it
        for i in missing:
            first.setdefault(keys[i], i)
        rows = list(first.values())
        encoded = self.encoder.encode_items(
            [texts[i] for i in rows], [images[i] for i in rows], batch_size=self.batch_size, positions=rows
        )
        return dict(zip(first, encoded))

    def score(
        self,
        query: str | Encoding,
        texts: Sequence[str],
        ids: Sequence[str | None] | None = None,
        *,
        images: Sequence[ImageInput | None] | None = None,
        top_n: int | None = None,
        text: str | None = None,
    ) -> list[CandidateScore]:
        """Score candidates for a query, best first (ties keep input order), cut to ``top_n``.

        ``images[i]``, when given, makes candidate i an image (see :meth:`encode_candidates`).
        For an image query, pass its encoding: ``encoder.encode_images([img], query=True)[0]``.
        ``text`` is the query's words for the lexical term (default: ``query`` when it is a str);
        candidates with images get none.
        """
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"got {len(texts)} candidates but {len(ids)} ids")
        if images is not None and len(images) != len(texts):
            raise ValueError(f"got {len(texts)} candidates but {len(images)} images")
        if not texts:
            return []
        q = query if isinstance(query, Encoding) else self.encoder.encode_queries([query], show_progress=False)[0]
        docs = self.encode_candidates(texts, ids, images)
        # with a compressed index every candidate is scored from codes, as a search would:
        # stored rows already are (uint8), fresh encodings are coded here
        codec = self.index.codec if self.index is not None else None
        tokens = [
            d.tokens if codec is None or d.tokens.dtype == np.uint8 else codec.encode_docs([d.tokens])[0] for d in docs
        ]
        words = query if isinstance(query, str) else text
        lexical = bool(words) and images is None and self.lambda_lex > 0
        ranking = rank(
            q.pooled,
            q.tokens,
            np.stack([d.pooled for d in docs]),
            PackedTokens.from_list(tokens),
            lambda_pool=self.lambda_pool,
            lambda_late=self.lambda_late,
            k=None if lexical else top_n,
            codec=codec,
        )
        fused = np.asarray(ranking.fused, dtype=np.float64)
        lex, trust = np.zeros(len(texts)), 0.0
        if lexical:
            lex, trust = self._lexical(str(words), texts)
        total = fused + self.lambda_lex * lex
        order = sorted(range(len(texts)), key=lambda i: -total[i])[:top_n] if lexical else ranking.order
        weights = (self.lambda_pool, self.lambda_late + self.lambda_lex * trust)
        return [
            CandidateScore(
                i,
                float(total[i]),
                float(ranking.pooled[i]),
                float(ranking.late[i]),
                float(lex[i]),
                relevance(float(total[i]), *weights),
            )
            for i in order
        ]

    def _lexical(self, query: str, texts: Sequence[str]) -> tuple[np.ndarray, float]:
        """The candidates' lexical term and the query's trust, the candidates being the corpus (short texts: none)."""
        words = mean_words(texts)
        if length_trust(words) == 0.0:
            return np.zeros(len(texts)), 0.0
        bm25 = bm25_top(texts, [query], len(texts))[0]
        return lexical_scores(
            [bm25.get(i, 0.0) for i in range(len(texts))],
            best_bm25=max(bm25.values(), default=0.0),
            words=words,
            text=query,
            n_rows=len(texts),
        )
