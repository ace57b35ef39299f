"""LangChain integration: a SMART retriever, reranker (document compressor), vector store and embeddings.

* :class:`SmartRetriever` is a ``BaseRetriever`` over a :class:`~smart_retrievers.SmartIndex`;
  use it where you would use ``vectorstore.as_retriever()``.
* :class:`SmartReranker` is a ``BaseDocumentCompressor`` that re-scores the documents of any
  other retriever with SMART; use it in ``ContextualCompressionRetriever`` or as an LCEL step
  (:meth:`SmartReranker.wrap`).
* :class:`SmartVectorStore` is a ``VectorStore`` (it passes langchain-tests'
  ``VectorStoreIntegrationTests``) and :class:`SmartEmbeddings` an ``Embeddings`` returning the
  encoder's pooled vectors.

Images: a ``Document`` whose ``metadata["image_path"]`` (a local path) or
``metadata["image_url"]`` (a URL) is set is an image document. It is indexed through the
index's vision encoder (:mod:`smart_retrievers.encoders`), its ``page_content`` kept as its
caption; the retriever takes an image query through ``invoke(query, image=...)`` and the
reranker scores image documents on their image. Every image location goes through the
encoder's :class:`~smart_retrievers.encoders.ImagePolicy` (allowed roots, URLs off by
default, size and time limits): a refused document raises ``ImageLoadError`` naming its
position and id before anything is written.

One translator (:mod:`.documents`: documents <-> rows) and one file per class; they translate,
:class:`~smart_retrievers.SmartIndex` decides. Only ``langchain_core`` is imported
(``pip install "smart-retrievers[langchain]"``).
"""

from ..extras import requires_extra

with requires_extra("langchain_core"):  # a missing framework names the extra to install
    from .documents import IMAGE_KEYS, document_image
    from .embeddings import SmartEmbeddings
    from .reranker import SmartReranker
    from .retriever import SmartRetriever
    from .vector_store import SmartVectorStore

__all__ = ["IMAGE_KEYS", "SmartEmbeddings", "SmartReranker", "SmartRetriever", "SmartVectorStore", "document_image"]
