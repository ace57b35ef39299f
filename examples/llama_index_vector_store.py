"""LlamaIndex SmartVectorStore through StorageContext, fully offline:  python examples/llama_index_vector_store.py

Builds a plain ``VectorStoreIndex`` whose storage is a SMART LanceDB table (bundled
all-MiniLM-L6-v2): ``StorageContext.from_defaults(vector_store=SmartVectorStore(...))``. The
store's ``embed_model()`` runs the embedding step on the same model and hands its token states
to the store, so each node is encoded once. Then a query engine (``MockLLM``) with LlamaIndex's
own ``SimilarityPostprocessor`` thresholding SMART's [0, 1] relevance scores, and the same table
reopened with ``VectorStoreIndex.from_vector_store``.
"""

from __future__ import annotations

import tempfile

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters

from smart_retrievers.llama_index import SmartEmbedding, SmartVectorStore

DOCUMENTS = [
    Document(id_="k7", text="Code K7 labels the red star on the 2021 chart.", metadata={"year": 2021}),
    Document(id_="k9", text="Code K9 labelled the red star on the 2019 chart.", metadata={"year": 2019}),
    Document(id_="p2", text="Code P2 labels the blue circle on the 2023 chart.", metadata={"year": 2023}),
    Document(id_="ink", text="Shipping memo: every code is printed in black ink.", metadata={"year": 2024}),
]
QUERY = "which code labels the red star?"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SmartVectorStore(uri=tmp)
        index = VectorStoreIndex.from_documents(
            DOCUMENTS,
            storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=store.embed_model(),
        )
        print(f"query: {QUERY}")
        for hit in index.as_retriever(similarity_top_k=4).retrieve(QUERY):
            print(f"  {hit.node.ref_doc_id:4} relevance={hit.score:.3f}  {hit.node.get_content()}")

        engine = index.as_query_engine(
            llm=MockLLM(),
            similarity_top_k=4,
            node_postprocessors=[SimilarityPostprocessor(similarity_cutoff=0.7)],
        )
        response = engine.query(QUERY)
        print("source nodes:", [n.node.ref_doc_id for n in response.source_nodes], "(relevance >= 0.7)")

        recent = MetadataFilters(filters=[MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE)])
        reopened = VectorStoreIndex.from_vector_store(SmartVectorStore(uri=tmp), embed_model=SmartEmbedding())
        found = reopened.as_retriever(similarity_top_k=1, filters=recent).retrieve(QUERY)
        print("reopened, year >= 2020:", [n.node.ref_doc_id for n in found])


if __name__ == "__main__":
    main()
