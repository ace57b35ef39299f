"""Hybrid SMART: the full-text index the package keeps, and lexical evidence fused into the SMART score."""

from __future__ import annotations

import random

import pytest

from smart_retrievers import SmartIndex
from smart_retrievers.lexical import LENGTH_GATE

FILLER = (
    "cells proteins membrane signalling pathway expression tissue samples patients cohort analysis response "
    "treatment levels increased decreased observed measured regulation growth factor receptor binding activity"
).split()
RARE = "zyxoprene"


def _long_doc(rng: random.Random, n_words: int = 110, extra: str = "") -> str:
    return " ".join(rng.choice(FILLER) for _ in range(n_words)) + (f" {extra}" if extra else "")


@pytest.fixture
def long_index(tmp_path, encoder) -> SmartIndex:
    """12 abstracts of ~110 words; only ``d7`` names the rare compound (group "a"); ``d3`` in group "b" names it too."""
    rng = random.Random(0)
    texts = [_long_doc(rng) for _ in range(12)]
    texts[7] = _long_doc(rng, extra=f"{RARE} inhibits the kinase and {RARE} binds")
    texts[3] = _long_doc(rng, extra=f"a {RARE} analogue")
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder)
    index.add(texts, ids=[f"d{i}" for i in range(12)], metadatas=[{"group": "b" if i == 3 else "a"} for i in range(12)])
    return index


def test_first_write_builds_the_text_index_and_later_rows_are_found(long_index):
    assert long_index.store.text_index is not None
    assert long_index.store.text_index.num_indexed_rows == 12
    long_index.add([f"a late note on {RARE} {RARE} {RARE}"], ids=["late"])  # not in the index yet
    assert long_index.store.text_index.num_unindexed_rows == 1
    assert long_index.search(RARE, k=1, mode="text")[0].id == "late"
    report = long_index.optimize()
    assert (report.text_indexed_rows, report.text_unindexed_rows) == (13, 0)
    assert long_index.search(RARE, k=1, mode="text")[0].id == "late"


def test_optimize_builds_a_missing_text_index_unless_told_not_to(tmp_path, encoder):
    db = str(tmp_path / "db")
    index = SmartIndex(db, encoder=encoder, text_index=None)
    index.add(["one text", "another text"], ids=["a", "b"])
    assert index.store.text_index is None
    assert not index.optimize().text_index_built and index.store.text_index is None
    index = SmartIndex(db, encoder=encoder)  # e.g. a table written before the package kept one
    report = index.optimize()
    assert report.text_index_built and report.text_indexed_rows == 2
    assert index.store.text_index is not None


def test_hybrid_adds_lexical_evidence_and_the_parts_add_up(long_index):
    query = f"{RARE} kinase inhibitor"
    hybrid = long_index.search(query, k=4, candidates=2)  # the default mode; max(k, candidates) pooled rows
    assert hybrid[0].id == "d7" and hybrid[0].lex_score > 0.5
    few = long_index.search(query, k=2, candidates=2, text_candidates=2)
    pooled = {h.id for h in long_index.search(query, k=2, candidates=2, mode="rerank")}
    text = {h.id for h in long_index.search(query, k=2, mode="text")}
    assert text == {"d7", "d3"}
    assert {h.id for h in few} <= pooled | text and "d7" in {h.id for h in few}
    for hit in hybrid:
        assert hit.score == pytest.approx(hit.pooled_score + hit.late_score + 0.5 * hit.lex_score, abs=1e-5)
        assert 0.0 <= hit.relevance <= 1.0
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)


def test_lambda_lex_zero_is_rerank_exactly(long_index):
    query = f"{RARE} kinase inhibitor"
    zero = long_index.search(query, k=6, mode="hybrid", lambda_lex=0.0)
    rerank = long_index.search(query, k=6, mode="rerank")
    assert [(h.id, h.score, h.lex_score) for h in zero] == [(h.id, h.score, 0.0) for h in rerank]


def test_filters_hold_for_the_text_candidates(long_index):
    query = f"{RARE} kinase"
    for mode in ("hybrid", "text"):
        hits = long_index.search(query, k=12, mode=mode, where={"group": "b"})
        assert [h.id for h in hits] == ["d3"], mode
    assert long_index.search(query, k=3, mode="text", where={"group": "nobody"}) == []


def test_short_texts_get_no_lexical_term(tmp_path, encoder):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder)
    texts = ["a dog runs on grass", "a man rides a red bike", "two kids play in the snow", "a dog swims"]
    index.add(texts, ids=["a", "b", "c", "d"])
    assert sum(len(t.split()) for t in texts) / len(texts) < LENGTH_GATE[0]
    hybrid = index.search("dog on the grass", k=4)
    rerank = index.search("dog on the grass", k=4, mode="rerank")
    assert [(h.id, h.score) for h in hybrid] == [(h.id, h.score) for h in rerank]
    assert all(h.lex_score == 0.0 for h in hybrid)


def test_without_a_text_index_hybrid_ranks_as_rerank_and_text_mode_says_how_to_build_it(tmp_path, encoder, caplog):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, text_index=None)
    rng = random.Random(1)
    index.add([_long_doc(rng) for _ in range(3)], ids=["a", "b", "c"])
    with caplog.at_level("WARNING"):
        hybrid = index.search("kinase receptor", k=3, mode="hybrid")
    assert "optimize()" in caplog.text
    assert [h.id for h in hybrid] == [h.id for h in index.search("kinase receptor", k=3, mode="rerank")]
    with pytest.raises(ValueError, match="optimize"):
        index.search("kinase", mode="text")


def test_image_or_vector_queries_have_no_words_for_text_mode(long_index):
    query = long_index.encoder.encode_queries(["kinase"], show_progress=False)[0]
    assert [h.id for h in long_index.search_encoded(query, k=3)] == [
        h.id for h in long_index.search_encoded(query, k=3, mode="rerank")
    ]
    with pytest.raises(ValueError, match="query text"):
        long_index.search_encoded(query, k=3, mode="text")


def test_bad_lambda_lex_is_refused(long_index):
    for bad in (-0.1, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="lambda_lex"):
            long_index.search("kinase", lambda_lex=bad)


def test_evidence_lists_the_matched_words_and_their_bm25_adds_up_to_the_hit(long_index):
    query = f"{RARE} {RARE} kinase inhibitor"
    hit = long_index.search(query, k=1)[0]
    assert hit.id == "d7" and hit.lex_score > 0
    evidence = long_index.explain(query, hit)
    words = {t.term: t for t in evidence.terms}
    assert set(words) == {RARE, "kinase"}  # "inhibitor" is not in d7 ("inhibits" stems elsewhere)
    assert words[RARE].count == 2 and words["kinase"].count == 1
    bm25_alone = long_index.search(query, k=12, mode="text")
    assert sum(t.bm25 for t in evidence.terms) == pytest.approx(next(h.score for h in bm25_alone if h.id == "d7"))
    assert evidence.lex == hit.lex_score and evidence.lambda_lex == 0.5
    assert sum(t.contribution for t in evidence.terms) == pytest.approx(0.5 * hit.lex_score, rel=1e-6)
    assert evidence.score == pytest.approx(
        evidence.lambda_pool * evidence.pooled + evidence.lambda_late * evidence.late + 0.5 * evidence.lex, abs=1e-6
    )
    assert "kinase" in evidence.render(color=False) and "lex" in evidence.to_html()
    by_id = long_index.explain(query, "d7")  # a row id: what an unfiltered hybrid search gives it
    assert by_id.lex == pytest.approx(hit.lex_score, rel=1e-5)
    assert long_index.explain(query, hit, lambda_lex=0.0).terms == []


def test_evidence_of_a_rerank_hit_has_no_lexical_part_in_its_score(long_index):
    query = f"{RARE} kinase"
    hit = long_index.search(query, k=1, mode="rerank")[0]
    evidence = long_index.explain(query, hit)
    assert hit.lex_score == 0.0 and evidence.lex == 0.0
    assert all(t.contribution == 0.0 for t in evidence.terms) and evidence.terms  # matched, but weighed 0


def test_the_rerank_scorer_adds_bm25_among_its_candidates_when_asked(encoder):
    from smart_retrievers.rerank import SmartScorer

    rng = random.Random(1)
    texts = [_long_doc(rng) for _ in range(6)]
    texts[4] = _long_doc(rng, extra=f"{RARE} binds the kinase")
    query = f"{RARE} kinase"
    plain = SmartScorer(encoder).score(query, texts)
    hybrid = SmartScorer(encoder, lambda_lex=0.5).score(query, texts)
    assert all(c.lex_score == 0.0 for c in plain)
    assert hybrid[0].position == 4 and hybrid[0].lex_score > 0.5
    by_position = {c.position: c for c in plain}
    for c in hybrid:
        assert c.score == pytest.approx(by_position[c.position].score + 0.5 * c.lex_score, abs=1e-6)
        assert 0.0 <= c.relevance <= 1.0
    assert [c.score for c in hybrid] == sorted((c.score for c in hybrid), reverse=True)
    short = SmartScorer(encoder, lambda_lex=0.5).score(query, [f"a {RARE}", "a kinase", "a cat"])
    assert all(c.lex_score == 0.0 for c in short)  # short candidates: the length gate keeps BM25 out
    with pytest.raises(ValueError, match="lambda_lex"):
        SmartScorer(encoder, lambda_lex=-1.0)
