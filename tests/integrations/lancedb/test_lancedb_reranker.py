"""SmartLanceReranker: SMART as the rerank step of a user's own LanceDB vector, FTS and hybrid queries.

A plain LanceDB table built in the test from the bundled model's pooled vectors, and a SMART table
whose stored token states the reranker reuses.
"""

from __future__ import annotations

from pathlib import Path

import lancedb
import numpy as np
import pytest
from encoder_calls import record_document_encodings
from lancedb.rerankers import Reranker

from smart_retrievers import SmartEncoder, SmartIndex
from smart_retrievers.lancedb import SmartLanceReranker
from smart_retrievers.rerank import SmartScorer
from smart_retrievers.scoring import relevance

TEXTS = {
    "k7": "Code K7 labels the red star on the 2021 chart.",
    "p2": "Code P2 labels the blue circle on the 2023 chart.",
    "m4": "Code M4 labels the yellow triangle on the 2022 chart.",
    "faq": "A star label always sits on the lid of a crate.",
    "ink": "Shipping memo: codes are printed in black ink on the red lid.",
}
QUERY = "which code labels the red star?"


@pytest.fixture(scope="module")
def table(encoder: SmartEncoder, tmp_path_factory: pytest.TempPathFactory) -> lancedb.table.Table:
    """A plain LanceDB table (id, text, pooled vector) with a native FTS index on text."""
    encodings = encoder.encode_documents(list(TEXTS.values()))
    rows = [{"id": i, "text": t, "vector": e.pooled.tolist()} for (i, t), e in zip(TEXTS.items(), encodings)]
    tbl = lancedb.connect(str(tmp_path_factory.mktemp("plain"))).create_table("docs", rows)
    tbl.create_fts_index("text")  # native FTS
    return tbl


def expected(encoder: SmartEncoder, ids: list[str], query: str = QUERY) -> list[tuple[str, float]]:
    """(id, relevance) of these rows by SmartScorer for ``query``, best first."""
    ranked = SmartScorer(encoder).score(query, [TEXTS[i] for i in ids])
    return [(ids[c.position], relevance(c.score)) for c in ranked]


def test_is_a_lancedb_reranker(encoder: SmartEncoder) -> None:
    assert isinstance(SmartLanceReranker(encoder=encoder), Reranker)
    with pytest.raises(ValueError):
        SmartLanceReranker(encoder=encoder, return_score="best")


def test_reranks_a_vector_query(encoder: SmartEncoder, table: lancedb.table.Table) -> None:
    vector = encoder.encode_queries([QUERY])[0].pooled
    reranker = SmartLanceReranker(encoder=encoder)
    rows = table.search(vector).limit(5).rerank(reranker, query_string=QUERY).to_list()
    want = expected(encoder, list(TEXTS))
    assert [r["id"] for r in rows] == [i for i, _ in want]
    assert [r["_relevance_score"] for r in rows] == pytest.approx([s for _, s in want], abs=1e-5)
    assert rows[0]["id"] == "k7" and "_distance" not in rows[0]
    # the candidates are cached: a second query encodes nothing but the query
    assert len(reranker.scorer.cache) == 5


def test_reranks_fts_and_hybrid_queries(encoder: SmartEncoder, table: lancedb.table.Table) -> None:
    reranker = SmartLanceReranker(encoder=encoder, return_score="all")
    fts = table.search("red star", query_type="fts").limit(5).rerank(reranker).to_list()
    fts_ids = [r["id"] for r in fts]
    assert (
        fts_ids == [i for i, _ in expected(encoder, fts_ids, "red star")] and fts_ids[0] == "k7"
    )  # the FTS text is the query
    assert {"_score", "_smart_score", "_pooled_score", "_late_score"} <= set(fts[0])
    assert fts[0]["_relevance_score"] == pytest.approx(relevance(fts[0]["_smart_score"]), abs=1e-6)
    assert fts[0]["_smart_score"] == pytest.approx(fts[0]["_pooled_score"] + fts[0]["_late_score"], abs=1e-5)

    vector = encoder.encode_queries([QUERY])[0].pooled
    hybrid = (
        table.search(query_type="hybrid")
        .vector(vector)
        .text("red star")
        .limit(5)
        .rerank(SmartLanceReranker(encoder=encoder))
        .to_list()
    )
    ids = [r["id"] for r in hybrid]
    assert len(ids) == len(set(ids)) == 5  # merged without duplicates
    assert [(r["id"], r["_relevance_score"]) for r in hybrid] == [
        (i, pytest.approx(s, abs=1e-5)) for i, s in expected(encoder, ids, "red star")
    ]


def test_empty_results_and_missing_query(encoder: SmartEncoder, table: lancedb.table.Table) -> None:
    reranker = SmartLanceReranker(encoder=encoder)
    assert table.search("zebra", query_type="fts").limit(5).rerank(reranker).to_list() == []
    vector = encoder.encode_queries([QUERY])[0].pooled
    with pytest.raises(ValueError, match="query_string"):
        reranker.rerank_vector("", table.search(vector).limit(2).to_arrow())
    with pytest.raises(ValueError, match="'body'"):
        SmartLanceReranker(encoder=encoder, column="body").rerank_vector(QUERY, table.search(vector).to_arrow())


def test_smart_table_reuses_stored_token_states(
    encoder: SmartEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = SmartIndex(str(tmp_path), encoder=encoder, compression="none")
    index.add(list(TEXTS.values()), ids=list(TEXTS))
    calls = record_document_encodings(monkeypatch, encoder)
    reranker = SmartLanceReranker(index)
    vector = encoder.encode_queries([QUERY])[0].pooled
    # the user's own query on the SMART table, selecting the columns the reranker needs
    query = index.store.table.search(vector, vector_column_name="vector").select(["id", "text"]).limit(5)
    rows = query.rerank(reranker, query_string=QUERY).to_list()
    assert calls == []  # every candidate's token states came from the table
    hits = index.search(QUERY, k=5, mode="exhaustive")
    assert [r["id"] for r in rows] == [h.id for h in hits]
    assert [r["_relevance_score"] for r in rows] == pytest.approx([h.relevance for h in hits], abs=1e-5)
    np.testing.assert_allclose([r["_relevance_score"] for r in rows], [relevance(h.score) for h in hits], atol=1e-5)


# ---- the one rule for which encoder a reranker scores with ---------------------------------------


def test_scorer_create_is_the_one_encoder_rule(encoder: SmartEncoder, tmp_path: Path) -> None:
    index = SmartIndex(str(tmp_path / "smart"), encoder=encoder)
    assert SmartScorer.create(index=index).encoder is index.encoder  # the index's current encoder
    assert SmartScorer.create(model="all-MiniLM-L6-v2", index=index).encoder is index.encoder  # same fingerprint
    assert SmartScorer.create(encoder=encoder).encoder is encoder
    other = SmartIndex(str(tmp_path / "other"), encoder=SmartEncoder.default(name="another-model"))
    with pytest.raises(ValueError, match="model='all-MiniLM-L6-v2' differs from the index's encoder"):
        SmartScorer.create(model="all-MiniLM-L6-v2", index=other)
    with pytest.raises(ValueError, match="^encoder differs from the index's encoder"):
        SmartScorer.create(encoder=encoder, index=other)
    with pytest.raises(ValueError, match="not both"):
        SmartScorer.create(model="all-MiniLM-L6-v2", encoder=encoder)
    with pytest.raises(ValueError, match="device= applies only"):
        SmartScorer.create(index=index, device="cpu")
    with pytest.raises(ValueError, match="not both 0"):
        SmartScorer.create(model="no-such-org/never-loaded", lambda_pool=0.0, lambda_late=0.0)  # checked before loading


def test_takes_a_model_like_the_framework_rerankers(
    encoder: SmartEncoder, table: lancedb.table.Table, tmp_path: Path
) -> None:
    reranker = SmartLanceReranker(model="all-MiniLM-L6-v2", device="cpu")
    vector = encoder.encode_queries([QUERY])[0].pooled
    rows = table.search(vector).limit(5).rerank(reranker, query_string=QUERY).to_list()
    want = expected(encoder, [r["id"] for r in rows])
    assert [r["id"] for r in rows] == [i for i, _ in want]
    assert [r["_relevance_score"] for r in rows] == pytest.approx([score for _, score in want], abs=1e-5)
    other = SmartIndex(str(tmp_path), encoder=SmartEncoder.default(name="another-model"))
    with pytest.raises(ValueError, match="differs from the index's encoder"):
        SmartLanceReranker(other, model="all-MiniLM-L6-v2")
