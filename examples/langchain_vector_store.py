"""LangChain SmartVectorStore, fully offline:  python examples/langchain_vector_store.py

Stores a few notes in a SMART LanceDB table (bundled all-MiniLM-L6-v2) through LangChain's
``VectorStore`` interface, then retrieves through ``as_retriever``: plain SMART similarity, a
relevance-score threshold, and MMR (maximal marginal relevance, on the pooled vectors) that
drops the near-duplicate notes a similarity search returns together.
"""

from __future__ import annotations

import tempfile

from langchain_core.documents import Document

from smart_retrievers.langchain import SmartVectorStore

NOTES = {
    "k7-a": "Code K7 labels the red star on the 2021 chart.",
    "k7-b": "On the 2021 chart, the red star is labelled with code K7.",
    "k7-c": "The 2021 chart labels the red star K7.",
    "p2": "Code P2 labels the blue circle on the 2023 chart.",
    "ink": "Shipping memo: every code is printed in black ink on the lid.",
    "faq": "A star label always sits on the lid of a crate.",
}
QUERY = "which code labels the red star?"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SmartVectorStore.from_documents(
            [Document(id=i, page_content=t, metadata={"kind": i.split("-")[0]}) for i, t in NOTES.items()], uri=tmp
        )
        print(f"query: {QUERY}")
        for doc, score in store.similarity_search_with_relevance_scores(QUERY, k=3):
            print(f"  similarity: {doc.id:5} relevance={score:.3f}  {doc.page_content}")

        threshold = store.as_retriever(
            search_type="similarity_score_threshold", search_kwargs={"k": 6, "score_threshold": 0.75}
        )
        print("score_threshold 0.75 retriever:", [doc.id for doc in threshold.invoke(QUERY)])

        mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 3, "fetch_k": 6, "lambda_mult": 0.3})
        print("mmr retriever:", [doc.id for doc in mmr.invoke(QUERY)])

        filtered = store.as_retriever(search_kwargs={"k": 2, "filter": {"kind": {"$ne": "k7"}}})
        print("filtered retriever:", [doc.id for doc in filtered.invoke(QUERY)])


if __name__ == "__main__":
    main()
