"""The LangChain reranker (document compressor): SMART scores for the documents of any retriever."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from .documents import document_image, warn_reserved
from .retriever import index_field

if TYPE_CHECKING:
    from ...index import SmartIndex

__all__ = ["RELEVANCE_KEYS", "SmartReranker"]

RELEVANCE_KEYS = ("relevance_score", "smart_score", "pooled_score", "late_score")
"""Metadata keys of a reranked document's relevance in [0, 1] and its raw fused, pooled and late scores."""


def _encoder(value: Any) -> Any:
    from ...encoding import Encoder

    if not isinstance(value, Encoder):
        raise ValueError(f"encoder must be a SmartEncoder or a vision encoder, got {type(value).__name__}")  # noqa: TRY004 (as above)
    return value


class SmartReranker(BaseDocumentCompressor):
    """Re-rank the documents of any retriever with SMART late interaction.

    ``compress_documents`` returns copies of the documents (the inputs are never modified),
    keeping ``id``, best first by the fused score, cut to ``top_n``, with
    ``metadata["relevance_score"]`` (the relevance in [0, 1], :func:`~smart_retrievers.scoring.relevance`:
    the one scale of every score the package gives a framework), and the raw scores
    ``metadata["smart_score"]`` (fused), ``metadata["pooled_score"]`` and ``metadata["late_score"]``.

    Scoring is :class:`~smart_retrievers.rerank.SmartScorer`'s: documents are encoded once and
    kept in an LRU cache (keyed by text). With an ``index``, documents whose ``id`` the index
    holds with the same text (and, for an image document, the same image location) reuse its
    stored token states, without a forward pass. Image documents (``metadata["image_path"]`` or
    ``metadata["image_url"]``) are scored on their image, which needs a vision encoder.

    The fields are fixed after construction (the model is frozen): build a new reranker to
    change them.

    Each call is a run of its own, named ``SmartReranker`` (``on_chain_start`` / ``on_chain_end``
    in ``astream_events``, a child run in LangSmith), also inside ``ContextualCompressionRetriever``.

    Args:
        top_n: how many documents to return (None: all of them).
        model: the model to load and score with, as other rerankers take it: a hub id or a
            local directory (text or vision, through :func:`~smart_retrievers.encoders.load_encoder`);
            ``"all-MiniLM-L6-v2"`` is the bundled model. Default: the index's encoder, else the
            bundled model. With ``index``, it must be the index's model (same fingerprint):
            :meth:`~smart_retrievers.rerank.SmartScorer.create`.
        device: the device of the model loaded here (``model=`` or the bundled one).
        lambda_pool / lambda_late: fusion weights.
        lambda_lex: weight of BM25 evidence among the documents (0, the default: SMART alone; e.g. 0.5
            as "hybrid" search): see :class:`~smart_retrievers.rerank.SmartScorer`. The lexical part is
            ``metadata["lex_score"]``.
        batch_size: encoder batch size for documents not stored or cached.
        cache_size: how many encoded documents the LRU cache keeps.
        index: an optional :class:`~smart_retrievers.SmartIndex` whose stored token states
            are reused by ``Document.id``.
        encoder: the encoder (default: the index's, else the bundled all-MiniLM-L6-v2).

    Example:
        >>> from langchain_core.documents import Document
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> from langchain_core.vectorstores import InMemoryVectorStore
        >>> texts = {"p2": "Code P2 labels the blue circle.", "k7": "Code K7 labels the red star.", "m4": "Code M4 labels the yellow triangle."}
        >>> vectorstore = InMemoryVectorStore.from_documents(  # any vector store; a fake embedding keeps this offline
        ...     [Document(id=i, page_content=t) for i, t in texts.items()], DeterministicFakeEmbedding(size=16)
        ... )
        >>> reranker = SmartReranker(top_n=1)
        >>> chain = reranker.wrap(vectorstore.as_retriever(search_kwargs={"k": 20}))
        >>> [doc.id for doc in chain.invoke("which code labels the red star?")]
        ['k7']
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    top_n: int | None = Field(default=3, ge=1)
    model: str | None = None
    device: str | None = None
    lambda_pool: float = 1.0
    lambda_late: float = 1.0
    lambda_lex: float = 0.0
    batch_size: int | None = Field(default=None, ge=1)
    cache_size: int = Field(default=4096, ge=1)
    index: Any = None  # a SmartIndex or None (checked by _check_index)
    encoder: Any = None  # a SmartEncoder, a vision encoder or None (checked by _check_encoder)

    _scorer: Any = PrivateAttr()  # the SmartScorer doing the work

    @field_validator("index")
    @classmethod
    def _check_index(cls, value: Any) -> SmartIndex | None:
        return None if value is None else index_field(value)

    @field_validator("encoder")
    @classmethod
    def _check_encoder(cls, value: Any) -> Any:
        return None if value is None else _encoder(value)

    def model_post_init(self, context: Any, /) -> None:
        from ...rerank import SmartScorer

        # the one rule for which encoder a reranker scores with (model= / encoder= / index= / device=)
        self._scorer = SmartScorer.create(
            model=self.model,
            encoder=self.encoder,
            index=self.index,
            device=self.device,
            lambda_pool=self.lambda_pool,
            lambda_late=self.lambda_late,
            lambda_lex=self.lambda_lex,
            batch_size=self.batch_size,
            cache_size=self.cache_size,
        )

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> list[Document]:
        """Re-score ``documents`` for ``query``; returns scored copies, best first, cut to ``top_n``.

        The call is traced as a run named ``SmartReranker`` under ``callbacks`` (the caller's run).
        """
        step = RunnableLambda(_rerank_step(self), name="SmartReranker")
        return step.invoke({"documents": documents, "query": query}, config={"callbacks": callbacks})

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> list[Document]:
        """:meth:`compress_documents` off the event loop (encoding blocks), traced the same way."""
        sync = _rerank_step(self)

        async def arerank(inputs: dict[str, Any]) -> list[Document]:
            return await asyncio.to_thread(sync, inputs)

        step = RunnableLambda(sync, afunc=arerank, name="SmartReranker")
        return await step.ainvoke({"documents": documents, "query": query}, config={"callbacks": callbacks})

    def _rerank(self, documents: Sequence[Document], query: str) -> list[Document]:
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        documents = list(documents)
        if not documents:
            return []
        warn_reserved(documents, ("relevance_score", "smart_score"), "SmartReranker")
        images = [document_image(doc) for doc in documents]
        # SmartScorer reuses the index's stored states only where id, text and image location all match
        ranked = self._scorer.score(
            query,
            [doc.page_content for doc in documents],
            [doc.id for doc in documents],
            images=images if any(images) else None,
            top_n=self.top_n,
        )
        results = []
        for cand in ranked:
            doc = documents[cand.position].model_copy(deep=True)
            scores = (cand.relevance, cand.score, cand.pooled_score, cand.late_score)
            doc.metadata.update(zip(RELEVANCE_KEYS, scores))
            if self.lambda_lex:
                doc.metadata["lex_score"] = cand.lex_score
            results.append(doc)
        return results

    def wrap(self, retriever: Runnable[str, list[Document]]) -> Runnable[str, list[Document]]:
        """An LCEL runnable: ``retriever``'s documents for the query, re-ranked by this reranker.

        It supports ``invoke``, ``ainvoke``, ``batch`` and ``stream`` like any runnable, e.g.
        ``reranker.wrap(vectorstore.as_retriever(search_kwargs={"k": 20})) | format_docs``.
        """

        rerank = _rerank_step(self)

        async def arerank(inputs: dict[str, Any]) -> list[Document]:
            return await asyncio.to_thread(rerank, inputs)

        step = RunnableLambda(rerank, afunc=arerank, name="SmartReranker")
        return RunnableParallel(documents=retriever, query=RunnablePassthrough()) | step


def _rerank_step(reranker: SmartReranker) -> Any:
    """The function of the ``SmartReranker`` run: ``{"documents", "query"}`` -> reranked documents."""

    def rerank(inputs: dict[str, Any]) -> list[Document]:
        return reranker._rerank(inputs["documents"], inputs["query"])

    return rerank
