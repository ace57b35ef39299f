"""LlamaIndex integration: SmartRetriever, SmartRerank and SmartVectorIndex on the real bundled model."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from encoder_calls import record_document_encodings
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import ImageNode, IndexNode, NodeRelationship, NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters
from llama_index.core.vector_stores.utils import build_metadata_filter_fn

import smart_retrievers.llama_index as reexport
from smart_retrievers import SmartEncoder
from smart_retrievers.encoding import Encoding
from smart_retrievers.integrations.llama_index import (
    NODE_KEY,
    SmartNodeWithScore,
    SmartRerank,
    SmartRetriever,
    SmartVectorIndex,
    to_smart_filter,
)
from smart_retrievers.sample_corpus import binding_corpus

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "llama_index_rag.py"

# ---- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_module():
    """examples/llama_index_rag.py imported as a module (for its PooledEmbedding)."""
    spec = importlib.util.spec_from_file_location("llama_index_rag", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FILTER_DOCS = {
    "d1": (
        "Alpine lakes freeze early in the north.",
        {"year": 2019, "rating": 3.5, "author": "ann smith", "tags": ["x", "y"], "lang": "en"},
    ),
    "d2": (
        "Desert dunes move with the wind.",
        {"year": 2020, "rating": 4.0, "author": "bob", "tags": ["y"], "lang": ""},
    ),
    "d3": ("Coral reefs host many species of fish.", {"year": 2021, "rating": 4.5, "author": "ann lee", "tags": []}),
    "d4": (
        "Volcanic islands rise from the sea floor.",
        {"year": 2022, "rating": 5.0, "author": "carl", "tags": ["z", "x"], "lang": "fr"},
    ),
    "d5": ("Glaciers carve deep valleys over time.", {"year": 2023, "author": "dana", "lang": "en"}),
}


@pytest.fixture(scope="module")
def filter_index(encoder: SmartEncoder, tmp_path_factory: pytest.TempPathFactory) -> SmartVectorIndex:
    docs = [Document(id_=doc_id, text=text, metadata=meta) for doc_id, (text, meta) in FILTER_DOCS.items()]
    # float16 states: the evidence tests check one span per token (coded rows give pooled runs: tests/explain)
    return SmartVectorIndex.from_documents(
        docs, uri=str(tmp_path_factory.mktemp("filters")), encoder=encoder, compression="none"
    )


@pytest.fixture(scope="module")
def binding_nodes() -> list[TextNode]:
    texts, _, _ = binding_corpus()
    return [TextNode(id_=node_id, text=text) for node_id, text in texts.items()]


@pytest.fixture(scope="module")
def binding_index(
    encoder: SmartEncoder, binding_nodes: list[TextNode], tmp_path_factory: pytest.TempPathFactory
) -> SmartVectorIndex:
    return SmartVectorIndex(binding_nodes, uri=str(tmp_path_factory.mktemp("binding")), encoder=encoder)


def ref_ids(nodes: list[NodeWithScore]) -> set[str]:
    return {n.node.ref_doc_id for n in nodes}


# ---- classes ---------------------------------------------------------------------------


def test_reexport_and_framework_composition(
    encoder: SmartEncoder, binding_index: SmartVectorIndex, binding_nodes: list[TextNode], example_module
) -> None:
    """The public module re-exports the classes, and LlamaIndex's own machinery drives them:
    a SmartRerank in a query engine over a plain VectorStoreIndex, a SmartRetriever in a
    RetrieverQueryEngine, a SmartNodeWithScore through serialisation."""
    assert (reexport.SmartRetriever, reexport.SmartRerank, reexport.SmartVectorIndex) == (
        SmartRetriever,
        SmartRerank,
        SmartVectorIndex,
    )
    query = "K7 red star"
    plain = VectorStoreIndex(binding_nodes, embed_model=example_module.PooledEmbedding(encoder))
    rerank = SmartRerank(top_n=3, encoder=encoder)
    engine = plain.as_query_engine(llm=MockLLM(), similarity_top_k=8, node_postprocessors=[rerank])
    sources = engine.query(query).source_nodes
    expected = rerank.postprocess_nodes(plain.as_retriever(similarity_top_k=8).retrieve(query), query_str=query)
    assert [(n.node.node_id, n.score) for n in sources] == [(n.node.node_id, n.score) for n in expected]
    assert len(sources) == 3 and all(isinstance(n, SmartNodeWithScore) and n.late_score is not None for n in sources)

    retrieved = (
        RetrieverQueryEngine.from_args(SmartRetriever(binding_index, similarity_top_k=2), llm=MockLLM())
        .query(query)
        .source_nodes
    )
    assert [n.node.node_id for n in retrieved] == [h.id for h in binding_index.smart_index.search(query, k=2)]
    dumped = retrieved[0].to_dict()  # what LlamaIndex serialises keeps SMART's parts
    assert (dumped["class_name"], dumped["score"], dumped["pooled_score"], dumped["late_score"]) == (
        "SmartNodeWithScore",
        retrieved[0].score,
        retrieved[0].pooled_score,
        retrieved[0].late_score,
    )


def test_core_never_imports_llama_index() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+llama_index", re.M)
    package = ROOT / "smart_retrievers"
    integration = package / "integrations" / "llama_index"
    offenders = [
        p.name for p in package.rglob("*.py") if integration not in p.parents and pattern.search(p.read_text())
    ]
    assert offenders == []


# ---- retriever -------------------------------------------------------------------------


def test_retrieve_returns_scored_text_nodes(binding_index: SmartVectorIndex, binding_nodes: list[TextNode]) -> None:
    results = SmartRetriever(binding_index, similarity_top_k=4).retrieve("K7 red star")
    assert [type(r) for r in results] == [SmartNodeWithScore] * 4
    assert results[0].node.node_id == "report-0"
    originals = {n.node_id: n for n in binding_nodes}
    hits = {h.id: h for h in binding_index.smart_index.search("K7 red star", k=4)}  # the default, hybrid, search
    for r in results:
        assert r.node == originals[r.node.node_id]  # same id, text, metadata (empty: no score in it)
        assert r.smart_score == pytest.approx(r.pooled_score + r.late_score + 0.5 * r.lex_score, abs=1e-5)
        assert r.score == pytest.approx(hits[r.node.node_id].relevance, abs=1e-6)  # the one [0, 1] scale
        assert 0.0 <= r.score <= 1.0
    assert [r.smart_score for r in results] == sorted((r.smart_score for r in results), reverse=True)
    pooled = SmartRetriever(binding_index, similarity_top_k=4, mode="pooled").retrieve("K7 red star")
    assert all(r.late_score is None and r.smart_score == r.pooled_score for r in pooled)


async def test_aretrieve_matches_retrieve_off_the_event_loop(
    binding_index: SmartVectorIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    retriever = SmartRetriever(binding_index, similarity_top_k=5)
    sync = retriever.retrieve("P2 blue circle")
    threads = []
    search = binding_index.smart_index.search_encoded

    def recording(*args, **kwargs):
        threads.append(threading.current_thread())
        return search(*args, **kwargs)

    monkeypatch.setattr(binding_index.smart_index, "search_encoded", recording)
    results = await asyncio.gather(
        retriever.aretrieve("P2 blue circle"), retriever.aretrieve(QueryBundle("P2 blue circle"))
    )
    for nodes in results:
        assert [(n.node.node_id, n.score) for n in nodes] == [(n.node.node_id, n.score) for n in sync]
    assert threads and all(t is not threading.main_thread() for t in threads)


def test_query_bundle_embedding_strs_and_foreign_embedding(binding_index: SmartVectorIndex) -> None:
    retriever = SmartRetriever(binding_index, similarity_top_k=12)
    plain = [(n.node.node_id, n.score) for n in retriever.retrieve("Z9 green square")]
    custom = retriever.retrieve(
        QueryBundle(query_str="unrelated words about the weather", custom_embedding_strs=["Z9 green square"])
    )
    assert [(n.node.node_id, n.score) for n in custom] == plain
    foreign = retriever.retrieve(
        QueryBundle(query_str="Z9 green square", embedding=[1.0] + [0.0] * 767)
    )  # another model's vector
    assert [(n.node.node_id, n.score) for n in foreign] == plain

    # several strings: one query with the normalised mean pooled vector and all the token states
    encoder = binding_index.smart_index.encoder
    a, b = encoder.encode_queries(["Z9 green square", "M4 yellow triangle"])
    mean = (a.pooled + b.pooled) / np.linalg.norm(a.pooled + b.pooled)
    expected = binding_index.smart_index.search_encoded(  # the words of both strings feed the full-text index
        Encoding(pooled=mean, tokens=np.concatenate([a.tokens, b.tokens])),
        12,
        text="Z9 green square\nM4 yellow triangle",
    )
    both = retriever.retrieve(
        QueryBundle(query_str="x", custom_embedding_strs=["Z9 green square", "M4 yellow triangle"])
    )
    assert [n.node.node_id for n in both] == [h.id for h in expected]
    assert [n.score for n in both] == pytest.approx([h.relevance for h in expected], abs=1e-5)


def _f(key: str, value, op: FilterOperator) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


FLAT_FILTERS = [
    (_f("year", 2020, FilterOperator.EQ), {"d2"}),
    (_f("author", "bob", FilterOperator.NE), {"d1", "d3", "d4", "d5"}),
    (_f("year", 2021, FilterOperator.GT), {"d4", "d5"}),
    (_f("rating", 4.5, FilterOperator.GTE), {"d3", "d4"}),
    (_f("rating", 4, FilterOperator.LT), {"d1"}),
    (_f("year", 2020, FilterOperator.LTE), {"d1", "d2"}),
    (_f("author", ["bob", "carl"], FilterOperator.IN), {"d2", "d4"}),
    (_f("year", [2019, 2023], FilterOperator.NIN), {"d2", "d3", "d4"}),
    (_f("tags", "x", FilterOperator.CONTAINS), {"d1", "d4"}),
    (_f("author", "ann", FilterOperator.CONTAINS), {"d1", "d3"}),
    (_f("author", "smith", FilterOperator.TEXT_MATCH), {"d1"}),
    (_f("lang", None, FilterOperator.IS_EMPTY), {"d2", "d3"}),
    (_f("tags", None, FilterOperator.IS_EMPTY), {"d3", "d5"}),
    (_f("tags", ["z", "y"], FilterOperator.ANY), {"d1", "d2", "d4"}),
    (_f("tags", ["x", "y"], FilterOperator.ALL), {"d1"}),
]


@pytest.mark.parametrize(
    ("metadata_filter", "expected"), FLAT_FILTERS, ids=[f"{f.operator.name}-{f.key}" for f, _ in FLAT_FILTERS]
)
def test_every_operator_returns_exactly_the_matching_nodes(
    filter_index: SmartVectorIndex, metadata_filter: MetadataFilter, expected: set[str]
) -> None:
    filters = MetadataFilters(filters=[metadata_filter])
    assert ref_ids(SmartRetriever(filter_index, similarity_top_k=10, filters=filters).retrieve("nature")) == expected
    # the same answer as LlamaIndex's own in-memory filter semantics
    matches = build_metadata_filter_fn(lambda doc_id: FILTER_DOCS[doc_id][1], filters)
    assert {doc_id for doc_id in FILTER_DOCS if matches(doc_id)} == expected


def test_nested_filters_and_id_constraints(filter_index: SmartVectorIndex) -> None:
    def retrieve(**kwargs) -> set[str]:
        return ref_ids(SmartRetriever(filter_index, similarity_top_k=10, **kwargs).retrieve("nature"))

    nested = MetadataFilters(
        filters=[
            _f("year", 2019, FilterOperator.EQ),
            MetadataFilters(
                filters=[
                    _f("rating", 4.5, FilterOperator.GTE),
                    MetadataFilters(filters=[_f("author", "carl", FilterOperator.EQ)], condition=FilterCondition.NOT),
                ],
                condition=FilterCondition.AND,
            ),
        ],
        condition=FilterCondition.OR,
    )
    assert retrieve(filters=nested) == {"d1", "d3"}
    none_of = MetadataFilters(
        filters=[_f("year", 2021, FilterOperator.LT), _f("lang", "fr", FilterOperator.EQ)],
        condition=FilterCondition.NOT,
    )
    assert retrieve(filters=none_of) == {"d3", "d5"}
    assert retrieve(filters=MetadataFilters(filters=[])) == set(FILTER_DOCS)
    assert retrieve(doc_ids=["d2", "d4"]) == {"d2", "d4"}
    d5_node = filter_index.ref_doc_info["d5"].node_ids
    assert retrieve(node_ids=d5_node) == {"d5"}
    assert retrieve(doc_ids=["d2", "d4"], filters=MetadataFilters(filters=[_f("year", 2021, FilterOperator.GT)])) == {
        "d4"
    }
    assert retrieve(filters=MetadataFilters(filters=[_f("id", d5_node[0], FilterOperator.EQ)])) == {"d5"}


def test_unsupported_and_bad_filters_raise(filter_index: SmartVectorIndex) -> None:
    with pytest.raises(ValueError, match="ALL expects a list"):
        to_smart_filter(MetadataFilters(filters=[_f("tags", "x", FilterOperator.ALL)]))
    with pytest.raises(TypeError, match="MetadataFilters"):
        SmartRetriever(filter_index, filters={"year": 2020})
    assert (  # a field no row holds: no match, not an error (docs/getting-started.md, "Filters")
        SmartRetriever(
            filter_index, filters=MetadataFilters(filters=[_f("colour", "red", FilterOperator.EQ)])
        ).retrieve("x")
        == []
    )
    with pytest.raises(ValueError, match="does not fit"):
        SmartRetriever(filter_index, filters=MetadataFilters(filters=[_f("year", "2020", FilterOperator.EQ)])).retrieve(
            "x"
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "dense"}, ValueError, "mode must be one of"),
        ({"similarity_top_k": 0}, ValueError, "similarity_top_k"),
        ({"candidates": 0}, ValueError, "candidates"),
        ({"lambda_pool": 0.0, "lambda_late": 0.0}, ValueError, "not both 0"),
        ({"node_ids": "report-0"}, TypeError, "node_ids must be a list"),
    ],
)
def test_retriever_rejects_bad_arguments(
    binding_index: SmartVectorIndex, kwargs: dict, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        SmartRetriever(binding_index, **kwargs)


def test_unset_settings_follow_the_index(binding_index: SmartVectorIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """None means "the index's default", resolved by the index at each search, not frozen at construction."""
    retriever = SmartRetriever(binding_index, similarity_top_k=3)
    fused = retriever.retrieve("K7 red star")
    assert all(  # the index's default search is hybrid: its lexical term at λ_lex 0.5
        r.late_score is not None
        and r.smart_score == pytest.approx(r.pooled_score + r.late_score + 0.5 * r.lex_score, abs=1e-5)
        for r in fused
    )
    smart = binding_index.smart_index
    monkeypatch.setattr(smart, "options", smart.options.updated(lambda_late=0.0))
    pooled = retriever.retrieve("K7 red star")
    assert all(
        r.late_score is None and r.smart_score == pytest.approx(r.pooled_score + 0.5 * r.lex_score, abs=1e-5)
        for r in pooled
    )
    pinned = SmartRetriever(binding_index, similarity_top_k=3, lambda_late=1.0).retrieve("K7 red star")
    assert [(r.node.node_id, r.score) for r in pinned] == [(r.node.node_id, r.score) for r in fused]


def test_empty_query_raises(binding_index: SmartVectorIndex) -> None:
    with pytest.raises(ValueError, match="no text to encode"):
        SmartRetriever(binding_index).retrieve("")


# ---- index -------------------------------------------------------------------------------


def test_nodes_round_trip_with_relationships(encoder: SmartEncoder, tmp_path: Path) -> None:
    doc = Document(
        id_="guide",
        text=" ".join(f"Step {i}: tighten bolt {i} with the torque wrench before moving on." for i in range(24)),
        metadata={"section": "assembly", "page": 3},
        excluded_llm_metadata_keys=["page"],
    )
    nodes = SentenceSplitter(chunk_size=64, chunk_overlap=0).get_nodes_from_documents([doc])
    assert len(nodes) >= 3
    index = SmartVectorIndex(nodes, uri=str(tmp_path), encoder=encoder)
    assert index.get_nodes([n.node_id for n in reversed(nodes)]) == list(reversed(nodes))
    middle = index.get_nodes([nodes[1].node_id])[0]
    assert middle.ref_doc_id == "guide"
    assert middle.relationships[NodeRelationship.PREVIOUS].node_id == nodes[0].node_id
    assert middle.relationships[NodeRelationship.NEXT].node_id == nodes[2].node_id
    # metadata is embedded (not excluded), so the row holds the embed content; the node keeps its text
    row = index.smart_index.get([nodes[1].node_id])[0]
    assert row.text.startswith("section: assembly") and middle.text == nodes[1].text
    assert set(row.metadata) == {"section", "page", NODE_KEY}
    retrieved = SmartRetriever(index, similarity_top_k=len(nodes)).retrieve("torque wrench")
    assert {r.node.node_id: r.node for r in retrieved} == {n.node_id: n for n in nodes}

    # rows written by the core API (no NODE_KEY) come back as plain TextNodes with a SOURCE
    index.smart_index.add(["Loose bolts rattle."], ids=["core-row"], metadatas=[{"section": "faq"}], ref_ids=["faq"])
    core = index.get_nodes(["core-row"])[0]
    assert (core.text, core.metadata, core.ref_doc_id) == ("Loose bolts rattle.", {"section": "faq"}, "faq")


def test_insert_delete_update_refresh(encoder: SmartEncoder, tmp_path: Path) -> None:
    splitter = SentenceSplitter(chunk_size=48, chunk_overlap=0)
    long_doc = Document(
        id_="long", text=" ".join(f"Paragraph {i} describes shelf {i} of the archive." for i in range(20))
    )
    a, b = Document(id_="a", text="Apples are red."), Document(id_="b", text="Bananas are yellow.")
    index = SmartVectorIndex.from_documents(
        [long_doc, a, b], uri=str(tmp_path), encoder=encoder, transformations=[splitter]
    )
    info = index.ref_doc_info
    assert set(info) == {"long", "a", "b"} and len(info["long"].node_ids) >= 3
    kept = set(info["a"].node_ids) | set(info["b"].node_ids)

    index.delete_ref_doc("long")
    after = index.ref_doc_info
    assert set(after) == {"a", "b"} and set(after["a"].node_ids) | set(after["b"].node_ids) == kept
    assert index.smart_index.count() == 2

    index.insert(a)  # the same document again: its node is replaced, not duplicated
    assert index.smart_index.count() == 2 and index.ref_doc_info["a"].node_ids != info["a"].node_ids

    index.update_ref_doc(Document(id_="b", text="Bananas turn brown."))
    assert [n.text for n in index.get_nodes(index.ref_doc_info["b"].node_ids)] == ["Bananas turn brown."]
    assert index.get_nodes(info["b"].node_ids) == []

    flags = index.refresh_ref_docs(
        [a, Document(id_="b", text="Bananas are green."), Document(id_="c", text="Cherries are dark.")]
    )
    assert flags == [False, True, True]
    assert {k: [n.text for n in index.get_nodes(v.node_ids)] for k, v in index.ref_doc_info.items()} == {
        "a": ["Apples are red."],
        "b": ["Bananas are green."],
        "c": ["Cherries are dark."],
    }
    assert index.refresh_ref_docs([a]) == [False]

    index.delete_nodes(index.ref_doc_info["c"].node_ids)
    assert set(index.ref_doc_info) == {"a", "b"}


async def test_async_index_methods(encoder: SmartEncoder, tmp_path: Path) -> None:
    index = SmartVectorIndex(uri=str(tmp_path), encoder=encoder)
    await index.ainsert(Document(id_="a", text="Apples are red."))
    await index.ainsert_nodes([TextNode(id_="n1", text="Pears are green.")])
    assert await index.arefresh_ref_docs([Document(id_="a", text="Apples are red.")]) == [False]
    await index.adelete_ref_doc("a")
    assert [n.node_id for n in index.get_nodes(["n1"])] == ["n1"] and index.smart_index.count() == 1


def test_index_rejects_bad_input(encoder: SmartEncoder, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs uri="):
        SmartVectorIndex()
    index = SmartVectorIndex(uri=str(tmp_path), encoder=encoder)
    with pytest.raises(ValueError, match="either index="):
        SmartVectorIndex(index=index.smart_index, uri=str(tmp_path))
    with pytest.raises(ValueError, match="reserved"):
        index.insert_nodes([TextNode(text="x", metadata={NODE_KEY: 1})])
    with pytest.raises(TypeError, match="SmartEncoder cannot encode images"):  # image nodes need a vision encoder
        index.insert_nodes([ImageNode(image_path="cat.png")])
    with pytest.raises(TypeError, match="text and image nodes only"):
        index.insert_nodes([IndexNode(text="x", index_id="other")])
    with pytest.raises(TypeError, match="not a single document"):
        SmartVectorIndex.from_documents(Document(text="x"), uri=str(tmp_path), encoder=encoder)
    with pytest.raises(NotImplementedError, match="LanceDB table"):
        _ = index.docstore
    assert index.smart_index.count() == 0


def test_as_query_engine(binding_index: SmartVectorIndex) -> None:
    engine = binding_index.as_query_engine(llm=MockLLM(), similarity_top_k=2, response_mode="compact")
    assert isinstance(engine, RetrieverQueryEngine) and isinstance(engine.retriever, SmartRetriever)
    response = engine.query("Q5 purple hexagon")
    assert [n.node.node_id for n in response.source_nodes] == [
        h.id for h in binding_index.smart_index.search("Q5 purple hexagon", k=2)
    ]
    assert all(isinstance(n, SmartNodeWithScore) for n in response.source_nodes)


# ---- reranker --------------------------------------------------------------------------------


def test_binding_rerank_moves_the_answer_up(
    encoder: SmartEncoder, binding_nodes: list[TextNode], example_module
) -> None:
    """A plain pooled VectorStoreIndex confuses reports with their swapped twins; SmartRerank separates them."""
    _, _, cases = binding_corpus()
    retriever = VectorStoreIndex(binding_nodes, embed_model=example_module.PooledEmbedding(encoder)).as_retriever(
        similarity_top_k=len(binding_nodes)
    )
    rerank = SmartRerank(top_n=None, encoder=encoder)
    pooled_first = smart_first = 0
    pooled_margins, smart_margins, late_margins = [], [], []
    for case in cases:
        candidates = retriever.retrieve(case.query)
        reranked = rerank.postprocess_nodes(candidates, query_str=case.query)
        before = {n.node.node_id: (rank, n.score) for rank, n in enumerate(candidates)}
        after = {n.node.node_id: (rank, n) for rank, n in enumerate(reranked)}
        assert after[case.answer_id][0] <= before[case.answer_id][0], case
        pooled_first += before[case.answer_id][0] == 0
        smart_first += after[case.answer_id][0] == 0
        pooled_margins.append(before[case.answer_id][1] - before[case.twin_id][1])
        smart_margins.append(after[case.answer_id][1].smart_score - after[case.twin_id][1].smart_score)
        late_margins.append(after[case.answer_id][1].late_score - after[case.twin_id][1].late_score)
    # measured on all-MiniLM-L6-v2: answer first 3/6 (pooled) vs 5/6 (SMART); the late score
    # puts every answer above its twin (min +0.0015), while pooled puts 2 of 6 twins first
    assert (pooled_first, smart_first) == (3, 5)
    assert sum(m > 0 for m in pooled_margins) == 4 and min(late_margins) > 0
    assert np.mean(smart_margins) > np.mean(pooled_margins) + 0.005


def test_rerank_reuses_stored_token_states(
    encoder: SmartEncoder, binding_index: SmartVectorIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    candidates = SmartRetriever(binding_index, similarity_top_k=12, mode="pooled").retrieve("T3 orange arrow")
    calls = record_document_encodings(monkeypatch, encoder)
    stored = SmartRerank(top_n=5, index=binding_index).postprocess_nodes(candidates, query_str="T3 orange arrow")
    assert calls == []  # every candidate's id and content match a stored row: no forward pass
    exhaustive = SmartRetriever(binding_index, similarity_top_k=5, mode="exhaustive").retrieve("T3 orange arrow")
    assert [n.node.node_id for n in stored] == [n.node.node_id for n in exhaustive]
    assert [n.score for n in stored] == pytest.approx([n.score for n in exhaustive], abs=1e-5)

    # same id, other content: its stored states must not be borrowed; it is encoded from its own
    # text and scored as that text freshly encoded (an id the index does not hold)
    impostor = NodeWithScore(node=TextNode(id_="report-5", text="Nothing about codes here."), score=0.1)
    borrowed = SmartRerank(top_n=None, index=binding_index).postprocess_nodes(
        [candidates[0], impostor], query_str="T3 orange arrow"
    )
    assert calls == ["Nothing about codes here."]
    unknown = NodeWithScore(node=TextNode(id_="not-stored", text="Nothing about codes here."), score=0.1)
    alone = SmartRerank(top_n=None, index=binding_index).postprocess_nodes([unknown], query_str="T3 orange arrow")
    scored = next(n for n in borrowed if n.node.node_id == "report-5")
    assert (scored.score, scored.pooled_score, scored.late_score) == pytest.approx(
        (alone[0].score, alone[0].pooled_score, alone[0].late_score), abs=1e-5
    )
    assert scored.score < stored[-1].score


def test_keep_retrieval_score_and_inputs_untouched(encoder: SmartEncoder, binding_nodes: list[TextNode]) -> None:
    candidates = [NodeWithScore(node=node, score=0.5 + i / 100) for i, node in enumerate(binding_nodes[:4])]
    kept = SmartRerank(top_n=2, encoder=encoder, keep_retrieval_score=True).postprocess_nodes(
        candidates, query_str="K7 red star"
    )
    by_id = {c.node.node_id: c.score for c in candidates}
    assert len(kept) == 2 and all(n.node.metadata == {"retrieval_score": by_id[n.node.node_id]} for n in kept)
    assert all(c.node.metadata == {} for c in candidates) and [c.score for c in candidates] == [0.5, 0.51, 0.52, 0.53]
    plain = SmartRerank(top_n=2, encoder=encoder).postprocess_nodes(candidates, query_str="K7 red star")
    assert [n.node.metadata for n in plain] == [{}, {}] and [n.score for n in plain] == [n.score for n in kept]


def test_rerank_empty_input_missing_query_and_bad_arguments(
    encoder: SmartEncoder, binding_index: SmartVectorIndex
) -> None:
    rerank = SmartRerank(encoder=encoder)
    assert rerank.postprocess_nodes([], query_str="anything") == []
    with pytest.raises(ValueError, match="needs the query"):
        rerank.postprocess_nodes([NodeWithScore(node=TextNode(text="x"), score=1.0)])
    with pytest.raises(ValueError, match="top_n"):
        SmartRerank(top_n=0, encoder=encoder)
    with pytest.raises(ValueError, match="not both 0"):
        SmartRerank(encoder=encoder, lambda_pool=0, lambda_late=0)
    with pytest.raises(ValueError, match="device= applies only"):
        SmartRerank(encoder=encoder, device="cpu")
    other = copy.copy(encoder)  # same weights, another document prompt: other stored states
    other.document_prompt = "passage: "
    with pytest.raises(ValueError, match="differs from the index's encoder"):
        SmartRerank(index=binding_index, encoder=other)


def test_rerank_emits_instrumentation_and_callback_events(encoder: SmartEncoder, binding_nodes: list[TextNode]) -> None:
    class Collect(BaseEventHandler):
        events: list = []

        @classmethod
        def class_name(cls) -> str:
            return "Collect"

        def handle(self, event, **kwargs) -> None:
            self.events.append(event)

    debug = LlamaDebugHandler()
    rerank = SmartRerank(top_n=2, encoder=encoder, callback_manager=CallbackManager([debug]))
    candidates = [NodeWithScore(node=node, score=0.0) for node in binding_nodes]
    handler, root = Collect(events=[]), get_dispatcher()
    root.add_event_handler(handler)
    try:
        result = rerank.postprocess_nodes(candidates, query_str="M4 yellow triangle")
    finally:
        root.event_handlers.remove(handler)
    start = [e for e in handler.events if isinstance(e, ReRankStartEvent)]
    end = [e for e in handler.events if isinstance(e, ReRankEndEvent)]
    assert len(start) == len(end) == 1
    assert (start[0].query.query_str, start[0].top_n, start[0].model_name, len(start[0].nodes)) == (
        "M4 yellow triangle",
        2,
        "all-MiniLM-L6-v2",
        12,
    )
    assert end[0].nodes == result
    pairs = debug.get_event_pairs(CBEventType.RERANKING)
    assert len(pairs) == 1
    assert (
        pairs[0][0].payload[EventPayload.QUERY_STR] == "M4 yellow triangle"
        and pairs[0][0].payload[EventPayload.TOP_K] == 2
    )
    assert pairs[0][1].payload[EventPayload.NODES] == result


# ---- example and a second process ------------------------------------------------------------


def test_example_runs_and_another_process_sees_its_nodes(encoder: SmartEncoder, tmp_path: Path, other_process) -> None:
    db = tmp_path / "db"
    run = other_process.run([EXAMPLE, "--db", db], cwd=ROOT)  # python examples/llama_index_rag.py --db DIR
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert f"indexed 12 nodes from 12 documents into {db}" in out
    for title in (
        "SmartRetriever (SMART",
        "index.as_query_engine(filters=quarter >= 3)",
        "VectorStoreIndex alone",
        "VectorStoreIndex top 6 -> SmartRerank top 3",
    ):
        assert title in out
    sections = out.split("\n\n")
    smart = next(s for s in sections if s.startswith("SmartRetriever (SMART"))
    alone = next(s for s in sections if s.startswith("VectorStoreIndex alone"))
    reranked = next(s for s in sections if s.startswith("VectorStoreIndex top 6"))
    assert re.search(r"1\. report-1 +score=\d\.\d{4} pooled=\d\.\d{4} late=\d\.\d{4}", smart)
    assert "1. report-1-swapped" in alone and "1. report-1 " in reranked  # the rerank fixes the pooled order

    # this process opens what the example process wrote
    reopened = SmartVectorIndex(uri=str(db), encoder=encoder)
    assert set(reopened.ref_doc_info) == {f"report-{i}" for i in range(6)} | {f"report-{i}-swapped" for i in range(6)}
    top = SmartRetriever(reopened, similarity_top_k=1).retrieve("P2 blue circle")[0]
    assert top.node.ref_doc_id == "report-1" and top.node.metadata == {"quarter": 2, "swapped": False}
    assert f"score={top.score:.4f}" in smart.splitlines()[1]


# ---- match evidence --------------------------------------------------------------------


def test_retriever_evidence_on_nodes_kept_out_of_prompts(filter_index: SmartVectorIndex) -> None:
    """evidence=True: each node carries its top matched spans, JSON-serialisable, under metadata["smart_evidence"],
    and neither the embed nor the LLM content shows them (nor the node's other metadata rules change)."""
    import json

    from llama_index.core.schema import MetadataMode

    query = "which reefs host fish species?"
    plain = SmartRetriever(filter_index, similarity_top_k=2).retrieve(query)
    assert all("smart_evidence" not in n.node.metadata for n in plain)  # off by default
    nodes = filter_index.as_retriever(similarity_top_k=2, evidence=True).retrieve(query)
    assert [n.node.node_id for n in nodes] == [n.node.node_id for n in plain]  # same ranking, same scores
    assert [n.score for n in nodes] == pytest.approx([n.score for n in plain])
    top = nodes[0].node
    assert top.ref_doc_id == "d3"
    spans = top.metadata["smart_evidence"]
    assert json.loads(json.dumps(spans)) == spans and 1 <= len(spans) <= 5
    # the row holds the node's embed content (metadata first): spans are moved into node.text
    assert top.text == FILTER_DOCS["d3"][0] != filter_index.smart_index.get([top.node_id])[0].text
    assert all(top.text[s["start"] : s["end"]] == s["text"] for s in spans if s["start"] is not None)
    assert {"reefs", "fish", "species"} <= {s["text"] for s in spans if s["start"] is not None}
    assert spans[0]["share"] >= spans[-1]["share"]
    for node in (n.node for n in nodes):
        assert "smart_evidence" in node.excluded_embed_metadata_keys
        assert "smart_evidence" in node.excluded_llm_metadata_keys
        for mode in (MetadataMode.LLM, MetadataMode.EMBED):
            content = node.get_content(metadata_mode=mode)
            assert "smart_evidence" not in content and "query_tokens" not in content
            assert "author" in content  # the node's own metadata still shows
        assert "smart_evidence" in node.get_content(metadata_mode=MetadataMode.ALL)
    # a query word that matched a metadata value ("author: ann lee") has no span in node.text
    (node,) = SmartRetriever(filter_index, similarity_top_k=1, evidence=True).retrieve("coral written by ann lee")
    spans = {s["text"]: s for s in node.node.metadata["smart_evidence"]}
    assert spans["ann"]["start"] is None and spans["lee"]["end"] is None
    assert spans["Coral"]["start"] == 0 and spans["Coral"]["end"] == 5


def test_retriever_evidence_costs_nothing_when_off(filter_index: SmartVectorIndex, monkeypatch) -> None:
    import smart_retrievers.explain as explain

    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        raise AssertionError("evidence computed while off")

    monkeypatch.setattr(explain, "compact_evidence", counted)
    monkeypatch.setattr(explain, "explain_texts", counted)
    SmartRetriever(filter_index, similarity_top_k=3).retrieve("glaciers carve valleys")
    filter_index.as_retriever(similarity_top_k=3).retrieve("glaciers carve valleys")
    assert calls == []
    with pytest.raises(AssertionError, match="while off"):  # the same calls, on, do go through it
        SmartRetriever(filter_index, similarity_top_k=3, evidence=True).retrieve("glaciers carve valleys")
    with pytest.raises(TypeError, match="evidence must be a bool"):
        SmartRetriever(filter_index, evidence="yes")
