"""LangChain SmartVectorStore and SmartEmbeddings: the langchain-tests standard suite, unmodified, and SMART's own checks.

Real bundled all-MiniLM-L6-v2 (the session encoder) and LanceDB tables in tmp dirs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("langchain_core", reason="the [langchain] extra (langchain-core) is not installed")
pytest.importorskip("langchain_tests", reason="langchain-tests (the [dev] extra) is not installed")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever  # noqa: E402
from langchain_tests.integration_tests import VectorStoreIntegrationTests  # noqa: E402

from smart_retrievers import SmartEncoder, SmartIndex  # noqa: E402
from smart_retrievers.langchain import SmartEmbeddings, SmartVectorStore  # noqa: E402
from smart_retrievers.scoring import relevance  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "langchain_vector_store.py"

CORPUS = [
    Document(id="star-1", page_content="Code K7 labels the red star on the 2021 chart.", metadata={"year": 2021}),
    Document(id="star-2", page_content="Code K7 labels the red star on the 2021 chart!", metadata={"year": 2021}),
    Document(id="circle-1", page_content="Code P2 labels the blue circle on the 2023 chart.", metadata={"year": 2023}),
    Document(id="faq-1", page_content="A star label always sits on the lid of a crate.", metadata={"year": 2020}),
    Document(id="memo-1", page_content="Shipping memo: codes are printed in black ink.", metadata={"year": 2024}),
]
QUERY = "which code labels the red star?"


# ---- the standard suite ---------------------------------------------------------------


class TestSmartVectorStoreStandard(VectorStoreIntegrationTests):
    """langchain-tests' VectorStoreIntegrationTests, unmodified (sync, async and get_by_ids)."""

    @pytest.fixture
    def vectorstore(self, encoder: SmartEncoder, tmp_path: Path) -> Iterator[VectorStore]:
        store = SmartVectorStore(uri=str(tmp_path / "db"), encoder=encoder)
        try:
            yield store
        finally:
            store.index.delete_all()


# ---- SMART's own ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(encoder: SmartEncoder, tmp_path_factory: pytest.TempPathFactory) -> SmartVectorStore:
    """A read-only store of CORPUS (float16 states: exact scores)."""
    return SmartVectorStore.from_documents(
        CORPUS, uri=str(tmp_path_factory.mktemp("lc_store")), encoder=encoder, compression="none"
    )


def test_similarity_search_is_smart_and_returns_clean_documents(store: SmartVectorStore) -> None:
    docs = store.similarity_search(QUERY, k=3)
    hits = store.index.search(QUERY, k=3)
    assert [d.id for d in docs] == [h.id for h in hits]
    assert docs[0].id in {"star-1", "star-2"}
    assert docs[0].metadata == {"year": 2021}  # stored metadata only: no score keys
    filtered = store.similarity_search(QUERY, k=5, filter={"year": {"$gte": 2022}})
    assert {d.id for d in filtered} == {"circle-1", "memo-1"}
    pooled = store.similarity_search(QUERY, k=5, mode="pooled")
    assert [d.id for d in pooled] == [h.id for h in store.index.search(QUERY, k=5, mode="pooled")]
    with pytest.raises(TypeError, match="unexpected search arguments"):
        store.similarity_search(QUERY, k=2, score_threshold=0.5)


def test_scores_and_relevance(store: SmartVectorStore) -> None:
    with_score = store.similarity_search_with_score(QUERY, k=5)
    hits = store.index.search(QUERY, k=5)
    # one scale: both give the relevance in [0, 1] (the fused score / 2 with the default weights)
    assert [(d.id, s) for d, s in with_score] == [(h.id, h.relevance) for h in hits]
    assert hits[0].score > 1.0 and with_score[0][1] == pytest.approx(hits[0].score / 2.0, abs=1e-6)
    rel = store.similarity_search_with_relevance_scores(QUERY, k=5)
    assert [d.id for d, _ in rel] == [d.id for d, _ in with_score]
    for (_, scored), (_, r) in zip(with_score, rel):
        assert r == pytest.approx(scored, abs=1e-6)
        assert 0.0 <= r <= 1.0
    # the relevance function LangChain's base class would use agrees
    assert store._select_relevance_score_fn()(with_score[0][1]) == pytest.approx(rel[0][1])
    # per-call weights: the mapping follows them (lambda_late=0: the pooled cosine)
    pooled_rel = store.similarity_search_with_relevance_scores(QUERY, k=2, lambda_late=0.0)
    top = store.index.search(QUERY, k=2, lambda_late=0.0)
    assert [r for _, r in pooled_rel] == pytest.approx([max(0.0, h.pooled_score) for h in top], abs=1e-6)
    # a threshold in [0, 1] keeps exactly the documents above it
    threshold = (rel[1][1] + rel[2][1]) / 2
    kept = store.similarity_search_with_relevance_scores(QUERY, k=5, score_threshold=threshold)
    assert [d.id for d, _ in kept] == [d.id for d, _ in rel[:2]]


def test_retrievers_by_search_type(store: SmartVectorStore) -> None:
    similarity = store.as_retriever(search_kwargs={"k": 2})
    assert isinstance(similarity, VectorStoreRetriever)
    assert [d.id for d in similarity.invoke(QUERY)] == [d.id for d in store.similarity_search(QUERY, k=2)]
    rel = store.similarity_search_with_relevance_scores(QUERY, k=5)
    threshold = store.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"k": 5, "score_threshold": rel[2][1] - 1e-6}
    )
    assert [d.id for d in threshold.invoke(QUERY)] == [d.id for d, _ in rel[:3]]
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 5, "lambda_mult": 0.1})
    mmr_ids = [d.id for d in mmr.invoke(QUERY)]
    # star-1 and star-2 are near-duplicates: diversity keeps only one of them
    assert len(mmr_ids) == 2 and len({"star-1", "star-2"} & set(mmr_ids)) == 1
    plain = store.max_marginal_relevance_search(QUERY, k=2, fetch_k=5, lambda_mult=1.0)
    assert [d.id for d in plain] == [d.id for d in store.similarity_search(QUERY, k=2, mode="pooled")]


def test_mmr_matches_langchains_own_mmr_on_pooled_vectors(store: SmartVectorStore) -> None:
    from langchain_core.vectorstores.utils import maximal_marginal_relevance

    query = np.asarray(store.embeddings.embed_query(QUERY))
    ids = [d.id for d in CORPUS]
    vectors = np.asarray(store.embeddings.embed_documents([d.page_content for d in CORPUS]))
    order = np.argsort(-(vectors @ query), kind="stable")
    expected = maximal_marginal_relevance(query, list(vectors[order]), lambda_mult=0.3, k=3)
    got = store.max_marginal_relevance_search(QUERY, k=3, fetch_k=5, lambda_mult=0.3)
    assert [d.id for d in got] == [ids[order[i]] for i in expected]
    by_vector = store.max_marginal_relevance_search_by_vector(query.tolist(), k=3, fetch_k=5, lambda_mult=0.3)
    assert [d.id for d in by_vector] == [d.id for d in got]


def test_search_by_vector_is_pooled(store: SmartVectorStore) -> None:
    vector = store.embeddings.embed_query(QUERY)
    docs = store.similarity_search_by_vector(vector, k=3)
    assert [d.id for d in docs] == [h.id for h in store.index.search(QUERY, k=3, mode="pooled")]
    scored = store.similarity_search_with_score_by_vector(vector, k=1, filter={"year": 2023})
    assert [d.id for d, _ in scored] == ["circle-1"]
    expected = float(np.dot(vector, store.embeddings.embed_documents([CORPUS[2].page_content])[0]))
    assert scored[0][1] == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="384 finite floats"):
        store.similarity_search_by_vector([0.1, 0.2], k=1)


def test_embeddings_are_the_stored_pooled_vectors(encoder: SmartEncoder, store: SmartVectorStore) -> None:
    emb = SmartEmbeddings(encoder)
    vecs = emb.embed_documents(["Code K7 labels the red star on the 2021 chart."])
    stored = store.index.store.get(["star-1"], columns=["id", "vector"]).column("vector").to_pylist()[0]
    np.testing.assert_allclose(vecs[0], stored, atol=1e-6)
    assert np.linalg.norm(emb.embed_query(QUERY)) == pytest.approx(1.0, abs=1e-5)
    assert asyncio.run(emb.aembed_query(QUERY)) == pytest.approx(emb.embed_query(QUERY), abs=1e-6)


def test_writes_upsert_and_delete(encoder: SmartEncoder, tmp_path: Path) -> None:
    store = SmartVectorStore(uri=str(tmp_path / "db"), encoder=encoder)
    docs = [Document(id="a", page_content="alpha", metadata={"n": 1}), Document(page_content="beta")]
    ids = store.add_documents(docs)
    assert ids[0] == "a" and len(ids[1]) == 32 and docs[1].id is None  # input not modified
    assert store.add_texts(["alpha two"], [{"n": 2}], ids=["a"]) == ["a"]
    assert store.index.count() == 2
    assert store.get_by_ids(["a", "nope", ids[1]]) == [
        Document(id="a", page_content="alpha two", metadata={"n": 2}),
        Document(id=ids[1], page_content="beta", metadata={}),
    ]
    assert store.delete(["a", "nope"]) is True and store.index.count() == 1
    with pytest.raises(ValueError, match="delete_all"):
        store.delete()
    with pytest.raises(TypeError):
        store.delete("a")  # a single string is refused, never split
    assert asyncio.run(store.aadd_texts(["gamma"], ids=["g"])) == ["g"]
    assert [d.id for d in asyncio.run(store.asimilarity_search("gamma", k=1))] == ["g"]
    assert [d.id for d in asyncio.run(store.amax_marginal_relevance_search("gamma", k=1))] == ["g"]
    assert asyncio.run(store.adelete(["g"])) is True


def test_from_texts_embedding_argument(encoder: SmartEncoder, tmp_path: Path) -> None:
    store = SmartVectorStore.from_texts(["one", "two"], SmartEmbeddings(encoder), ids=["1", "2"], uri=str(tmp_path))
    assert store.index.encoder is encoder and store.index.count() == 2
    with pytest.raises(TypeError, match="own SMART encoder"):
        SmartVectorStore.from_texts(["x"], DeterministicFakeEmbedding(size=6), uri=str(tmp_path / "other"))
    with pytest.raises(ValueError, match="not both"):
        SmartVectorStore(uri=str(tmp_path), index=store.index)
    shared = SmartVectorStore(index=SmartIndex(str(tmp_path), encoder=encoder))
    assert [d.id for d in shared.similarity_search("two", k=1)] == ["2"]


def test_persists_across_processes(encoder: SmartEncoder, tmp_path: Path, other_process) -> None:
    SmartVectorStore.from_documents(CORPUS, uri=str(tmp_path), encoder=encoder)
    code = (
        "import json, sys\n"
        "from smart_retrievers.langchain import SmartVectorStore\n"
        "store = SmartVectorStore(uri=sys.argv[1])\n"
        "docs = store.similarity_search_with_relevance_scores(sys.argv[2], k=2, filter={'year': 2021})\n"
        "got = store.get_by_ids(['memo-1'])\n"
        "print(json.dumps([[d.id, d.metadata, round(r, 6)] for d, r in docs] + [[got[0].id, got[0].page_content]]))\n"
    )
    run = other_process.run(["-c", code, tmp_path, QUERY]).check()
    rows = json.loads(run.stdout.strip().splitlines()[-1])
    here = SmartVectorStore(uri=str(tmp_path), encoder=encoder).similarity_search_with_relevance_scores(
        QUERY, k=2, filter={"year": 2021}
    )
    assert [r[0] for r in rows[:2]] == [d.id for d, _ in here] and {r[0] for r in rows[:2]} == {"star-1", "star-2"}
    assert [r[2] for r in rows[:2]] == pytest.approx([r for _, r in here], abs=1e-5)
    assert rows[2] == ["memo-1", CORPUS[4].page_content]


def test_relevance_function() -> None:
    assert relevance(1.71) == pytest.approx(0.855)
    assert relevance(-0.3) == 0.0 and relevance(2.5) == 1.0
    assert relevance(0.6, lambda_pool=1.0, lambda_late=0.0) == pytest.approx(0.6)
    assert relevance(np.array([0.5, 3.0]), 0.5, 1.5).tolist() == pytest.approx([0.25, 1.0])
    with pytest.raises(ValueError):
        relevance(1.0, 0.0, 0.0)


def test_example_runs(other_process) -> None:
    run = other_process.run([EXAMPLE]).check()
    assert "mmr retriever:" in run.stdout


def test_documents_never_carry_llama_index_node_data(encoder: SmartEncoder, tmp_path: Path) -> None:
    """On a table LlamaIndex writes too, the store's documents hold the user's metadata only (one converter)."""
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    from smart_retrievers.filters import LLAMA_INDEX_KEY
    from smart_retrievers.llama_index import SmartVectorIndex

    node = TextNode(
        id_="k7",
        text="Code K7 labels the red star.",
        metadata={"year": 2021},
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="chart")},
    )
    shared = SmartVectorIndex([node], uri=str(tmp_path), encoder=encoder).smart_index
    assert LLAMA_INDEX_KEY in shared.get(["k7"])[0].metadata  # the table holds LlamaIndex's node data
    store = SmartVectorStore(index=shared)
    vector = store.embeddings.embed_query(QUERY)
    docs = [
        *store.get_by_ids(["k7"]),
        *store.similarity_search(QUERY, k=1),
        *(doc for doc, _ in store.similarity_search_with_score(QUERY, k=1)),
        *store.similarity_search_by_vector(vector, k=1),
        *store.max_marginal_relevance_search(QUERY, k=1),
    ]
    assert [(doc.id, doc.metadata) for doc in docs] == [("k7", {"year": 2021})] * 5
