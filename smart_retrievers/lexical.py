"""Lexical evidence for hybrid SMART: BM25 put on a per-query scale, and how much of it a query gets.

A hybrid search scores ``λ_pool·pooled + λ_late·late + λ_lex·w·lex`` where

* ``lex = bm25 / max_q(bm25)``: a candidate's BM25 over the query's best BM25 (LanceDB's
  native full-text index), in [0, 1]; 0 for candidates the full-text search did not return;
* ``w = length_gate · specificity_gate`` in [0, 1], the query's trust in lexical evidence:

  - ``length_gate``: 0 when the pooled candidates average at most :data:`LENGTH_GATE` [0]
    words, 1 from :data:`LENGTH_GATE` [1] words, linear between. On short texts (captions,
    titles, entity abstracts) token-level late interaction already sees every word, and BM25's
    matches on common words mislead: measured here on flickr8k captions (12 words), every fixed
    weight lost nDCG; on SciFact abstracts (200 words) BM25 adds 0.04.
  - ``specificity_gate``: how specific the query's best lexical match is, the best BM25 per
    query term in units of the largest possible IDF, ``max_q(bm25) / (terms · ln(1 + rows))``:
    0 below :data:`SPECIFICITY_GATE` [0], 1 above [1]. A top score made of rare terms (high
    IDF) is evidence; one made of words most rows share is not.

Both gates and the default weight were chosen on SciFact and flickr8k-captions and checked on
queries built to mislead lexical search (benchmarks/hybrid_fusion.py, BENCHMARKS.md "Hybrid").
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

__all__ = [
    "DEFAULT_LAMBDA_LEX",
    "LENGTH_GATE",
    "SPECIFICITY_GATE",
    "STOP_WORDS",
    "length_trust",
    "lexical_scores",
    "lexical_weight",
    "mean_words",
    "normalised_bm25",
    "query_terms",
    "query_words",
    "rrf",
]

DEFAULT_LAMBDA_LEX = 0.5
"""λ_lex, the weight of the normalised BM25 term at full trust (SciFact: 0.3 → 0.7317, 0.5 → 0.7406)."""
LENGTH_GATE = (24.0, 96.0)
"""Mean words of the pooled candidates at which lexical trust starts and reaches 1."""
SPECIFICITY_GATE = (0.15, 0.35)
"""Best BM25 per query term, over ``ln(1 + rows)``, at which lexical trust starts and reaches 1."""

STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves""".split()
)
"""English stop words (the classic list); LanceDB's full-text index drops them too, and a query's
term count leaves them out. Written here because LanceDB does not expose its tokenizer."""

_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(text: str) -> list[str]:
    """The lower-cased words of ``text``, in order, stop words included (the full-text index drops its own)."""
    return _WORD.findall(text.lower())


def query_terms(text: str) -> list[str]:
    """The lower-cased words of ``text`` that can match in the full-text index (stop words dropped)."""
    return [w for w in query_words(text) if w not in STOP_WORDS]


def _ramp(value: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return min(1.0, max(0.0, (value - low) / (high - low)))


def length_trust(mean_words: float) -> float:
    """The length gate alone, in [0, 1]: 0 means no lexical term whatever the query's matches."""
    return _ramp(mean_words, LENGTH_GATE)


def lexical_weight(*, mean_words: float, best_bm25: float, n_terms: int, n_rows: int) -> float:
    """The query's trust in lexical evidence, in [0, 1] (``w`` in the module docstring).

    Args:
        mean_words: mean word count of the pooled candidates' texts.
        best_bm25: the query's best BM25 score (0: nothing matched).
        n_terms: the query's terms (:func:`query_terms`).
        n_rows: rows in the table (for the largest possible IDF, ``ln(1 + rows)``).
    """
    length = length_trust(mean_words)
    if length == 0.0 or best_bm25 <= 0.0 or n_terms == 0:
        return 0.0
    specificity = best_bm25 / (n_terms * math.log1p(max(n_rows, 1)))
    return length * _ramp(specificity, SPECIFICITY_GATE)


def normalised_bm25(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """BM25 scores over the query's best (``lex`` in the module docstring): [0, 1], all 0 when none matched."""
    scores = np.asarray(scores, dtype=np.float32)
    best = float(scores.max()) if scores.size else 0.0
    return scores / best if best > 0 else np.zeros_like(scores)


def mean_words(texts: Sequence[str]) -> float:
    """Mean whitespace-separated words of ``texts`` (0 for none): the length the length gate reads."""
    return float(np.mean([len(t.split()) for t in texts])) if len(texts) else 0.0


def lexical_scores(
    bm25: Sequence[float] | np.ndarray, *, best_bm25: float, words: float, text: str, n_rows: int
) -> tuple[np.ndarray, float]:
    """The candidates' lexical term ``w · bm25 / best_bm25`` and the query's trust ``w``.

    Args:
        bm25: each candidate's BM25 (0 where the full-text search did not return it).
        best_bm25: the query's best BM25 over the full-text results (not only these candidates).
        words: :func:`mean_words` of the pooled candidates.
        text: the query text.
        n_rows: rows in the table.
    """
    trust = lexical_weight(mean_words=words, best_bm25=best_bm25, n_terms=len(query_terms(text)), n_rows=n_rows)
    bm25 = np.asarray(bm25, dtype=np.float64)
    if trust == 0.0 or best_bm25 <= 0:
        return np.zeros_like(bm25), 0.0
    return trust * bm25 / best_bm25, trust


def rrf(*rankings: Sequence[str], k: int = 60) -> list[str]:
    """Reciprocal-rank fusion of ranked id lists (``Σ 1 / (k + rank)``, rank from 1): LanceDB's default hybrid."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused, key=lambda item: -fused[item])
