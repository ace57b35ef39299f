"""Evidence on a coded table: computed through the stored codes that ranked the hit, mapped to pooled spans."""

from __future__ import annotations

import numpy as np
import pytest

from smart_retrievers import SmartIndex
from smart_retrievers.codec import pool_documents
from smart_retrievers.explain.coded import code_spans

TEXTS = [
    "The zebra ran across the plain. A second zebra followed the herd towards the river at dusk.",
    "Kinase K7 phosphorylates receptor 9 in hepatocytes, and the complex binds the red star.",
    "Code P2 labels the blue circle; code Q5 labels the green square on the same report.",
]


def _coded_index(encoder, folder, compression: str | None = None) -> SmartIndex:
    ix = SmartIndex(str(folder), encoder=encoder, **({"compression": compression} if compression else {}))
    ix.add(TEXTS, ids=["zebra", "kinase", "codes"])
    assert ix.codec is not None and ix.codec.knots is not None
    return ix


@pytest.fixture(scope="module")
def coded(encoder, tmp_path_factory):
    """A table whose codec pools tokens (each stored code covers a run of original tokens)."""
    ix = _coded_index(encoder, tmp_path_factory.mktemp("coded"), "pool2-pca256-sign")
    assert ix.codec.pool > 1
    return ix


@pytest.fixture(scope="module")
def coded_default(encoder, tmp_path_factory):
    """A table with the default codec (every token kept)."""
    return _coded_index(encoder, tmp_path_factory.mktemp("coded_default"))


@pytest.mark.parametrize("table", ["coded_default", "coded"])
@pytest.mark.parametrize("query", ["where did the zebra run?", "which kinase binds receptor 9?", "P2 blue circle"])
def test_coded_evidence_adds_up_to_the_hit(request, table, query):
    coded = request.getfixturevalue(table)
    for hit in coded.search(query, k=3, mode="rerank"):
        ev = coded.explain(query, hit, lambda_lex=0)
        assert ev.pooled == pytest.approx(hit.pooled_score, abs=1e-5)
        assert ev.late == pytest.approx(hit.late_score, abs=1e-4)
        assert ev.score == pytest.approx(hit.score, abs=1e-4)
        # the matches are the coded late score's own terms: their mean is the late score
        assert np.mean([m.similarity for m in ev.matches]) == pytest.approx(ev.late, abs=1e-4)
        assert sum(m.share for m in ev.matches) == pytest.approx(1.0)


def test_each_code_shows_the_span_of_the_tokens_pooled_into_it(coded, encoder):
    text = TEXTS[0]
    ev = coded.explain("where did the zebra run?", "zebra", lambda_lex=0)
    spans, _ = encoder.token_spans(text, query=False)
    tokens = encoder.encode_documents([text])[0].tokens
    runs = pool_documents([tokens], coded.codec.pool).runs(0, len(tokens))
    covers = {(spans[a][0], spans[b - 1][1]) for a, b in runs}
    assert len(runs) < len(tokens)  # pooled: some codes cover several tokens
    for m in ev.matches:
        assert (m.start, m.end) in covers and ev.text[m.start : m.end] == m.doc_token
    zebra = next(m for m in ev.matches if m.query_token == "zebra")
    assert "zebra" in zebra.doc_token


def test_codes_that_do_not_line_up_map_to_their_nearest_token(coded, encoder):
    """A row pooled otherwise (an older table's pooling): each code gets its most similar token's span."""
    text = TEXTS[1]
    tokens = np.asarray(encoder.encode_documents([text])[0].tokens, dtype=np.float32)
    spans, _ = encoder.token_spans(text, query=False)
    every_token = coded.codec.encode(tokens)  # one code per token: not the pooled count
    mapped = code_spans(coded.codec, tokens, spans, every_token)
    assert len(mapped) == len(tokens)
    assert np.mean([m == s for m, s in zip(mapped, spans)]) > 0.8


def test_float16_tables_keep_the_float_evidence(encoder, tmp_path):
    plain = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none")
    plain.add(TEXTS, ids=["zebra", "kinase", "codes"])
    hit = plain.search("which kinase binds receptor 9?", k=1, mode="rerank")[0]
    ev = plain.explain("which kinase binds receptor 9?", hit, lambda_lex=0)
    assert ev.late == pytest.approx(hit.late_score, abs=1e-4)
    assert all(m.end - m.start <= len("phosphorylates") for m in ev.matches)  # single tokens
