"""What LangChain users' code expects of a vector store (issue 24), as the LanceDB, Chroma and InMemory
stores' own tests check it: delete by filter, unknown kwargs raise, a filter-only query, search by vector
with relevance scores, relevance_score_fn=, and one [0, 1] score scale. Real bundled model, LanceDB in tmp dirs."""

from __future__ import annotations

from typing import get_args

import pytest

pytest.importorskip("langchain_core", reason="the [langchain] extra (langchain-core) is not installed")

from langchain_core.documents import Document  # noqa: E402

from smart_retrievers.langchain import SmartReranker, SmartVectorStore  # noqa: E402
from smart_retrievers.options import SearchMode  # noqa: E402
from smart_retrievers.scoring import relevance  # noqa: E402

DOCS = [
    Document(id="k7", page_content="Code K7 labels the red star.", metadata={"id": 1, "topic": "star"}),
    Document(id="p2", page_content="Code P2 labels the blue circle.", metadata={"id": 2, "topic": "circle"}),
    Document(id="k9", page_content="Code K9 labelled the red star.", metadata={"id": 3, "topic": "star"}),
]
QUERY = "which code labels the red star?"


@pytest.fixture
def store(tmp_path, encoder) -> SmartVectorStore:
    store = SmartVectorStore(uri=str(tmp_path / "db"), encoder=encoder, compression="none")
    store.add_documents(DOCS)
    return store


def test_delete_by_where_and_empty_ids(store):
    assert store.delete([]) is True and store.index.count() == 3
    assert store.delete(where={"topic": "star"}) is True
    assert [d.id for d in store.get_by_ids(["k7", "p2", "k9"])] == ["p2"]
    with pytest.raises(ValueError, match="needs ids or where"):
        store.delete()
    with pytest.raises(TypeError, match="filter"):
        store.delete(filter={"topic": "circle"})


def test_a_metadata_field_named_id_is_filtered_as_metadata(store):
    assert [d.id for d in store.similarity_search(QUERY, k=3, filter={"id": 1})] == ["k7"]
    assert [d.id for d in store.similarity_search(QUERY, k=3, filter={"id": {"$in": []}})] == []


def test_unknown_search_kwargs_raise_and_query_type_is_understood(store):
    with pytest.raises(TypeError, match="colour"):
        store.similarity_search(QUERY, colour="red")
    with pytest.raises(ValueError, match="query_type"):
        store.similarity_search(QUERY, query_type="sparse")
    assert [d.id for d in store.similarity_search(QUERY, k=2, query_type="vector")] == [
        d.id for d in store.similarity_search(QUERY, k=2)
    ]


@pytest.mark.skipif("text" not in get_args(SearchMode), reason="hybrid mode lands with issue 23")
def test_query_type_fts_and_hybrid_use_the_index_modes(store):
    store.index.optimize()
    for query_type, mode in (("fts", "text"), ("hybrid", "hybrid")):
        expected = [h.id for h in store.index.search(QUERY, k=2, mode=mode)]
        assert [d.id for d in store.similarity_search(QUERY, k=2, query_type=query_type)] == expected


def test_an_empty_query_returns_the_rows_matching_the_filter(store):
    pairs = store.similarity_search_with_score("", k=5, filter={"topic": "star"})
    assert [(d.id, s) for d, s in pairs] == [("k7", 0.0), ("k9", 0.0)]
    assert [d.id for d in store.similarity_search("", k=1)] == ["k7"]


def test_search_by_vector_with_relevance_scores(store):
    vector = store.embeddings.embed_query(DOCS[0].page_content)
    pairs = store.similarity_search_by_vector_with_relevance_scores(vector, k=2)
    assert pairs[0][0].id == "k7" and pairs[0][1] == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= s <= 1.0 for _, s in pairs)


def test_relevance_score_fn_is_accepted_and_used(tmp_path, encoder):
    store = SmartVectorStore(
        uri=str(tmp_path / "db"), encoder=encoder, compression="none", relevance_score_fn=lambda s: 1.0 - s
    )
    store.add_documents(DOCS)
    plain = dict((d.id, s) for d, s in store.similarity_search_with_score(QUERY, k=3))
    mapped = dict((d.id, s) for d, s in store.similarity_search_with_relevance_scores(QUERY, k=3))
    assert mapped == pytest.approx({i: 1.0 - s for i, s in plain.items()}, abs=1e-6)


def test_every_langchain_score_is_the_relevance(store):
    hits = store.index.search(QUERY, k=3)
    expected = {h.id: h.relevance for h in hits}
    with_score = {d.id: s for d, s in store.similarity_search_with_score(QUERY, k=3)}
    with_relevance = {d.id: s for d, s in store.similarity_search_with_relevance_scores(QUERY, k=3)}
    assert with_score == pytest.approx(expected, abs=1e-6) and with_relevance == pytest.approx(expected, abs=1e-6)
    reranked = SmartReranker(top_n=3, index=store.index).compress_documents(DOCS, QUERY)
    for doc in reranked:
        meta = doc.metadata
        assert 0.0 <= meta["relevance_score"] <= 1.0
        assert meta["relevance_score"] == pytest.approx(relevance(meta["smart_score"]), abs=1e-6)
    assert reranked[0].metadata["smart_score"] > 1.0
