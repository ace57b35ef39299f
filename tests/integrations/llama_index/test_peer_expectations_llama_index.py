"""What LlamaIndex users' code expects of a vector store (issue 24), as the peers' own tests check it:
an empty id scope matches nothing, unknown query kwargs raise, a filter-only query, stored embeddings,
MMR arguments, and one [0, 1] score scale for every class. Real bundled model, LanceDB in tmp dirs."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core", reason="the [llama-index] extra is not installed")

from llama_index.core.postprocessor import SimilarityPostprocessor  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from smart_retrievers import SmartIndex  # noqa: E402
from smart_retrievers.llama_index import SmartRerank, SmartRetriever, SmartVectorStore  # noqa: E402
from smart_retrievers.scoring import relevance  # noqa: E402

TEXTS = {
    "k7": "Code K7 labels the red star.",
    "p2": "Code P2 labels the blue circle.",
    "k9": "Code K9 labelled the red star.",
    "m4": "Code M4 labels the yellow triangle.",
}
QUERY = "which code labels the red star?"


@pytest.fixture
def store(tmp_path, encoder) -> SmartVectorStore:
    store = SmartVectorStore(uri=str(tmp_path / "db"), encoder=encoder, compression="none")
    store.add([TextNode(id_=i, text=t, metadata={"id": f"meta-{i}", "n": n}) for n, (i, t) in enumerate(TEXTS.items())])
    return store


def _query(**fields) -> VectorStoreQuery:
    return VectorStoreQuery(query_str=fields.pop("query_str", QUERY), similarity_top_k=fields.pop("k", 4), **fields)


def test_an_empty_doc_ids_or_node_ids_scope_matches_nothing(store):
    assert store.query(_query(doc_ids=[])).ids == []
    assert store.query(_query(node_ids=["k9"])).ids == ["k9"]
    # VectorStoreIndex.as_retriever passes node_ids=[] for a store that keeps the text: no constraint there
    assert len(store.query(_query(node_ids=[])).ids) == 4
    assert store.get_nodes(node_ids=[]) == []
    retriever = SmartRetriever(store.smart_index, similarity_top_k=4, doc_ids=[])
    assert retriever.retrieve(QUERY) == []
    assert SmartRetriever(store.smart_index, similarity_top_k=4, node_ids=[]).retrieve(QUERY) == []


def test_a_metadata_field_named_id_is_filtered_as_metadata(store):
    filters = MetadataFilters(filters=[MetadataFilter(key="id", value="meta-p2")])
    assert store.query(_query(filters=filters)).ids == ["p2"]
    assert [n.node_id for n in store.get_nodes(filters=filters)] == ["p2"]


def test_unknown_query_kwargs_raise(store):
    with pytest.raises(TypeError, match="'colour'"):
        store.query(_query(), colour="red")
    assert store.query(_query(k=2), query_type="vector").ids == store.query(_query(k=2)).ids
    with pytest.raises(ValueError, match="query_type"):
        store.query(_query(), query_type="sparse")


def test_query_type_fts_and_hybrid_use_the_index_modes(store):
    index = store.smart_index
    index.optimize()
    assert store.query(_query(k=2), query_type="fts").ids == [h.id for h in index.search(QUERY, k=2, mode="text")]
    assert store.query(_query(k=2), query_type="hybrid").ids == [h.id for h in index.search(QUERY, k=2, mode="hybrid")]


LONG = (
    "cells proteins membrane signalling pathway expression tissue samples patients cohort analysis response "
    "treatment levels increased decreased observed measured regulation growth factor receptor binding activity "
).split()


@pytest.fixture
def long_store(tmp_path, encoder) -> SmartVectorStore:
    """Eight ~100-word abstracts (long enough for the lexical term); two name a rare compound."""
    texts = [" ".join(LONG[(i * 7 + j) % len(LONG)] for j in range(100)) for i in range(8)]
    texts[5] += " zyxoprene inhibits the kinase"
    texts[2] += " a zyxoprene analogue"
    store = SmartVectorStore(uri=str(tmp_path / "long"), encoder=encoder, compression="none")
    store.add([TextNode(id_=f"d{i}", text=t) for i, t in enumerate(texts)])
    return store


def test_hybrid_and_text_search_modes_map_onto_the_index(long_store):
    index, query = long_store.smart_index, "zyxoprene kinase inhibitor"

    def ask(mode, alpha=None):
        result = long_store.query(VectorStoreQuery(query_str=query, similarity_top_k=4, mode=mode, alpha=alpha))
        return result.ids, result.similarities

    def same(hits):
        return [h.id for h in hits], pytest.approx([h.relevance for h in hits])

    text = index.search(query, k=4, mode="text")
    assert ask(VectorStoreQueryMode.TEXT_SEARCH) == same(text) and text[0].id == "d5"
    hybrid = index.search(query, k=4, mode="hybrid")
    assert hybrid[0].lex_score > 0  # the lexical term is on: the mapping below is tested, not gated away
    assert ask(VectorStoreQueryMode.HYBRID) == same(hybrid)
    assert ask(VectorStoreQueryMode.HYBRID, alpha=0.8) == same(hybrid)  # λ_lex 0.5 at λ_pool = λ_late = 1
    assert ask(VectorStoreQueryMode.HYBRID, alpha=0.5) == same(index.search(query, k=4, mode="hybrid", lambda_lex=2.0))
    assert ask(VectorStoreQueryMode.HYBRID, alpha=1.0) == same(index.search(query, k=4, mode="rerank"))
    assert ask(VectorStoreQueryMode.HYBRID, alpha=0.0) == same(text)
    with pytest.raises(ValueError, match="alpha"):
        ask(VectorStoreQueryMode.HYBRID, alpha=1.5)


def test_the_retriever_and_the_reranker_carry_the_lexical_part(long_store):
    query = "zyxoprene kinase inhibitor"
    retrieved = SmartRetriever(long_store.smart_index, similarity_top_k=3).retrieve(query)
    hits = long_store.smart_index.search(query, k=3)
    assert [n.node.node_id for n in retrieved] == [h.id for h in hits]
    assert [n.lex_score for n in retrieved] == pytest.approx([h.lex_score for h in hits]) and hits[0].lex_score > 0
    nodes = [NodeWithScore(node=n, score=0.0) for n in long_store.get_nodes()]
    plain = SmartRerank(top_n=8, encoder=long_store.smart_index.encoder).postprocess_nodes(nodes, query_str=query)
    lexical = SmartRerank(top_n=8, encoder=long_store.smart_index.encoder, lambda_lex=0.5).postprocess_nodes(
        nodes, query_str=query
    )
    assert all(n.lex_score is None for n in plain)
    assert lexical[0].node.node_id == "d5" and lexical[0].lex_score > 0
    smart = {n.node.node_id: n.smart_score for n in plain}
    for n in lexical:
        assert n.smart_score == pytest.approx(smart[n.node.node_id] + 0.5 * n.lex_score, abs=1e-6)


def test_a_filter_only_query_returns_the_matching_rows(store):
    filters = MetadataFilters(filters=[MetadataFilter(key="n", value=1, operator=">=")])
    result = store.query(VectorStoreQuery(similarity_top_k=2, filters=filters))
    assert result.ids == ["p2", "k9"]  # table order, cut to k
    assert result.similarities == [0.0, 0.0]
    assert result.ids == store.query(VectorStoreQuery(similarity_top_k=2, filters=filters)).ids
    # an embedding alone carries no token states: refused, not answered from the filter
    with pytest.raises(ValueError, match="query_str"):
        store.query(VectorStoreQuery(query_embedding=[0.1] * 384, similarity_top_k=2, filters=filters))


def test_get_nodes_returns_the_stored_embedding(store):
    (node,) = store.get_nodes(node_ids=["k7"])
    embedded = node.get_content(metadata_mode=MetadataMode.EMBED)  # what the store encoded
    expected = store.smart_index.encoder.encode_documents([embedded], show_progress=False)[0].pooled
    assert node.embedding == pytest.approx(expected.tolist(), abs=1e-6)


def test_mmr_arguments_of_query_win_and_conflicts_raise(store, monkeypatch):
    seen = {}
    original = store.smart_index.max_marginal_relevance

    def spy(query, k, **kwargs):
        seen.update(kwargs)
        return original(query, k, **kwargs)

    monkeypatch.setattr(store.smart_index, "max_marginal_relevance", spy)
    store.query(_query(k=2, mode=VectorStoreQueryMode.MMR, mmr_threshold=0.9), mmr_threshold=0.2)
    assert seen["lambda_mult"] == 0.2
    store.query(_query(k=2, mode=VectorStoreQueryMode.MMR), mmr_prefetch_factor=1.5)
    assert seen["fetch_k"] == 3
    with pytest.raises(ValueError, match="cannot coexist"):
        store.query(_query(mode=VectorStoreQueryMode.MMR), mmr_prefetch_k=3, mmr_prefetch_factor=2.0)


def test_every_llama_index_score_is_the_relevance(store):
    index: SmartIndex = store.smart_index
    hits = index.search(QUERY, k=4)
    expected = {h.id: h.relevance for h in hits}
    assert all(0.0 <= r <= 1.0 for r in expected.values())
    from_store = dict(zip(*(lambda r: (r.ids, r.similarities))(store.query(_query()))))
    retrieved = SmartRetriever(index, similarity_top_k=4).retrieve(QUERY)
    assert from_store == pytest.approx(expected, abs=1e-6)
    assert {n.node.node_id: n.score for n in retrieved} == pytest.approx(expected, abs=1e-6)
    raw = {h.id: h.score for h in hits}
    assert {n.node.node_id: n.smart_score for n in retrieved} == pytest.approx(raw, abs=1e-6)
    reranked = SmartRerank(top_n=4, index=index)._postprocess_nodes(
        [NodeWithScore(node=n.node, score=0.0) for n in retrieved], QueryBundle(QUERY)
    )
    assert all(n.score == pytest.approx(relevance(n.smart_score), abs=1e-6) for n in reranked)
    assert all(0.0 <= n.score <= 1.0 and n.smart_score > 1.0 for n in reranked[:1])
    # one threshold keeps the same nodes whichever class scored them
    cutoff = SimilarityPostprocessor(similarity_cutoff=sorted(expected.values())[1])
    assert {n.node.node_id for n in cutoff.postprocess_nodes(retrieved)} == {
        n.node.node_id for n in cutoff.postprocess_nodes(reranked)
    }
