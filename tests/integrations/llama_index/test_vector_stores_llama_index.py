"""LlamaIndex SmartVectorStore and SmartEmbedding, through LlamaIndex's own storage flows.

StorageContext + VectorStoreIndex.from_documents, VectorStoreIndex.from_vector_store in a new
process, IngestionPipeline(vector_store=...); real bundled all-MiniLM-L6-v2 and LanceDB in tmp dirs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_index.core", reason="the [llama-index] extra (llama-index-core) is not installed")

from encoder_calls import record_document_encodings  # noqa: E402
from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler  # noqa: E402
from llama_index.core.ingestion import IngestionPipeline  # noqa: E402
from llama_index.core.node_parser import SentenceSplitter  # noqa: E402
from llama_index.core.postprocessor import SimilarityPostprocessor  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from smart_retrievers import SmartEncoder, SmartIndex  # noqa: E402
from smart_retrievers.llama_index import SmartEmbedding, SmartVectorIndex, SmartVectorStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "llama_index_vector_store.py"
QUERY = "which code labels the red star?"

DOCUMENTS = [
    Document(id_="k7", text="Code K7 labels the red star on the 2021 chart.", metadata={"year": 2021, "kind": "chart"}),
    Document(
        id_="k7-dup", text="Code K7 labels the red star on the 2021 chart!", metadata={"year": 2021, "kind": "chart"}
    ),
    Document(
        id_="p2", text="Code P2 labels the blue circle on the 2023 chart.", metadata={"year": 2023, "kind": "chart"}
    ),
    Document(id_="faq", text="A star label always sits on the lid of a crate.", metadata={"year": 2020, "kind": "faq"}),
    Document(
        id_="memo", text="Shipping memo: codes are printed in black ink.", metadata={"year": 2024, "kind": "memo"}
    ),
]


def _node(node_id: str, text: str, **metadata: object) -> TextNode:
    return TextNode(
        id_=node_id,
        text=text,
        metadata=metadata,
        excluded_llm_metadata_keys=["kind"],
        relationships={
            NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc-{node_id}", metadata={"page": 3}),
            NodeRelationship.NEXT: RelatedNodeInfo(node_id="other"),
        },
    )


NODES = [
    _node("n-k7", "Code K7 labels the red star.", year=2021, kind="chart"),
    _node("n-p2", "Code P2 labels the blue circle.", year=2023, kind="chart"),
    _node("n-memo", "Shipping memo: codes are printed in black ink.", year=2024, kind="memo"),
]


@pytest.fixture(scope="module")
def flow(
    encoder: SmartEncoder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, SmartVectorStore, VectorStoreIndex]:
    """DOCUMENTS indexed through StorageContext + VectorStoreIndex.from_documents (float16 states: exact scores)."""
    uri = str(tmp_path_factory.mktemp("li_store"))
    store = SmartVectorStore(uri=uri, encoder=encoder, compression="none")
    index = VectorStoreIndex.from_documents(
        DOCUMENTS,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=store.embed_model(),
    )
    return uri, store, index


@pytest.fixture
def node_store(encoder: SmartEncoder, tmp_path: Path) -> SmartVectorStore:
    store = SmartVectorStore(uri=str(tmp_path), encoder=encoder, compression="none")
    store.add(NODES)
    return store


# ---- the LlamaIndex flows -----------------------------------------------------------------


def test_storage_context_flow_scores_with_smart(flow: tuple[str, SmartVectorStore, VectorStoreIndex]) -> None:
    _, store, index = flow
    assert store.smart_index.count() == len(DOCUMENTS)
    results = index.as_retriever(similarity_top_k=3).retrieve(QUERY)
    hits = store.smart_index.search(QUERY, k=3)
    assert [r.node.node_id for r in results] == [h.id for h in hits]
    assert {results[0].node.ref_doc_id, results[1].node.ref_doc_id} == {"k7", "k7-dup"}
    assert [r.score for r in results] == pytest.approx([h.relevance for h in hits], abs=1e-6)
    assert all(0.0 <= r.score <= 1.0 for r in results)
    assert results[0].node.metadata == {"year": 2021, "kind": "chart"}
    # the relevance scores threshold with LlamaIndex's own postprocessor
    cutoff = (results[1].score + results[2].score) / 2
    kept = SimilarityPostprocessor(similarity_cutoff=cutoff).postprocess_nodes(results)
    assert [n.node.node_id for n in kept] == [r.node.node_id for r in results[:2]]
    # filters, doc_id keys and the retriever's doc_ids
    filters = MetadataFilters(filters=[MetadataFilter(key="year", value=2022, operator=FilterOperator.GT)])
    assert {r.node.ref_doc_id for r in index.as_retriever(similarity_top_k=5, filters=filters).retrieve(QUERY)} == {
        "p2",
        "memo",
    }
    for key in ("doc_id", "ref_doc_id", "document_id"):
        only = MetadataFilters(filters=[MetadataFilter(key=key, value="faq")])
        assert [r.node.ref_doc_id for r in index.as_retriever(filters=only).retrieve(QUERY)] == ["faq"]
    assert [r.node.ref_doc_id for r in index.as_retriever(doc_ids=["memo"]).retrieve(QUERY)] == ["memo"]


def test_mmr_through_the_retriever(flow: tuple[str, SmartVectorStore, VectorStoreIndex]) -> None:
    _, store, index = flow
    diverse = index.as_retriever(
        similarity_top_k=2, vector_store_query_mode="mmr", vector_store_kwargs={"mmr_threshold": 0.1}
    ).retrieve(QUERY)
    ref_ids = [n.node.ref_doc_id for n in diverse]
    assert len(ref_ids) == 2 and len({"k7", "k7-dup"} & set(ref_ids)) == 1  # the near-duplicate is dropped
    plain = index.as_retriever(
        similarity_top_k=2, vector_store_query_mode="mmr", vector_store_kwargs={"mmr_threshold": 1.0}
    ).retrieve(QUERY)
    pooled = store.smart_index.search(QUERY, k=2, mode="pooled")
    assert [n.node.node_id for n in plain] == [h.id for h in pooled]
    assert [n.score for n in plain] == pytest.approx([h.relevance for h in pooled], abs=1e-6)


def test_embed_model_encodes_each_node_once(
    encoder: SmartEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_document_encodings(monkeypatch, encoder)
    store = SmartVectorStore(uri=str(tmp_path), encoder=encoder, compression="none")  # no codec sample to encode
    VectorStoreIndex.from_documents(
        DOCUMENTS[:3], storage_context=StorageContext.from_defaults(vector_store=store), embed_model=store.embed_model()
    )
    # each node once, by the embed model (its embed content: metadata and text); no second forward pass in add
    assert sorted(calls) == sorted(d.get_content(metadata_mode=MetadataMode.EMBED) for d in DOCUMENTS[:3])
    # another embedding model's vectors never pass for SMART's: those nodes are encoded again
    calls.clear()
    other = SmartVectorStore(uri=str(tmp_path / "other"), encoder=encoder, compression="none")
    VectorStoreIndex(
        NODES[:1], storage_context=StorageContext.from_defaults(vector_store=other), embed_model=SmartEmbedding(encoder)
    )
    assert calls == [NODES[0].get_content(metadata_mode=MetadataMode.EMBED)] * 2


def test_from_vector_store_in_a_new_process(
    flow: tuple[str, SmartVectorStore, VectorStoreIndex], other_process
) -> None:
    uri, store, _ = flow
    code = (
        "import json, sys\n"
        "from llama_index.core import Settings, VectorStoreIndex\n"
        "from smart_retrievers.llama_index import SmartEmbedding, SmartVectorStore\n"
        "Settings.embed_model = SmartEmbedding()\n"
        "index = VectorStoreIndex.from_vector_store(SmartVectorStore(uri=sys.argv[1]))\n"
        "found = index.as_retriever(similarity_top_k=2).retrieve(sys.argv[2])\n"
        "print(json.dumps([[n.node.node_id, n.node.ref_doc_id, n.node.metadata, n.score] for n in found]))\n"
    )
    run = other_process.run(["-c", code, uri, QUERY]).check()
    rows = json.loads(run.stdout.strip().splitlines()[-1])
    hits = store.smart_index.search(QUERY, k=2)
    assert [r[0] for r in rows] == [h.id for h in hits]
    assert {r[1] for r in rows} == {"k7", "k7-dup"} and rows[0][2] == {"year": 2021, "kind": "chart"}
    assert [r[3] for r in rows] == pytest.approx([h.relevance for h in hits], abs=1e-5)


def test_ingestion_pipeline_writes_to_the_store(encoder: SmartEncoder, tmp_path: Path) -> None:
    store = SmartVectorStore(uri=str(tmp_path), encoder=encoder)
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0), store.embed_model()], vector_store=store
    )
    nodes = pipeline.run(documents=DOCUMENTS)
    assert store.smart_index.count() == len(nodes) == len(DOCUMENTS)
    got = store.get_nodes([n.node_id for n in nodes])
    assert [(g.node_id, g.text, g.ref_doc_id) for g in got] == [(n.node_id, n.text, n.ref_doc_id) for n in nodes]
    stored = store.smart_index.store.get([nodes[0].node_id], columns=["id", "vector"]).column("vector").to_pylist()[0]
    np.testing.assert_allclose(nodes[0].embedding, stored, atol=1e-6)  # the pipeline's embedding is the stored vector
    index = VectorStoreIndex.from_vector_store(store, embed_model=SmartEmbedding(encoder))
    assert index.as_retriever(similarity_top_k=1).retrieve(QUERY)[0].node.ref_doc_id in {"k7", "k7-dup"}


def test_settings_embed_model_and_token_counting(encoder: SmartEncoder, tmp_path: Path) -> None:
    counter = TokenCountingHandler()
    previous = Settings._embed_model, Settings._callback_manager  # the getters would resolve a default model
    try:
        Settings.embed_model = SmartEmbedding(encoder)
        Settings.callback_manager = CallbackManager([counter])
        store = SmartVectorStore(uri=str(tmp_path), encoder=encoder)
        index = VectorStoreIndex.from_documents(
            DOCUMENTS, storage_context=StorageContext.from_defaults(vector_store=store)
        )
        assert counter.total_embedding_token_count > 0 and len(counter.embedding_token_counts) >= 1
        assert len(store.get_nodes()) == len(DOCUMENTS)
        vector = Settings.embed_model.get_text_embedding("Code K7 labels the red star.")
        np.testing.assert_allclose(
            vector, encoder.encode_documents(["Code K7 labels the red star."])[0].pooled, atol=1e-6
        )
        query_vector = Settings.embed_model.get_query_embedding(QUERY)
        np.testing.assert_allclose(query_vector, encoder.encode_queries([QUERY])[0].pooled, atol=1e-6)
        assert index.as_retriever(similarity_top_k=1).retrieve(QUERY)[0].node.ref_doc_id in {"k7", "k7-dup"}
    finally:
        Settings._embed_model, Settings._callback_manager = previous


# ---- the store itself ---------------------------------------------------------------------


def test_nodes_round_trip(node_store: SmartVectorStore) -> None:
    got = node_store.get_nodes(["n-memo", "missing", "n-k7"])
    assert [g.node_id for g in got] == ["n-memo", "n-k7"]
    for g, original in zip(got, [NODES[2], NODES[0]]):
        assert g.text == original.text
        assert g.metadata == original.metadata
        assert g.relationships == original.relationships
        assert g.excluded_llm_metadata_keys == ["kind"]
        assert g.ref_doc_id == original.ref_doc_id
    result = node_store.query(VectorStoreQuery(query_str=QUERY, similarity_top_k=1))
    assert result.ids == ["n-k7"] and result.nodes[0].relationships == NODES[0].relationships


def test_nodes_keep_metadata_key_order_and_hash(node_store: SmartVectorStore) -> None:
    node = TextNode(id_="ordered", text="Key order matters for the hash.", metadata={"z": 1, "a": 2, "m": 3})
    node_store.add([node])
    (got,) = node_store.get_nodes(["ordered"])
    assert list(got.metadata) == ["z", "a", "m"]
    assert got.hash == node.hash


def test_query_modes_and_the_callers_embedding(node_store: SmartVectorStore) -> None:
    base = node_store.query(VectorStoreQuery(query_str=QUERY, similarity_top_k=3))
    hits = node_store.smart_index.search(QUERY, k=3)
    assert base.ids == [h.id for h in hits] and base.similarities == pytest.approx([h.relevance for h in hits])
    garbage = VectorStoreQuery(query_str=QUERY, query_embedding=[1.0] + [0.0] * 383, similarity_top_k=3)
    assert node_store.query(garbage).similarities == base.similarities  # never mixed into SMART scores
    mmr = node_store.query(
        VectorStoreQuery(query_str=QUERY, similarity_top_k=2, mode=VectorStoreQueryMode.MMR, mmr_threshold=1.0)
    )
    assert mmr.ids == [h.id for h in node_store.smart_index.search(QUERY, k=2, mode="pooled")]
    for mode in (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.SEMANTIC_HYBRID):
        with pytest.raises(ValueError, match=mode.name):
            node_store.query(VectorStoreQuery(query_str=QUERY, mode=mode))
    with pytest.raises(ValueError, match="query_str"):
        node_store.query(VectorStoreQuery(query_embedding=[0.1] * 384))
    only = node_store.query(VectorStoreQuery(query_str=QUERY, node_ids=["n-memo", "n-p2"], doc_ids=["doc-n-p2"]))
    assert only.ids == ["n-p2"]
    assert asyncio.run(node_store.aquery(VectorStoreQuery(query_str=QUERY, similarity_top_k=3))).ids == base.ids


def test_deletes_and_clear(node_store: SmartVectorStore) -> None:
    node_store.delete("doc-n-k7")
    assert [n.node_id for n in node_store.get_nodes()] == ["n-p2", "n-memo"]
    node_store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="kind", value="memo")]))
    assert [n.node_id for n in node_store.get_nodes()] == ["n-p2"]
    node_store.delete_nodes(["missing"])
    asyncio.run(node_store.async_add(NODES[:1]))
    filters = MetadataFilters(filters=[MetadataFilter(key="year", value=2021)])
    assert [n.node_id for n in asyncio.run(node_store.aget_nodes(filters=filters))] == ["n-k7"]
    asyncio.run(node_store.adelete_nodes(["n-k7"]))
    assert [n.node_id for n in node_store.get_nodes(["n-k7", "n-p2"])] == ["n-p2"]
    with pytest.raises(ValueError, match="clear"):
        node_store.delete_nodes()
    asyncio.run(node_store.aclear())
    assert node_store.get_nodes() == [] and node_store.smart_index.count() == 0


def test_tables_are_shared_with_smart_vector_index(node_store: SmartVectorStore) -> None:
    index = SmartVectorIndex(index=node_store.smart_index)
    (node,) = index.get_nodes(["n-k7"])
    assert node.relationships == NODES[0].relationships
    with pytest.raises(ValueError, match="not both"):
        SmartVectorStore(uri="./x", index=node_store.smart_index)
    assert (
        SmartVectorStore(index=SmartIndex(node_store.smart_index.store.uri, encoder=node_store.smart_index.encoder))
        .get_nodes(["n-p2"])[0]
        .text
        == NODES[1].text
    )


def test_example_runs(other_process) -> None:
    run = other_process.run([EXAMPLE]).check()
    assert "source nodes:" in run.stdout


def test_doc_id_filters_follow_one_alias_rule_in_both_classes(encoder: SmartEncoder, tmp_path: Path) -> None:
    """``doc_id`` is a metadata field when the table has one (else the source document), for the store as for
    SmartVectorIndex's retriever: both read one table the same way."""
    from smart_retrievers.llama_index import SmartRetriever

    def node(node_id: str, text: str, source: str, doc_id: str) -> TextNode:
        relationships = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=source)}
        return TextNode(id_=node_id, text=text, metadata={"doc_id": doc_id}, relationships=relationships)

    store = SmartVectorStore(uri=str(tmp_path), encoder=encoder)
    store.add(
        [
            node("a", "Code K7 labels the red star.", "src-a", "manual"),
            node("b", "Code P2 labels the blue circle.", "manual", "memo"),
        ]
    )
    filters = MetadataFilters(filters=[MetadataFilter(key="doc_id", value="manual")])
    assert store.query(VectorStoreQuery(query_str="red star", similarity_top_k=5, filters=filters)).ids == ["a"]
    assert [n.node_id for n in store.get_nodes(filters=filters)] == ["a"]
    retrieved = SmartRetriever(SmartVectorIndex(index=store.smart_index), filters=filters).retrieve("red star")
    assert [n.node.node_id for n in retrieved] == ["a"]
    by_source = MetadataFilters(filters=[MetadataFilter(key="ref_doc_id", value="manual")])  # no such field: ref_id
    assert store.query(VectorStoreQuery(query_str="red star", similarity_top_k=5, filters=by_source)).ids == ["b"]
