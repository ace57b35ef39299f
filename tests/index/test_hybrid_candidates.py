"""Where a "hybrid" search's full-text candidates come from: how many, and when the full-text query runs."""

from __future__ import annotations

import random

import pytest

from smart_retrievers import SmartIndex
from smart_retrievers.index import search as search_module
from smart_retrievers.options import DEFAULT_TEXT_CANDIDATES, SearchOptions

WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega rho".split()


def test_text_candidates_default_to_at_least_k_and_twenty():
    resolve = {"candidates": 100, "lambda_pool": 1.0, "lambda_late": 1.0}
    assert SearchOptions(k=10).resolved(**resolve).text_candidates == DEFAULT_TEXT_CANDIDATES == 20
    assert SearchOptions(k=50).resolved(**resolve).text_candidates == 50
    assert SearchOptions(k=10, text_candidates=7).resolved(**resolve).text_candidates == 7


def _counting_text_searches(index: SmartIndex, monkeypatch) -> list[str]:
    calls: list[str] = []
    original = type(index.store).search_text

    def counted(store, text, k, **kwargs):
        calls.append(text)
        return original(store, text, k, **kwargs)

    monkeypatch.setattr(type(index.store), "search_text", counted)
    return calls


def test_a_table_of_short_texts_stops_making_full_text_queries(tmp_path, encoder, monkeypatch):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder)
    index.add(["a dog runs on grass", "a man rides a red bike", "two kids play in the snow"], ids=["a", "b", "c"])
    calls = _counting_text_searches(index, monkeypatch)
    first = index.search("dog on the grass", k=3)  # the first query speculates; its gate then closes
    again = [index.search("kids in the snow", k=3) for _ in range(3)]
    assert len(calls) == 1
    assert all(h.lex_score == 0.0 for hits in [first, *again] for h in hits)
    rerank = index.search("kids in the snow", k=3, mode="rerank")
    assert [(h.id, h.score) for h in again[-1]] == [(h.id, h.score) for h in rerank]


@pytest.fixture
def long_index(tmp_path, encoder) -> SmartIndex:
    """30 texts of 120 words; ``t5`` alone names a rare word that the pooled candidates miss when there are 2."""
    rng = random.Random(1)
    texts = [" ".join(rng.choice(WORDS) for _ in range(120)) for _ in range(30)]
    texts[5] += " quokkafruit"
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder)
    index.add(texts, ids=[f"t{i}" for i in range(30)])
    return index


def test_full_text_candidates_join_the_pooled_ones_in_one_read_each(long_index, monkeypatch):
    calls = _counting_text_searches(long_index, monkeypatch)
    taken = []
    monkeypatch.setattr(type(long_index.store), "take_rows", lambda *a, **k: taken.append(a) or pytest.fail("take"))
    query = "quokkafruit alpha"
    pooled_only = {h.id for h in long_index.search(query, k=2, mode="rerank", candidates=2)}
    for _ in range(2):  # the first search speculates; the second runs it beside the pooled search again
        hits = long_index.search(query, k=3, candidates=2)
        assert "t5" in {h.id for h in hits} and "t5" not in pooled_only
        hit = next(h for h in hits if h.id == "t5")
        assert hit.lex_score > 0
    assert len(calls) == 2 and not taken  # one full-text query per search, rows come with it


def test_the_speculative_and_the_gated_full_text_query_rank_alike(long_index):
    query = "quokkafruit gamma kappa"
    key = (str(long_index.store.uri), long_index.store.table_name)
    search_module._text_gate_open[key] = True
    speculated = long_index.search(query, k=5, candidates=3)
    search_module._text_gate_open[key] = False  # as after a short-text query: the full-text query waits for the gate
    gated = long_index.search(query, k=5, candidates=3)
    assert [(h.id, h.score, h.lex_score) for h in speculated] == [(h.id, h.score, h.lex_score) for h in gated]
    assert search_module._text_gate_open[key]  # long texts: the gate is open again
