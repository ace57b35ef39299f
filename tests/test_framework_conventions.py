"""What a LlamaIndex or LangChain user expects of any retriever, vector store or index in the first hour:
persist and load, models by name, key order, no silent no-ops, filter rules, one table for both frameworks,
clear errors, callbacks and events, image queries in chains (issue 12; its CLI items are in test_cli.py).
"""

from __future__ import annotations

import asyncio
import datetime
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from langchain_core.documents import Document as LCDocument
from llama_index.core import Document, StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.data_structs.data_structs import IndexDict
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.retrievers import QueryFusionRetriever
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from smart_retrievers import SmartEncoder, SmartIndex
from smart_retrievers.langchain import SmartReranker
from smart_retrievers.langchain import SmartRetriever as LCRetriever
from smart_retrievers.llama_index import SmartRerank, SmartRetriever, SmartVectorIndex

ROOT = Path(__file__).resolve().parents[1]
TEXTS = {
    "k7": ("Code K7 labels the red star.", {"year": 2021, "author": "Ann Smith"}),
    "p2": ("Code P2 labels the blue circle.", {"year": 2022, "author": "Bob Jones"}),
    "k9": ("Code K9 labelled the red star.", {"year": 2019, "author": "Cy Young"}),
}
QUERY = "which code labels the red star?"


def _documents() -> list[Document]:
    return [Document(id_=i, text=t, metadata=dict(m)) for i, (t, m) in TEXTS.items()]


@pytest.fixture
def llama(tmp_path, encoder) -> SmartVectorIndex:
    # float16 states: these tests are about the frameworks' conventions, not the codec; the default codec ranks
    # K9 "labelled" over K7 "labels" on this three-row set (BENCHMARKS.md, the binding demo at 3/6, issue 26)
    return SmartVectorIndex.from_documents(_documents(), uri=str(tmp_path / "db"), encoder=encoder, compression="none")


# ---- 1. LlamaIndex persist / load -----------------------------------------------------------


def test_persist_then_load_index_from_storage_gives_back_the_smart_index(llama, tmp_path, encoder):
    persist_dir = str(tmp_path / "storage")
    llama.storage_context.persist(persist_dir=persist_dir)
    loaded = load_index_from_storage(StorageContext.from_defaults(persist_dir=persist_dir), encoder=encoder)
    assert isinstance(loaded, SmartVectorIndex)
    assert loaded.smart_index.count() == 3
    before = [(n.node.ref_doc_id, n.score) for n in llama.as_retriever(similarity_top_k=3).retrieve(QUERY)]
    assert [(n.node.ref_doc_id, n.score) for n in loaded.as_retriever(similarity_top_k=3).retrieve(QUERY)] == before
    # no encoder given: the pointer names the bundled model, which loads by name
    again = load_index_from_storage(StorageContext.from_defaults(persist_dir=persist_dir))
    assert isinstance(again, SmartVectorIndex) and again.smart_index.count() == 3


def test_a_struct_without_a_pointer_says_what_works():
    with pytest.raises(ValueError, match=r"SmartVectorIndex\(uri=\.\.\., table=\.\.\.\)"):
        SmartVectorIndex(index_struct=IndexDict())


# ---- 2. bring your own model --------------------------------------------------------------------


def test_smart_index_takes_a_model_directory_or_the_bundled_name(tmp_path, encoder):
    index = SmartIndex(str(tmp_path / "a"), encoder=encoder.model_name_or_path)
    assert isinstance(index.encoder, SmartEncoder) and index.encoder.dim == 384
    assert SmartIndex(str(tmp_path / "b"), encoder="all-MiniLM-L6-v2").encoder.fingerprint == encoder.fingerprint


def test_an_unreachable_hub_id_gives_a_clear_error_offline(tmp_path):
    code = (
        "from smart_retrievers import SmartIndex\n"
        "try:\n"
        f"    SmartIndex({str(tmp_path / 'db')!r}, encoder='no-such-org/no-such-model')\n"
        "except OSError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300).stdout
    assert "ERROR could not load model 'no-such-org/no-such-model'" in out
    assert "local model directory" in out


def test_smart_rerank_takes_colbert_rerank_arguments_and_round_trips():
    rerank = SmartRerank(model="all-MiniLM-L6-v2", device="cpu", top_n=2, keep_retrieval_score=True)
    data = rerank.to_dict()
    assert data["model"] == "all-MiniLM-L6-v2" and data["device"] == "cpu" and data["top_n"] == 2
    again = SmartRerank.from_dict(data)
    assert again.to_dict() == data
    nodes = [TextNode(id_=i, text=t) for i, (t, _) in TEXTS.items()]
    ranked = again.postprocess_nodes([NodeWithScore(node=n, score=0.5) for n in nodes], query_str=QUERY)
    assert [n.node.node_id for n in ranked] == ["k7", "k9"]
    assert ranked[0].node.metadata["retrieval_score"] == 0.5


def test_smart_reranker_takes_a_model():
    reranker = SmartReranker(model="all-MiniLM-L6-v2", device="cpu", top_n=1)
    docs = [LCDocument(id=i, page_content=t) for i, (t, _) in TEXTS.items()]
    assert [d.id for d in reranker.compress_documents(docs, QUERY)] == ["k7"]
    with pytest.raises(ValueError, match="not both"):
        SmartReranker(model="all-MiniLM-L6-v2", encoder=reranker._scorer.encoder)


def test_from_documents_refuses_a_foreign_embed_model_and_says_why(tmp_path, encoder):
    with pytest.raises(TypeError, match=r"embed_model=MockEmbedding.*token states.*encoder="):
        SmartVectorIndex.from_documents(_documents(), uri=str(tmp_path / "db"), embed_model=MockEmbedding(embed_dim=8))
    assert not (tmp_path / "db").exists()  # refused before a table is opened


def test_from_documents_takes_a_smart_embedding(tmp_path, encoder):
    from smart_retrievers.llama_index import SmartEmbedding

    index = SmartVectorIndex.from_documents(
        _documents(), uri=str(tmp_path / "db"), embed_model=SmartEmbedding(encoder=encoder)
    )
    assert index.smart_index.encoder is encoder


# ---- 3. metadata key order, node.hash and fusion -------------------------------------------------


def test_metadata_keeps_its_key_order(tmp_path, encoder):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none")
    metadata = {"year": 2021, "author": "Ann", "extra": {"z": 1, "a": [1, 2]}, "b": None}
    index.add(["Code K7 labels the red star."], ids=["k7"], metadatas=[metadata])
    stored = index.get(["k7"])[0].metadata
    assert stored == metadata and list(stored) == list(metadata) and list(stored["extra"]) == ["z", "a"]
    assert index.count({"year": 2021}) == 1  # the recorded order is not a field


def test_node_hash_is_stable_and_query_fusion_combines_scores(tmp_path, encoder):
    node = TextNode(id_="k7", text="Code K7 labels the red star.", metadata={"year": 2021, "author": "Ann"})
    smart = SmartVectorIndex([node], uri=str(tmp_path / "db"), encoder=encoder)
    assert smart.get_nodes(["k7"])[0].hash == node.hash
    vector = VectorStoreIndex([node], embed_model=MockEmbedding(embed_dim=8))
    fusion = QueryFusionRetriever(
        [smart.as_retriever(similarity_top_k=1), vector.as_retriever(similarity_top_k=1)],
        llm=MockLLM(),
        mode="reciprocal_rerank",
        num_queries=1,
        similarity_top_k=1,
        use_async=False,
    )
    (fused,) = fusion.retrieve(QUERY)
    assert fused.score == pytest.approx(2 / 60)  # the same node from both retrievers: RRF adds its two 1/60


# ---- 4. silent no-ops ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"vector_store_query_mode": "mmr"}, ValueError, "vector_store_query_mode='mmr'"),
        ({"vector_store_query_mode": "hybrid"}, ValueError, "vector_store_query_mode='hybrid'"),
        ({"alpha": 0.5}, ValueError, "alpha="),
        ({"similarity_topk": 1}, TypeError, "'similarity_topk'; did you mean 'similarity_top_k'"),
    ],
)
def test_as_retriever_refuses_what_it_would_ignore(llama, kwargs, error, match):
    with pytest.raises(error, match=match):
        llama.as_retriever(**kwargs)
    with pytest.raises(error, match=match):
        llama.as_query_engine(llm=MockLLM(), **kwargs)


def test_as_retriever_warns_about_unknown_arguments_but_not_engine_ones(llama):
    with pytest.warns(UserWarning, match="'colour_mode' is not an argument"):
        llama.as_retriever(colour_mode=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine = llama.as_query_engine(
            llm=MockLLM(), similarity_top_k=1, response_mode="compact", vector_store_query_mode="default"
        )
        assert engine.retriever.similarity_top_k == 1


# ---- 5. filters ------------------------------------------------------------------------------


def test_a_key_no_row_holds_matches_nothing_always(tmp_path, encoder):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none")
    assert index.search(QUERY, where={"colour": "red"}) == []  # empty index
    index.add(["a"], ids=["a"], metadatas=[{"colour": "red"}])
    index.add(["b", "c"], ids=["b", "c"], metadatas=[{"year": 1}, {"year": 2}])
    assert [h.id for h in index.search(QUERY, where={"colour": "red"})] == ["a"]
    assert index.search(QUERY, where={"shape": "star"}) == []  # never written
    index.delete(["a"])
    assert index.search(QUERY, where={"colour": "red"}) == []  # its rows deleted
    assert index.count({"shape": {"$ne": "star"}}) == 2  # missing counts as not equal
    assert index.count({"shape": {"$exists": False}}) == 2


def test_llama_index_filters_doc_id_exists_like_and_insensitive_text_match(llama):
    def ids(*filters: MetadataFilter, **kwargs) -> list[str]:
        retriever = SmartRetriever(llama, similarity_top_k=5, filters=MetadataFilters(filters=list(filters)), **kwargs)
        return sorted(n.node.ref_doc_id for n in retriever.retrieve(QUERY))

    assert ids(MetadataFilter(key="doc_id", value="k7")) == ["k7"]
    assert ids(MetadataFilter(key="ref_doc_id", value=["p2", "k9"], operator=FilterOperator.IN)) == ["k9", "p2"]
    assert ids(MetadataFilter(key="author", value="ann", operator=FilterOperator.TEXT_MATCH_INSENSITIVE)) == ["k7"]
    assert ids(MetadataFilter(key="author", value="ANN", operator=FilterOperator.TEXT_MATCH)) == []
    assert llama.smart_index.count({"author": {"$like": "B%"}}) == 1
    assert llama.smart_index.count({"author": {"$ilike": "%smith"}}) == 1
    assert llama.smart_index.count({"year": {"$exists": True}}) == 3


def test_string_against_a_numeric_field_names_the_field_and_both_types(llama):
    retriever = SmartRetriever(llama, filters=MetadataFilters(filters=[MetadataFilter(key="year", value="2021")]))
    with pytest.raises(ValueError, match=r"'2021' \(str\) does not fit the type 'int' of field 'year'"):
        retriever.retrieve(QUERY)


def test_the_internal_node_key_is_not_a_user_field(llama):
    with pytest.raises(ValueError, match="internal metadata key"):
        llama.smart_index.count({"_llama_index": {"$exists": True}})
    assert all("_llama_index" not in info.metadata for info in llama.ref_doc_info.values())


def test_date_and_datetime_metadata_from_a_loader(tmp_path, encoder):
    when = datetime.datetime(2024, 5, 6, 7, 8, 9)
    retriever = LCRetriever.from_documents(
        [LCDocument(id="a", page_content="x", metadata={"created": when, "day": when.date()})],
        uri=str(tmp_path / "db"),
        encoder=encoder,
    )
    (doc,) = retriever.invoke("x", filter={"created": {"$gte": datetime.datetime(2024, 1, 1)}})
    assert doc.metadata["created"] == "2024-05-06T07:08:09" and doc.metadata["day"] == "2024-05-06"


# ---- 6. one table, both frameworks -------------------------------------------------------------


def test_one_table_is_read_cleanly_by_both_frameworks(llama):
    langchain = LCRetriever(index=llama, k=5)  # a SmartVectorIndex is accepted as it is (item 7)
    langchain.add_documents(
        [LCDocument(id="m4", page_content="Code M4 labels the yellow triangle.", metadata={"n": 1})]
    )
    docs = {d.id: d for d in langchain.invoke(QUERY)}
    node_ids = {n.node_id: n.ref_doc_id for n in llama.get_nodes(list(docs))}
    assert set(docs) == set(node_ids)  # LangChain ids are the rows' node ids
    assert all("_llama_index" not in d.metadata for d in docs.values())
    k7 = next(d for d in docs.values() if node_ids[d.id] == "k7")
    assert {k: v for k, v in k7.metadata.items() if not k.endswith("_score")} == TEXTS["k7"][1]
    by_ref = {n.node.ref_doc_id: n.node for n in llama.as_retriever(similarity_top_k=5).retrieve("yellow triangle")}
    assert by_ref["m4"].node_id == "m4" and by_ref["m4"].metadata == {"n": 1}  # ref_doc_id of a LangChain row


# ---- 7. errors that name the framework ------------------------------------------------------


def test_documents_of_the_other_framework_are_named(tmp_path, encoder):
    with pytest.raises(TypeError, match=r"langchain_core.*LangChain object.*from_langchain_format"):
        SmartVectorIndex.from_documents([LCDocument(page_content="x")], uri=str(tmp_path / "a"), encoder=encoder)
    retriever = LCRetriever.from_texts(["x"], uri=str(tmp_path / "b"), encoder=encoder)
    with pytest.raises(TypeError, match=r"llama_index.*not a langchain_core Document.*to_langchain_format"):
        retriever.add_documents([Document(text="x")])


def test_storage_context_is_accepted_and_a_foreign_vector_store_refused_briefly(tmp_path, encoder):
    context = StorageContext.from_defaults()
    index = SmartVectorIndex.from_documents(
        _documents(), uri=str(tmp_path / "db"), encoder=encoder, storage_context=context
    )
    assert index.storage_context is context

    class OtherVectorStore(SimpleVectorStore):
        pass

    foreign = StorageContext.from_defaults(vector_store=OtherVectorStore())
    with pytest.raises(ValueError, match="OtherVectorStore") as caught:
        SmartVectorIndex.from_documents(
            _documents(), uri=str(tmp_path / "db"), encoder=encoder, storage_context=foreign
        )
    assert len(str(caught.value)) < 400
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['service_context'\]") as caught:
        SmartVectorIndex.from_documents(
            _documents(), uri=str(tmp_path / "db"), encoder=encoder, service_context=context
        )
    assert len(str(caught.value)) < 400  # named, not dumped


def test_score_keys_in_user_metadata_warn(tmp_path, encoder):
    retriever = LCRetriever.from_texts(["x"], uri=str(tmp_path / "db"), encoder=encoder)
    with pytest.warns(UserWarning, match=r"\['smart_score'\]"):
        retriever.add_documents([LCDocument(id="s", page_content="y", metadata={"smart_score": 0.3})])
    with pytest.warns(UserWarning, match=r"\['relevance_score'\]"):
        SmartReranker(encoder=encoder).compress_documents(
            [LCDocument(page_content="y", metadata={"relevance_score": 9})], "y"
        )


# ---- 8. events -------------------------------------------------------------------------------


def test_token_counting_handler_counts_smart_embeddings(tmp_path, encoder):
    counter = TokenCountingHandler(tokenizer=str.split)
    index = SmartVectorIndex.from_documents(
        _documents(), uri=str(tmp_path / "db"), encoder=encoder, callback_manager=CallbackManager([counter])
    )
    written = counter.total_embedding_token_count
    # what was encoded: each (one-chunk) document's embed content, metadata included, as VectorStoreIndex counts it
    assert written == sum(len(d.get_content(metadata_mode=MetadataMode.EMBED).split()) for d in _documents())
    index.as_retriever().retrieve(QUERY)
    assert counter.total_embedding_token_count == written + len(QUERY.split())


def test_smart_reranker_has_its_own_run_in_astream_events(tmp_path, encoder):
    from langchain_classic.retrievers import ContextualCompressionRetriever

    base = LCRetriever.from_texts(
        [t for t, _ in TEXTS.values()], ids=list(TEXTS), uri=str(tmp_path / "db"), encoder=encoder, k=3
    )
    chain = ContextualCompressionRetriever(base_compressor=SmartReranker(top_n=1, encoder=encoder), base_retriever=base)

    async def events() -> list[tuple[str, str]]:
        return [(e["event"], e["name"]) async for e in chain.astream_events(QUERY, version="v2")]

    seen = asyncio.run(events())
    assert ("on_chain_start", "SmartReranker") in seen and ("on_chain_end", "SmartReranker") in seen
    assert [d.id for d in chain.invoke(QUERY)] == ["k7"]


# ---- 9. a dict query through a chain --------------------------------------------------------


def test_langchain_dict_query_with_text_and_image(tmp_path, encoder):
    retriever = LCRetriever.from_texts(  # float16 states: see the llama fixture
        [t for t, _ in TEXTS.values()],
        ids=list(TEXTS),
        uri=str(tmp_path / "db"),
        encoder=encoder,
        k=1,
        compression="none",
    )
    assert [d.id for d in retriever.invoke({"text": QUERY})] == ["k7"]
    assert [[d.id for d in docs] for docs in retriever.batch([{"query": QUERY}, QUERY])] == [["k7"], ["k7"]]
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['txt'\]"):
        retriever.invoke({"txt": QUERY})


def test_langchain_dict_image_query(tmp_path):
    from langchain_core.runnables import RunnableLambda
    from tiny_vision_models import build_clip, drawn_images

    from smart_retrievers.encoders import ClipEncoder

    clip = str(build_clip(tmp_path / "clip"))  # a model directory, loaded through the encoder registry (item 2)
    paths = []
    for i, image in enumerate(drawn_images(3)):
        paths.append(str(tmp_path / f"img{i}.png"))
        image.save(paths[-1])
    docs = [LCDocument(id=f"img{i}", page_content="", metadata={"image_path": p}) for i, p in enumerate(paths)]
    retriever = LCRetriever.from_documents(docs, uri=str(tmp_path / "db"), encoder=clip, k=1, compression="none")
    assert isinstance(retriever.index.encoder, ClipEncoder)
    chain = RunnableLambda(lambda path: {"image": path}) | retriever  # the image flows through the chain input
    assert [d.id for d in chain.invoke(paths[2])] == ["img2"]
