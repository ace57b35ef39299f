"""LlamaIndex integration: a SMART retriever, reranker, managed index, vector store and embedding model.

* :class:`SmartRetriever` is a ``BaseRetriever`` over a :class:`~smart_retrievers.SmartIndex`;
  use it where you would use ``VectorStoreIndex(...).as_retriever()``. With a vision encoder
  it is also a ``MultiModalRetriever`` (``text_retrieve``, ``text_to_image_retrieve``,
  ``image_to_image_retrieve``).
* :class:`SmartRerank` is a ``BaseNodePostprocessor`` that re-scores the nodes of any other
  retriever (BM25, another vector store, a ``VectorStoreIndex``) with SMART; add it to
  ``node_postprocessors`` of a query engine.
* :class:`SmartVectorIndex` is a LlamaIndex index (a ``BaseManagedIndex``: its storage is the
  LanceDB table, not a docstore) with ``from_documents``, ``insert``, ``delete_ref_doc``,
  ``refresh_ref_docs``, ``as_retriever`` and ``as_query_engine``.
* :class:`SmartVectorStore` (a ``BasePydanticVectorStore``) and :class:`SmartEmbedding` (a
  ``BaseEmbedding``) plug SMART into ``VectorStoreIndex`` and ``IngestionPipeline``.
* :func:`to_smart_filter` translates ``MetadataFilters`` into :mod:`smart_retrievers.filters`.

Images: ``ImageNode`` (``image_path``, ``image_url`` or base64 ``image``), ``ImageDocument``
and any ``Document`` with an ``image_resource`` are indexed through the index's vision
encoder (:mod:`smart_retrievers.encoders`); retrieval returns them as ``ImageNode``. Every
image path or URL goes through the encoder's :class:`~smart_retrievers.encoders.ImagePolicy`
(allowed roots, URLs off by default, size and time limits): a refused node raises
``ImageLoadError`` naming its position and id before anything is written.

One translator (:mod:`.nodes`: nodes <-> rows, filters) and one file per class; they translate,
:class:`~smart_retrievers.SmartIndex` decides. Only ``llama_index.core`` is imported
(``pip install "smart-retrievers[llama-index]"``).
"""

from ..extras import requires_extra

with requires_extra("llama_index"):  # a missing framework names the extra to install
    from .embedding import SmartEmbedding
    from .nodes import NODE_KEY, SmartNodeWithScore, to_smart_filter
    from .rerank import SmartRerank
    from .retriever import SmartRetriever
    from .vector_index import SmartVectorIndex
    from .vector_store import SmartVectorStore

__all__ = [
    "NODE_KEY",
    "SmartEmbedding",
    "SmartNodeWithScore",
    "SmartRerank",
    "SmartRetriever",
    "SmartVectorIndex",
    "SmartVectorStore",
    "to_smart_filter",
]
