"""The lexical-trust rule of hybrid SMART (smart_retrievers.lexical), on values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smart_retrievers.lexical import (
    LENGTH_GATE,
    SPECIFICITY_GATE,
    lexical_scores,
    lexical_weight,
    mean_words,
    normalised_bm25,
    query_terms,
    rrf,
)


def test_query_terms_drop_stop_words_and_case():
    assert query_terms("What binds THE red star, and why?") == ["binds", "red", "star"]
    assert query_terms("the of and") == []


def test_length_gate_ramps_between_its_bounds():
    full = {"best_bm25": 100.0, "n_terms": 1, "n_rows": 10}  # specificity far above its gate
    assert lexical_weight(mean_words=LENGTH_GATE[0], **full) == 0.0
    assert lexical_weight(mean_words=LENGTH_GATE[1], **full) == 1.0
    middle = (LENGTH_GATE[0] + LENGTH_GATE[1]) / 2
    assert lexical_weight(mean_words=middle, **full) == pytest.approx(0.5)


def test_specificity_gate_reads_bm25_per_term_in_idf_units():
    n_rows, n_terms = 999, 4
    unit = n_terms * math.log1p(n_rows)
    low, high = SPECIFICITY_GATE
    for specificity, expected in ((low, 0.0), (high, 1.0), ((low + high) / 2, 0.5), (low / 2, 0.0)):
        got = lexical_weight(mean_words=500, best_bm25=specificity * unit, n_terms=n_terms, n_rows=n_rows)
        assert got == pytest.approx(expected)
    assert lexical_weight(mean_words=500, best_bm25=0.0, n_terms=4, n_rows=10) == 0.0
    assert lexical_weight(mean_words=500, best_bm25=5.0, n_terms=0, n_rows=10) == 0.0


def test_lexical_scores_are_trust_times_bm25_over_the_best():
    lex, trust = lexical_scores([4.0, 2.0, 0.0], best_bm25=8.0, words=500, text="rare words here", n_rows=2)
    assert trust == 1.0
    np.testing.assert_allclose(lex, [0.5, 0.25, 0.0])
    lex, trust = lexical_scores([4.0], best_bm25=8.0, words=3, text="rare words", n_rows=2)
    assert trust == 0.0 and lex.tolist() == [0.0]


def test_normalised_bm25_and_mean_words():
    np.testing.assert_allclose(normalised_bm25([2.0, 1.0, 0.0]), [1.0, 0.5, 0.0])
    assert normalised_bm25([0.0, 0.0]).tolist() == [0.0, 0.0]
    assert mean_words(["a b c", "d"]) == 2.0 and mean_words([]) == 0.0


def test_rrf_is_lancedbs_reciprocal_rank_fusion():
    # a: 1/61 + 1/62, b: 1/62 + 1/61, c: 1/63 -> a and b tie (first seen first), c last
    assert rrf(["a", "b", "c"], ["b", "a"]) == ["a", "b", "c"]
    assert rrf(["x"], ["y", "x"])[0] == "x"
