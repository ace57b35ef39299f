"""SearchOptions: how a search ranks, resolved once against the index's defaults; the shared option checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any, Literal, TypeVar

from .validation import check_count

SearchMode = Literal["hybrid", "rerank", "exhaustive", "pooled", "text"]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "rerank", "exhaustive", "pooled", "text")
DEFAULT_MODE: SearchMode = "hybrid"
DEFAULT_TEXT_CANDIDATES = 20
"""Full-text candidates a "hybrid" search adds (at least ``k``): on SciFact the BM25 top-20 gives the
nDCG@10 the top-100 gives (0.7364 both; 0.6208 vs 0.6213 on keyword queries, BENCHMARKS.md), at a
fifth of the rows to read and score."""
"""The default search mode: "hybrid" where the table has a full-text index and the query has text,
"rerank" otherwise (image queries, tables without one)."""
Modality = Literal["text", "image"]
MODALITIES: tuple[str, ...] = ("text", "image")
DEFAULT_READ_CONSISTENCY = timedelta(0)
"""How often an open index looks for other processes' commits: on every read (free on a local table)."""


def check_weights(lambda_pool: float, lambda_late: float) -> None:
    """Raise ValueError unless both fusion weights are finite, >= 0 and not both 0."""
    for name, value in (("lambda_pool", lambda_pool), ("lambda_late", lambda_late)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if lambda_pool < 0 or lambda_late < 0 or lambda_pool + lambda_late == 0:
        raise ValueError(f"lambda_pool and lambda_late must be >= 0 and not both 0, got {lambda_pool}, {lambda_late}")


def check_lambda_lex(value: float) -> None:
    """Raise ValueError unless ``lambda_lex`` is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"lambda_lex must be a finite number >= 0, got {value!r}")


_Options = TypeVar("_Options", bound="SearchOptions")


@dataclass(frozen=True)
class SearchOptions:
    """The settings of one search; None means "the index's default".

    Attributes:
        k: number of hits.
        mode: "hybrid" (the default: "rerank" plus lexical evidence, see
            :mod:`smart_retrievers.lexical`), "rerank" (pooled top-``candidates``, then exact
            SMART), "exhaustive" (exact SMART over every matching row), "pooled" (single-vector
            cosine, the baseline) or "text" (BM25 alone, from the full-text index).
        candidates: pooled candidates re-scored in "rerank" and "hybrid" mode.
        text_candidates: full-text candidates added to them in "hybrid" mode (None: the larger of
            ``k`` and :data:`DEFAULT_TEXT_CANDIDATES`).
        lambda_pool / lambda_late: fusion weights.
        lambda_lex: weight of the normalised BM25 term in "hybrid" mode (0: exactly "rerank").
        where: metadata filter (dict or :mod:`smart_retrievers.filters` model).
        modality: only "text" or only "image" rows (None: both).
        nprobes: ANN stage (once :meth:`SmartIndex.optimize` has built the pooled vector
            index): IVF partitions searched per query (None: 100 on IVF_SQ, 50 on other
            indices). A refined search without a filter probes exactly these; otherwise more
            when a filter leaves fewer than the rows asked for in them. More is slower and
            closer to a flat search.
        refine_factor: ANN stage: fetch ``refine_factor × candidates`` rows from the index
            and re-rank them by their exact pooled cosine (0: no refinement; None: 2 on
            IVF_SQ and IVF_HNSW_SQ indices, none on others).
        ef: ANN stage, HNSW indices: size of the graph search's candidate list (>= the
            number of candidates asked for).
        flat: search the pooled vectors exhaustively even where an ANN index exists
            (exact candidates, slower on large tables).
    """

    k: int = 10
    mode: SearchMode = DEFAULT_MODE
    candidates: int | None = None
    text_candidates: int | None = None
    lambda_pool: float | None = None
    lambda_late: float | None = None
    lambda_lex: float | None = None
    where: Any = None
    modality: Modality | None = None
    nprobes: int | None = None
    refine_factor: int | None = None
    ef: int | None = None
    flat: bool = False

    def __post_init__(self) -> None:
        check_count("k", self.k)
        for name in ("candidates", "text_candidates"):
            if getattr(self, name) is not None:
                check_count(name, getattr(self, name))
        if self.lambda_lex is not None:
            check_lambda_lex(self.lambda_lex)
        for name in ("nprobes", "ef"):  # ANN knobs
            if getattr(self, name) is not None:
                check_count(name, getattr(self, name))
        if self.refine_factor is not None and (
            isinstance(self.refine_factor, bool) or not isinstance(self.refine_factor, int) or self.refine_factor < 0
        ):
            raise ValueError(f"refine_factor must be an int >= 0, got {self.refine_factor!r}")
        if not isinstance(self.flat, bool):
            raise ValueError(f"flat must be a bool, got {self.flat!r}")
        if self.mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}, got {self.mode!r}")
        if self.modality is not None and self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES} or None, got {self.modality!r}")
        if self.lambda_pool is not None and self.lambda_late is not None:
            check_weights(self.lambda_pool, self.lambda_late)

    def updated(self: _Options, **changes: Any) -> _Options:
        """A copy with the non-None ``changes`` applied (unknown names raise TypeError)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown search option(s) {unknown}; known: {sorted(known)}")
        return replace(self, **{name: value for name, value in changes.items() if value is not None})

    def resolved(
        self, *, candidates: int, lambda_pool: float, lambda_late: float, lambda_lex: float = 0.0
    ) -> ResolvedSearchOptions:
        """Every None default filled from the index's; the weights are checked together."""
        candidates = self.candidates if self.candidates is not None else candidates
        filled = {
            "candidates": candidates,
            "text_candidates": (
                self.text_candidates if self.text_candidates is not None else max(self.k, DEFAULT_TEXT_CANDIDATES)
            ),
            "lambda_pool": self.lambda_pool if self.lambda_pool is not None else lambda_pool,
            "lambda_late": self.lambda_late if self.lambda_late is not None else lambda_late,
            "lambda_lex": self.lambda_lex if self.lambda_lex is not None else lambda_lex,
        }
        out = ResolvedSearchOptions(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **filled})
        check_count("candidates", out.candidates)  # the index's default too
        check_weights(out.lambda_pool, out.lambda_late)
        return out


@dataclass(frozen=True)
class ResolvedSearchOptions(SearchOptions):
    """:class:`SearchOptions` with every index default filled in (:meth:`SearchOptions.resolved`):
    what the search modes take."""

    candidates: int = 0
    text_candidates: int = 0
    lambda_pool: float = 1.0
    lambda_late: float = 1.0
    lambda_lex: float = 0.0
