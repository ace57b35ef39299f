"""IndexOptions: an index's settings, checked in one place; the constructor's keyword arguments build it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any, Literal

from ..lexical import DEFAULT_LAMBDA_LEX
from ..options import DEFAULT_READ_CONSISTENCY, check_lambda_lex, check_weights
from ..store import ANN_INDEX_TYPES, DEFAULT_ANN_INDEX, DEFAULT_ANN_MIN_ROWS, TextIndexSettings
from ..validation import check_count

__all__ = ["DEFAULT_TEXT_INDEX", "DEFAULT_TOKEN_FETCH", "TOKEN_FETCHES", "IndexOptions", "TokenFetch"]

TokenFetch = Literal["query", "take"]
TOKEN_FETCHES: tuple[str, ...] = ("query", "take")
DEFAULT_TOKEN_FETCH: TokenFetch = "query"
"""How "rerank" gets its candidates' tokens: in the pooled search itself ("query"), or by a
second ``take`` of the candidates' rows by row id ("take"). Measured in benchmarks/scale.py."""

DEFAULT_TEXT_INDEX = TextIndexSettings()
"""The full-text index a new table gets: English, stemmed, stop words dropped, accents folded."""

FIXED_AT_OPEN = ("compression", "storage_options", "read_consistency_interval", "connect_kwargs")
"""Settings of the connection and the table: an open index cannot change them (:meth:`IndexOptions.updated` refuses)."""


@dataclass(frozen=True)
class IndexOptions:
    """Everything an open :class:`~smart_retrievers.index.SmartIndex` is configured with.

    Attributes:
        lambda_pool / lambda_late: default fusion weights; None takes the weights saved in the
            table by ``calibrate(save=True)``, else 1.
        lambda_lex: default weight of the lexical (BM25) term in "hybrid" mode (a ``SmartIndex`` opened
            without one takes the weight saved by ``calibrate(save=True)``, else ``DEFAULT_LAMBDA_LEX``).
        candidates: default number of pooled candidates re-scored in "rerank" and "hybrid" mode.
        text_index: how the full-text (BM25) index tokenizes (:class:`~smart_retrievers.store.TextIndexSettings`),
            built by the first write to a new table and kept by ``optimize()``; None: build none
            (searches then run "rerank" where "hybrid" was asked).
        write_batch_size: rows encoded (and held in memory) at a time in ``add``.
        compression: how token states are stored (a :mod:`smart_retrievers.codec` preset,
            "none", or None: the table's own, else the default preset).
        ann_min_rows: ``optimize`` builds the pooled ANN index from this many rows (None: never).
        ann_index_type: the LanceDB index type ``optimize`` builds (``store.ANN_INDEX_TYPES``).
        token_fetch: how "rerank" reads its candidates' tokens (:data:`DEFAULT_TOKEN_FETCH`).
        storage_options / read_consistency_interval / connect_kwargs: how ``lancedb.connect`` is called.
    """

    lambda_pool: float | None = None
    lambda_late: float | None = None
    lambda_lex: float = DEFAULT_LAMBDA_LEX
    candidates: int = 100
    write_batch_size: int = 1024
    compression: str | None = None
    ann_min_rows: int | None = DEFAULT_ANN_MIN_ROWS
    ann_index_type: str = DEFAULT_ANN_INDEX
    token_fetch: TokenFetch = DEFAULT_TOKEN_FETCH
    text_index: TextIndexSettings | None = DEFAULT_TEXT_INDEX
    storage_options: Mapping[str, str] | None = None
    read_consistency_interval: timedelta | None = DEFAULT_READ_CONSISTENCY
    connect_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.lambda_pool is not None or self.lambda_late is not None:
            check_weights(
                1.0 if self.lambda_pool is None else self.lambda_pool,
                1.0 if self.lambda_late is None else self.lambda_late,
            )
        if self.ann_min_rows is not None:
            check_count("ann_min_rows", self.ann_min_rows)
        if self.ann_index_type not in ANN_INDEX_TYPES:
            raise ValueError(f"ann_index_type must be one of {ANN_INDEX_TYPES}, got {self.ann_index_type!r}")
        if self.token_fetch not in TOKEN_FETCHES:
            raise ValueError(f"token_fetch must be one of {TOKEN_FETCHES}, got {self.token_fetch!r}")
        check_count("candidates", self.candidates)
        check_count("write_batch_size", self.write_batch_size)
        check_lambda_lex(self.lambda_lex)
        if self.text_index is not None and not isinstance(self.text_index, TextIndexSettings):
            raise ValueError(f"text_index must be a TextIndexSettings or None, got {self.text_index!r}")

    def updated(self, **changes: Any) -> IndexOptions:
        """A checked copy with ``changes``; unknown names raise TypeError, connection and table settings ValueError."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown index option(s) {unknown}; known: {sorted(known)}")
        fixed = sorted(set(changes) & set(FIXED_AT_OPEN))
        if fixed:
            raise ValueError(f"{fixed} are fixed when the index is opened; open a new SmartIndex to change them")
        return replace(self, **changes)
