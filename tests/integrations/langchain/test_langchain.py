"""LangChain integration: SmartRetriever (with the langchain-tests standard suite) and SmartReranker.

Runs on the real bundled all-MiniLM-L6-v2 (one encoder shared by every test) and LanceDB in tmp_path.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import itertools
import runpy
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="the [langchain] extra (langchain-core) is not installed")
pytest.importorskip("langchain_tests", reason="langchain-tests (the [dev] extra) is not installed")

from encoder_calls import record_document_encodings  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.runnables import RunnableLambda  # noqa: E402
from langchain_tests.integration_tests import RetrieversIntegrationTests  # noqa: E402

import smart_retrievers  # noqa: E402
from smart_retrievers import SmartEncoder, SmartIndex  # noqa: E402
from smart_retrievers.langchain import SmartReranker, SmartRetriever  # noqa: E402
from smart_retrievers.rerank import SmartScorer  # noqa: E402
from smart_retrievers.scoring import relevance  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langchain_rag.py"

CORPUS = [
    Document(
        id="star-1",
        page_content="Code K7 labels the red star on the 2021 chart.",
        metadata={"year": 2021, "topic": "chart"},
    ),
    Document(
        id="star-2",
        page_content="The red star crates leave the warehouse on Monday.",
        metadata={"year": 2019, "topic": "shipping"},
    ),
    Document(
        id="circle-1",
        page_content="Code P2 labels the blue circle on the 2023 chart.",
        metadata={"year": 2023, "topic": "chart"},
    ),
    Document(
        id="faq-1",
        page_content="A star label always sits on the lid of a crate.",
        metadata={"year": 2020, "topic": "faq"},
    ),
    Document(
        id="faq-2",
        page_content="Colour codes fade in sunlight, so store labels indoors.",
        metadata={"year": 2022, "topic": "faq"},
    ),
    Document(
        id="memo-1",
        page_content="Shipping memo: codes are printed in black ink on every label.",
        metadata={"year": 2024, "topic": "shipping"},
    ),
]
QUERY = "which code labels the red star?"


@pytest.fixture(scope="module")
def corpus_index(encoder: SmartEncoder, tmp_path_factory: pytest.TempPathFactory) -> SmartIndex:
    """A read-only index of CORPUS shared by the tests that do not write."""
    index = SmartIndex(str(tmp_path_factory.mktemp("lc_corpus")), encoder=encoder)
    SmartRetriever(index=index).add_documents(CORPUS)
    return index


@pytest.fixture
def retriever(corpus_index: SmartIndex) -> SmartRetriever:
    return SmartRetriever(index=corpus_index, k=3)


@pytest.fixture
def empty_index(encoder: SmartEncoder, tmp_path: Path) -> SmartIndex:
    return SmartIndex(str(tmp_path / "db"), encoder=encoder)


def ids(docs: list[Document]) -> list[str | None]:
    return [doc.id for doc in docs]


# ---- the langchain-tests standard suite ---------------------------------------------


class TestSmartRetrieverStandard(RetrieversIntegrationTests):
    """langchain-tests' RetrieversIntegrationTests, unmodified, on the shared corpus index."""

    @pytest.fixture(autouse=True)
    def _use_corpus(self, corpus_index: SmartIndex) -> None:
        self._index = corpus_index

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return SmartRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": self._index, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


# ---- SmartRetriever -----------------------------------------------------------------


def test_documents_carry_id_and_scores(retriever: SmartRetriever, corpus_index: SmartIndex) -> None:
    docs = retriever.invoke(QUERY)
    assert len(docs) == 3 and docs[0].id == "star-1"
    hits = corpus_index.search(QUERY, k=3)
    assert ids(docs) == [hit.id for hit in hits]
    for doc, hit in zip(docs, hits):
        assert doc.page_content == hit.text
        assert doc.metadata == {
            **hit.metadata,
            "smart_score": hit.score,
            "pooled_score": hit.pooled_score,
            "late_score": hit.late_score,
        }
    scores = [doc.metadata["smart_score"] for doc in docs]
    assert scores == sorted(scores, reverse=True)


async def test_invoke_ainvoke_parity(retriever: SmartRetriever) -> None:
    sync = retriever.invoke(QUERY, k=4, filter={"topic": {"$ne": "faq"}})
    asynchronous = await retriever.ainvoke(QUERY, k=4, filter={"topic": {"$ne": "faq"}})
    assert len(sync) == 4 and ids(sync) == ids(asynchronous)
    assert [d.page_content for d in sync] == [d.page_content for d in asynchronous]
    for a, b in zip(sync, asynchronous):
        assert a.metadata == pytest.approx(b.metadata, abs=1e-6)


async def test_ainvoke_runs_search_off_the_event_loop(
    retriever: SmartRetriever, corpus_index: SmartIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    search_threads = []
    original = corpus_index.search

    def recording_search(*args: Any, **kwargs: Any):
        search_threads.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(corpus_index, "search", recording_search)
    await retriever.ainvoke(QUERY)
    assert search_threads and loop_thread not in search_threads


async def test_batch_abatch_and_stream(retriever: SmartRetriever) -> None:
    queries = [QUERY, "blue circle chart code", "when do crates ship?", "how should labels be stored?"]
    expected = [ids(retriever.invoke(q)) for q in queries]
    assert [ids(docs) for docs in retriever.batch(queries)] == expected
    assert [ids(docs) for docs in await retriever.abatch(queries)] == expected
    assert [ids(chunk) for chunk in retriever.stream(QUERY)] == [expected[0]]
    assert [ids(chunk) async for chunk in retriever.astream(QUERY)] == [expected[0]]


def test_k_and_filter_per_call(corpus_index: SmartIndex) -> None:
    retriever = SmartRetriever(index=corpus_index, k=2, filter={"topic": "chart"})
    assert set(ids(retriever.invoke(QUERY))) == {"star-1", "circle-1"}
    assert ids(retriever.invoke(QUERY, k=1)) == ["star-1"]
    # a per-call filter replaces the default one; {} drops it
    assert ids(retriever.invoke(QUERY, k=5, filter={"topic": "shipping"})) == ids(
        retriever.invoke(QUERY, k=5, filter={"topic": {"$in": ["shipping"]}})
    )
    assert set(ids(retriever.invoke(QUERY, k=5, filter={"topic": "shipping"}))) == {"star-2", "memo-1"}
    assert len(retriever.invoke(QUERY, k=5, filter={})) == 5
    mongo = {"$or": [{"year": {"$gte": 2023}}, {"topic": "faq"}], "year": {"$ne": 2022}}
    assert set(ids(retriever.invoke(QUERY, k=6, filter=mongo))) == {"circle-1", "memo-1", "faq-1"}
    assert retriever.invoke(QUERY, filter={"year": {"$gt": 2030}}) == []


def test_modes_and_weights_per_call(retriever: SmartRetriever) -> None:
    pooled = retriever.invoke(QUERY, mode="pooled")
    assert all(
        d.metadata["late_score"] == 0 and d.metadata["smart_score"] == d.metadata["pooled_score"] for d in pooled
    )
    exhaustive = retriever.invoke(QUERY, mode="exhaustive")
    assert ids(exhaustive) == ids(retriever.invoke(QUERY, candidates=100))
    late_only = retriever.invoke(QUERY, lambda_pool=0.0)
    assert all(d.metadata["smart_score"] == pytest.approx(d.metadata["late_score"]) for d in late_only)


def test_bad_input_gives_clear_errors(corpus_index: SmartIndex, retriever: SmartRetriever) -> None:
    with pytest.raises(ValueError, match=r"Unknown filter operator '\$regex'"):
        SmartRetriever(index=corpus_index, filter={"topic": {"$regex": "c%"}})
    with pytest.raises(ValueError, match=r"Unknown filter operator '\$nor'"):
        retriever.invoke(QUERY, filter={"$nor": [{"topic": "faq"}]})
    # a field no row holds: no match (docs/getting-started.md, "Filters")
    assert retriever.invoke(QUERY, filter={"colour": "red"}) == []
    with pytest.raises(ValueError, match="mode"):
        retriever.invoke(QUERY, mode="dense")
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        retriever.invoke(QUERY, k=0)
    with pytest.raises(ValueError, match="candidates must be an int >= 1"):
        retriever.invoke(QUERY, candidates=0)
    with pytest.raises(ValueError, match="lambda_pool and lambda_late"):
        SmartRetriever(index=corpus_index, lambda_pool=0.0, lambda_late=0.0)
    with pytest.raises(ValueError):
        SmartRetriever(index=corpus_index, mode="dense")
    with pytest.raises(ValueError, match="Extra inputs"):
        SmartRetriever(index=corpus_index, top_k=3)
    with pytest.raises(ValueError, match="index must be a SmartIndex, got str"):
        SmartRetriever(index=str(corpus_index.store.uri))
    with pytest.raises(TypeError, match="unexpected keyword argument 'top_k'"):
        retriever.invoke(QUERY, top_k=3)


def test_ls_params_name_the_retriever_and_model(retriever: SmartRetriever) -> None:
    assert retriever._get_ls_params() == {
        "ls_retriever_name": "smart",
        "ls_vector_store_provider": "LanceDB",
        "ls_embedding_provider": "smart-retrievers",
        "ls_embedding_model": "all-MiniLM-L6-v2",
    }


def test_from_texts_and_from_documents(encoder: SmartEncoder, tmp_path: Path) -> None:
    texts = [doc.page_content for doc in CORPUS]
    metas = [doc.metadata for doc in CORPUS]
    from_texts = SmartRetriever.from_texts(
        texts, metas, ids=ids(CORPUS), uri=str(tmp_path / "a"), encoder=encoder, k=2, mode="exhaustive"
    )
    assert from_texts.k == 2 and from_texts.mode == "exhaustive" and from_texts.index.count() == len(CORPUS)
    from_docs = SmartRetriever.from_documents(CORPUS, uri=str(tmp_path / "b"), encoder=encoder, k=2)
    first = from_texts.invoke(QUERY)
    assert len(first) == 2 and first[0].id == "star-1" and ids(from_docs.invoke(QUERY)) == ids(first)
    with pytest.raises(ValueError):  # retriever fields are validated before anything is written
        SmartRetriever.from_texts(texts, uri=str(tmp_path / "c"), encoder=encoder, k=0)
    assert not (tmp_path / "c" / "smart.lance").exists()


def test_add_documents_upserts_by_id_and_delete(empty_index: SmartIndex) -> None:
    retriever = SmartRetriever(index=empty_index, k=10)
    assert retriever.invoke("anything") == []
    docs = [
        Document(id="a", page_content="code K7 labels the red star"),
        Document(page_content="code P2 labels the blue circle"),
    ]
    before = copy.deepcopy(docs)
    added = retriever.add_documents(docs)
    assert added[0] == "a" and isinstance(added[1], str) and added[1]
    assert docs == before and docs[1].id is None  # inputs are not modified
    assert retriever.add_documents(
        [Document(id="a", page_content="code K7 labels the green square", metadata={"v": 2})]
    ) == ["a"]
    assert empty_index.count() == 2
    found = {doc.id: doc for doc in retriever.invoke("green square")}
    assert set(found) == {"a", added[1]}
    assert found["a"].page_content == "code K7 labels the green square" and found["a"].metadata["v"] == 2
    assert retriever.add_documents([Document(page_content="x")], ids=["explicit"]) == ["explicit"]
    assert retriever.delete(["a", "missing"]) == 1
    assert set(ids(retriever.invoke("code"))) == {added[1], "explicit"}
    with pytest.raises(TypeError, match="sequence of ids"):
        retriever.delete("explicit")


# ---- SmartReranker ------------------------------------------------------------------


def test_reranker_returns_scored_copies_and_never_mutates(encoder: SmartEncoder) -> None:
    reranker = SmartReranker(encoder=encoder, top_n=None)
    docs = [doc.model_copy(deep=True) for doc in reversed(CORPUS)]
    docs.append(Document(page_content="Code K7 labels the red star."))  # no id
    before = copy.deepcopy(docs)
    ranked = reranker.compress_documents(docs, QUERY)
    assert docs == before
    assert len(ranked) == len(docs) and not any(r is d for r in ranked for d in docs)
    assert sorted((d.id or "", d.page_content) for d in ranked) == sorted((d.id or "", d.page_content) for d in docs)
    scores = [doc.metadata["relevance_score"] for doc in ranked]
    assert scores == sorted(scores, reverse=True)
    for doc in ranked:
        original = next(d for d in docs if d.id == doc.id and d.page_content == doc.page_content)
        added = {key: doc.metadata.pop(key) for key in ("relevance_score", "smart_score", "pooled_score", "late_score")}
        assert doc.metadata == original.metadata  # the rest of the metadata is kept as it was
        assert added["smart_score"] == pytest.approx(added["pooled_score"] + added["late_score"])
        assert added["relevance_score"] == pytest.approx(relevance(added["smart_score"]))  # the one [0, 1] scale
    expected = SmartScorer(encoder).score(QUERY, [d.page_content for d in docs])
    assert [d.page_content for d in ranked] == [docs[c.position].page_content for c in expected]
    assert ids(SmartReranker(encoder=encoder, top_n=2).compress_documents(docs, QUERY)) == ids(ranked[:2])


async def test_reranker_empty_input_and_errors(encoder: SmartEncoder, corpus_index: SmartIndex) -> None:
    reranker = SmartReranker(encoder=encoder)
    assert reranker.compress_documents([], QUERY) == []
    assert await reranker.acompress_documents([], QUERY) == []
    with pytest.raises(ValueError, match="lambda_pool and lambda_late"):
        SmartReranker(encoder=encoder, lambda_pool=0.0, lambda_late=0.0)
    with pytest.raises(ValueError):
        SmartReranker(encoder=encoder, top_n=0)
    with pytest.raises(ValueError, match="frozen"):
        reranker.top_n = 5
    with pytest.raises(ValueError, match="encoder must be a SmartEncoder or a vision encoder, got str"):
        SmartReranker(encoder="all-MiniLM-L6-v2")
    other = SmartEncoder.default(name="another-model")
    with pytest.raises(ValueError, match="differs from the index's encoder"):
        SmartReranker(index=corpus_index, encoder=other)


def test_reranker_reuses_stored_states_only_for_matching_text(
    corpus_index: SmartIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = SmartRetriever(index=corpus_index, k=6).invoke(QUERY)
    encoded = record_document_encodings(monkeypatch, corpus_index.encoder)
    ranked = SmartReranker(index=corpus_index, top_n=None).compress_documents(stored, QUERY)
    assert encoded == []  # every document's id and text match a stored row: no forward pass
    assert ids(ranked) == ids(stored)
    assert [d.metadata["smart_score"] for d in ranked] == pytest.approx(
        [d.metadata["smart_score"] for d in stored], abs=1e-5
    )

    # an id the index holds (star-1) with other text (memo-1's): encoded from its own text, so
    # scored as that text freshly encoded (an id-less copy) and as the row that stores it, never as star-1
    memo = next(d for d in stored if d.id == "memo-1")
    impostor = Document(id="star-1", page_content=memo.page_content)
    mixed = SmartReranker(index=corpus_index, top_n=None).compress_documents([stored[1], impostor], QUERY)
    assert encoded == [impostor.page_content]  # only the impostor is encoded
    scored = next(d for d in mixed if d.page_content == impostor.page_content)
    fresh = SmartReranker(index=corpus_index, top_n=None).compress_documents(
        [Document(page_content=memo.page_content)], QUERY
    )
    assert encoded == [impostor.page_content] * 2
    assert scored.id == "star-1" and scored.metadata == pytest.approx(fresh[0].metadata, abs=1e-5)
    assert scored.metadata["smart_score"] == pytest.approx(memo.metadata["smart_score"], abs=1e-3)
    assert scored.metadata["smart_score"] < stored[0].metadata["smart_score"] - 0.3


async def test_reranker_as_lcel_step(encoder: SmartEncoder, retriever: SmartRetriever) -> None:
    reranker = SmartReranker(encoder=encoder, top_n=2)
    base = SmartRetriever(index=retriever.index, k=5, mode="pooled")
    expected = ids(reranker.compress_documents(base.invoke(QUERY), QUERY))
    chain = reranker.wrap(base)
    assert ids(chain.invoke(QUERY)) == expected
    assert ids(await chain.ainvoke(QUERY)) == expected
    assert [ids(docs) for docs in chain.batch([QUERY, QUERY])] == [expected, expected]
    assert [ids(docs) for docs in chain.stream(QUERY)] == [expected]
    # the same step written by hand, as a RunnableLambda after any retriever
    manual = RunnableLambda(lambda q: reranker.compress_documents(base.invoke(q), q))
    assert ids(manual.invoke(QUERY)) == expected
    formatted = (chain | RunnableLambda(lambda docs: "\n".join(d.page_content for d in docs))).invoke(QUERY)
    assert formatted.count("\n") == 1


def test_reranker_in_contextual_compression_retriever(encoder: SmartEncoder, retriever: SmartRetriever) -> None:
    classic = pytest.importorskip(
        "langchain_classic.retrievers", reason="langchain-classic (optional) is not installed"
    )
    base = SmartRetriever(index=retriever.index, k=5, mode="pooled")
    reranker = SmartReranker(encoder=encoder, top_n=2)
    compression = classic.ContextualCompressionRetriever(base_compressor=reranker, base_retriever=base)
    docs = compression.invoke(QUERY)
    assert ids(docs) == ids(reranker.compress_documents(base.invoke(QUERY), QUERY))
    assert all("relevance_score" in d.metadata for d in docs)
    assert ids(asyncio.run(compression.ainvoke(QUERY))) == ids(docs)


# ---- binding: late interaction separates notes a pooled vector confuses ------------------

CODES, COLOURS, SHAPES = ("K7", "P2"), ("red", "blue"), ("star", "circle")
OTHER = {"K7": "P2", "P2": "K7", "red": "blue", "blue": "red", "star": "circle", "circle": "star"}


def binding_corpus() -> tuple[list[str], list[set[tuple[str, str, str]]]]:
    """Eight two-sentence legend notes with the same words; only which code labels which shape differs."""
    texts, bindings = [], []
    for code, colour, shape in itertools.product(("K7",), COLOURS, SHAPES):
        first, second = (code, colour, shape), (OTHER[code], OTHER[colour], OTHER[shape])
        for a, b in ((first, second), (second, first)):
            texts.append(f"Code {a[0]} labels the {a[1]} {a[2]}. Code {b[0]} labels the {b[1]} {b[2]}.")
            bindings.append({first, second})
    return texts, bindings


def test_reranker_moves_the_binding_document_up(encoder: SmartEncoder, tmp_path: Path) -> None:
    texts, bindings = binding_corpus()
    # exact float16 states: this measures the method on eight near-identical notes; codecs are tested in test_codec
    index = SmartIndex(str(tmp_path / "binding"), encoder=encoder, compression="none")
    index.add(texts, ids=[f"note-{i}" for i in range(len(texts))])
    pooled_retriever = SmartRetriever(index=index, k=len(texts), mode="pooled")
    reranker = SmartReranker(index=index, top_n=None)

    def rank_and_margin(docs: list[Document], key: str, relevant: set[str]) -> tuple[int, float]:
        rank = next(i for i, doc in enumerate(docs, 1) if doc.id in relevant)
        best_relevant = max(d.metadata[key] for d in docs if d.id in relevant)
        best_other = max(d.metadata[key] for d in docs if d.id not in relevant)
        return rank, best_relevant - best_other

    pooled, smart = {}, {}  # binding -> (rank of the first relevant note, best relevant - best other score)
    for binding in itertools.product(CODES, COLOURS, SHAPES):
        query = "code {} labels the {} {}".format(*binding)
        relevant = {f"note-{i}" for i, b in enumerate(bindings) if binding in b}
        candidates = pooled_retriever.invoke(query)
        reranked = reranker.compress_documents(candidates, query)
        assert sorted(ids(reranked)) == sorted(ids(candidates))  # ids kept
        pooled[binding] = rank_and_margin(candidates, "pooled_score", relevant)
        smart[binding] = rank_and_margin(reranked, "smart_score", relevant)
    # Measured (all-MiniLM-L6-v2): rank sum 16 -> 12, mean margin +0.0007 -> +0.0081, margin up for 8/8 queries.
    assert sum(rank for rank, _ in smart.values()) < sum(rank for rank, _ in pooled.values())
    assert sum(m for _, m in smart.values()) / 8 - sum(m for _, m in pooled.values()) / 8 > 0.004
    assert sum(smart[b][1] > pooled[b][1] for b in smart) >= 6
    # pooled: the red *star* note edges out the red circle one (-0.0006); SMART: the red circle note wins (+0.0101)
    red_circle = ("K7", "red", "circle")
    assert smart[red_circle][0] == 1 and smart[red_circle][1] > pooled[red_circle][1] + 0.005


# ---- packaging ----------------------------------------------------------------------


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module and not node.level
    }


def test_core_never_imports_langchain_and_integration_needs_only_core() -> None:
    package = Path(smart_retrievers.__file__).parent
    integration = package / "integrations" / "langchain"
    for path in package.rglob("*.py"):
        if integration not in path.parents:
            assert not [m for m in imported_modules(path) if m.startswith("langchain")], path
    langchain_imports = {
        m.split(".")[0]
        for path in integration.glob("*.py")
        for m in imported_modules(path)
        if m.startswith("langchain")
    }
    assert langchain_imports == {"langchain_core"}


# ---- the example --------------------------------------------------------------------


def test_langchain_rag_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "== SmartRetriever RAG chain" in out and "== InMemoryVectorStore + SmartReranker RAG chain" in out
    assert "InMemoryVectorStore (pooled cosine) order: note-1," in out
    retriever_block, reranker_block = out.split("== ")[1:]
    for block in (retriever_block, reranker_block):
        assert "  1. note-3 " in block and "A: note-3 says" in block
    assert "memo-1" not in retriever_block.split("InMemoryVectorStore")[0]  # filtered out by year
    assert out.count("relevance_score=") == 3 and out.count("smart_score=") == 3


# ---- one reranker rule, one index opener ---------------------------------------------------------


def test_reranker_takes_model_with_the_index_of_that_model(
    encoder: SmartEncoder, corpus_index: SmartIndex, tmp_path: Path
) -> None:
    """model= with index= is SmartScorer.create's rule, as for LlamaIndex's SmartRerank: same fingerprint, accepted."""
    reranker = SmartReranker(model="all-MiniLM-L6-v2", index=corpus_index, top_n=2)
    assert reranker._scorer.encoder is corpus_index.encoder  # stored token states are reused
    ranked = reranker.compress_documents(CORPUS, QUERY)
    assert [d.id for d in ranked] == [
        d.id for d in SmartReranker(index=corpus_index, top_n=2).compress_documents(CORPUS, QUERY)
    ]
    other = SmartIndex(str(tmp_path / "other"), encoder=SmartEncoder.default(name="another-model"))
    with pytest.raises(ValueError, match="model='all-MiniLM-L6-v2' differs from the index's encoder"):
        SmartReranker(model="all-MiniLM-L6-v2", index=other)


def test_from_texts_passes_index_options_such_as_storage_options(
    encoder: SmartEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lancedb

    seen: list[dict] = []
    connect = lancedb.connect

    def recording_connect(uri, **kwargs):
        seen.append(kwargs)
        return connect(uri, **kwargs)

    monkeypatch.setattr(lancedb, "connect", recording_connect)
    options = {"timeout": "30s"}
    retriever = SmartRetriever.from_texts(
        [d.page_content for d in CORPUS],
        ids=ids(CORPUS),
        uri=str(tmp_path / "db"),
        encoder=encoder,
        k=1,
        storage_options=options,
        candidates=4,
    )
    assert seen and seen[0]["storage_options"] == options
    assert retriever.k == 1 and retriever.candidates == 4  # retriever fields stay the retriever's
    assert len(retriever.invoke(QUERY)) == 1 and retriever.index.count() == len(CORPUS)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['colour'\]"):
        SmartRetriever.from_texts(["x"], uri=str(tmp_path / "refused"), encoder=encoder, colour="red")
    assert not (tmp_path / "refused").exists()  # refused before anything is opened
