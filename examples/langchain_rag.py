"""LangChain RAG with SMART, fully offline:  python examples/langchain_rag.py

Chain 1: SmartRetriever -> prompt -> FakeListChatModel -> StrOutputParser.
Chain 2: an existing single-vector retriever (langchain-core's InMemoryVectorStore holding the same
model's pooled embeddings), re-ranked by SmartReranker, then the same prompt, model and parser.
Both print the retrieved documents with their scores, then the (fake) answer.
"""

from __future__ import annotations

import tempfile

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableParallel, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from smart_retrievers import SmartEncoder
from smart_retrievers.langchain import SmartReranker, SmartRetriever

# Legend notes that share almost every word; only the bindings (which code labels which shape) differ.
NOTES = [
    "Code K7 labels the red star. Code P2 labels the blue circle.",
    "Code P2 labels the blue circle. Code K7 labels the red star.",
    "Code K7 labels the red circle. Code P2 labels the blue star.",
    "Code P2 labels the blue star. Code K7 labels the red circle.",
    "Code K7 labels the blue star. Code P2 labels the red circle.",
    "Code P2 labels the red circle. Code K7 labels the blue star.",
    "Code K7 labels the blue circle. Code P2 labels the red star.",
    "Code P2 labels the red star. Code K7 labels the blue circle.",
]
DOCUMENTS = [
    *(Document(id=f"note-{i}", page_content=text, metadata={"year": 2020 + i}) for i, text in enumerate(NOTES, 1)),
    Document(
        id="memo-1", page_content="Old memo: code K7 once labelled the red circle crates.", metadata={"year": 2015}
    ),
]
QUESTION = "code K7 labels the red circle"
ANSWER = "note-3 says that code K7 labels the red circle."

PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Find the note that states the claim; cite its id.\n\nContext:\n{context}"), ("human", "{question}")]
)


class PooledEmbeddings(Embeddings):
    """The model's plain single-vector embeddings: what an existing vector store would hold."""

    def __init__(self, encoder: SmartEncoder) -> None:
        self.encoder = encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [e.pooled.tolist() for e in self.encoder.encode_documents(texts, show_progress=False)]

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode_queries([text], show_progress=False)[0].pooled.tolist()


def format_docs(docs: list[Document]) -> str:
    return "\n".join(f"[{doc.id}] {doc.page_content}" for doc in docs)


def rag_chain(retriever: Runnable[str, list[Document]], answer: str) -> Runnable[str, dict]:
    """question -> {"question", "docs", "answer"}: retrieve, prompt, fake chat model, parse."""
    llm = FakeListChatModel(responses=[answer])
    generate = (
        (lambda x: {"context": format_docs(x["docs"]), "question": x["question"]}) | PROMPT | llm | StrOutputParser()
    )
    return RunnableParallel(docs=retriever, question=RunnablePassthrough()).assign(answer=generate)


def show(title: str, result: dict, score_key: str) -> None:
    print(f"\n== {title}\nQ: {result['question']}")
    for rank, doc in enumerate(result["docs"], 1):
        meta = doc.metadata
        print(
            f"  {rank}. {doc.id:<7} {score_key}={meta[score_key]:.4f} pooled={meta['pooled_score']:.4f} late={meta['late_score']:.4f}  {doc.page_content}"
        )
    print(f"A: {result['answer']}")


def main() -> None:
    encoder = SmartEncoder.default()
    with tempfile.TemporaryDirectory(prefix="smart_db_") as db:
        # Chain 1: SmartRetriever in place of vectorstore.as_retriever(), with a metadata filter.
        # compression="none": these notes differ only in which code labels which shape, a margin the
        # default 16-byte token codes blur; on real corpora they cost <= 0.002 nDCG@10 (BENCHMARKS.md)
        retriever = SmartRetriever.from_documents(
            DOCUMENTS, uri=db, encoder=encoder, k=3, filter={"year": {"$gte": 2020}}, compression="none"
        )
        show("SmartRetriever RAG chain", rag_chain(retriever, ANSWER).invoke(QUESTION), "smart_score")

        # Chain 2: keep an existing retriever, put SmartReranker behind it.
        base = InMemoryVectorStore.from_documents(DOCUMENTS, PooledEmbeddings(encoder)).as_retriever(
            search_kwargs={"k": 8}
        )
        print("\nInMemoryVectorStore (pooled cosine) order:", ", ".join(doc.id for doc in base.invoke(QUESTION)))
        reranked = SmartReranker(encoder=encoder, top_n=3).wrap(base)
        show(
            "InMemoryVectorStore + SmartReranker RAG chain",
            rag_chain(reranked, ANSWER).invoke(QUESTION),
            "relevance_score",
        )


if __name__ == "__main__":
    main()
