"""LlamaIndex RAG on SMART, offline: SmartVectorIndex + SmartRetriever, and SmartRerank after a VectorStoreIndex.

Runs on the bundled all-MiniLM-L6-v2 with LlamaIndex's MockLLM (no API key, no network):

    python examples/llama_index_rag.py [--db DIR]

The corpus is :func:`smart_retrievers.sample_corpus.binding_corpus`: warehouse reports, each with a
"swapped twin" that uses the same words but binds the codes to the other items.
"""

from __future__ import annotations

import argparse
import tempfile

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from smart_retrievers import SmartEncoder
from smart_retrievers.llama_index import SmartRerank, SmartRetriever, SmartVectorIndex
from smart_retrievers.sample_corpus import binding_corpus

QUERY = "P2 blue circle"


class PooledEmbedding(BaseEmbedding):
    """A plain single-vector LlamaIndex embed model: the encoder's pooled embedding only."""

    _encoder: SmartEncoder = PrivateAttr()

    def __init__(self, encoder: SmartEncoder) -> None:
        super().__init__(model_name=encoder.name)
        self._encoder = encoder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encoder.encode_queries([query], show_progress=False)[0].pooled.tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [e.pooled.tolist() for e in self._encoder.encode_documents(texts, show_progress=False)]


def documents() -> list[Document]:
    """The sample reports as Documents; their metadata is filterable but not embedded."""
    texts, metadata, _ = binding_corpus()
    return [
        Document(id_=doc_id, text=text, metadata=metadata[doc_id], excluded_embed_metadata_keys=list(metadata[doc_id]))
        for doc_id, text in texts.items()
    ]


def show(title: str, nodes: list[NodeWithScore]) -> None:
    print(f"\n{title}")
    for rank, n in enumerate(nodes, 1):
        parts = (
            f" pooled={n.pooled_score:.4f} late={n.late_score:.4f}"
            if getattr(n, "late_score", None) is not None
            else ""
        )
        print(f"  {rank}. {n.node.ref_doc_id:<17} score={n.score:.4f}{parts}  ...{n.node.get_content()[-62:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="LanceDB directory (default: a temporary directory)")
    args = parser.parse_args()
    db = args.db or tempfile.mkdtemp(prefix="smart_db_")
    llm = MockLLM()  # swap in any LlamaIndex LLM; MockLLM keeps the example offline
    docs = documents()

    # 1. SMART index (LanceDB) + SmartRetriever in a RetrieverQueryEngine.
    # compression="none": these reports differ only in which code labels which shape, a margin the
    # default 16-byte token codes blur; on real corpora they cost <= 0.002 nDCG@10 (BENCHMARKS.md)
    index = SmartVectorIndex.from_documents(docs, uri=db, compression="none")
    print(f"indexed {index.smart_index.count()} nodes from {len(docs)} documents into {db}")
    print(f"query: {QUERY!r}")
    engine = RetrieverQueryEngine.from_args(SmartRetriever(index, similarity_top_k=3), llm=llm)
    show("SmartRetriever (SMART: pooled cosine + late interaction):", engine.query(QUERY).source_nodes)

    filters = MetadataFilters(filters=[MetadataFilter(key="quarter", value=3, operator=FilterOperator.GTE)])
    filtered = index.as_query_engine(llm=llm, similarity_top_k=2, filters=filters)
    show("index.as_query_engine(filters=quarter >= 3):", filtered.query(QUERY).source_nodes)

    # 2. Any existing retriever, then SmartRerank as a node postprocessor.
    encoder = index.smart_index.encoder
    vector_index = VectorStoreIndex.from_documents(docs, embed_model=PooledEmbedding(encoder))
    plain = vector_index.as_query_engine(llm=llm, similarity_top_k=6)
    show("VectorStoreIndex alone (single-vector cosine):", plain.query(QUERY).source_nodes[:3])
    reranked = vector_index.as_query_engine(
        llm=llm, similarity_top_k=6, node_postprocessors=[SmartRerank(top_n=3, encoder=encoder)]
    )
    show("VectorStoreIndex top 6 -> SmartRerank top 3:", reranked.query(QUERY).source_nodes)


if __name__ == "__main__":
    main()
