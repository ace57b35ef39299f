"""A LlamaIndex vector store whose nodes are rows of a SMART LanceDB table (SMART or pooled MMR search)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from ...filters import And, column_in
from ...validation import internal_keys
from ..indexes import open_smart_index
from .embedding import SmartEmbedding
from .nodes import NODE_KEY, check_node, hit_node, node_image, node_row, where
from .queries import DEFAULT_MMR_FETCH_K, QUERY_MODES, mmr_fetch_k, mode_settings, query_settings, search_mode

if TYPE_CHECKING:
    from ...encoders import SmartEncoder
    from ...encoding import Encoding
    from ...index import Hit, SmartIndex

__all__ = ["DEFAULT_MMR_FETCH_K", "SmartVectorStore"]


class SmartVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store whose nodes live in a SMART LanceDB table.

    Build it as ``SmartVectorStore(uri="./smart_db", table="smart", encoder=None)`` (any other
    :class:`~smart_retrievers.SmartIndex` argument may follow) or ``SmartVectorStore(index=...)``.

    * **Writes.** ``add`` upserts nodes by node id (text and image nodes; ``ref_doc_id`` is the
      row's ``ref_id``) and returns their ids. What rebuilds a node (relationships, metadata
      exclusions and templates) is stored with it, so ``get_nodes`` and ``query`` return nodes
      equal to those added: id, text, metadata, relationships. ``delete(ref_doc_id)`` removes a
      document's nodes, ``delete_nodes(node_ids, filters)`` nodes by id and/or filter,
      ``clear()`` every node (the table and its codec stay).
    * **Query.** ``VectorStoreQueryMode.DEFAULT``: the index's SMART search ("hybrid" by default:
      pooled and full-text candidates, late interaction on stored token states plus the gated
      BM25 term). ``query_str`` is encoded by the store's encoder; ``query_embedding`` is ignored.
      ``HYBRID``: "hybrid" with ``query.alpha`` as the share of the embedding weights,
      ``alpha = (λ_pool + λ_late) / (λ_pool + λ_late + λ_lex)``: None keeps the index's λ_lex
      (0.5, i.e. alpha 0.8 at λ 1/1), 1 is SMART alone, 0 BM25 alone. ``TEXT_SEARCH``: BM25 alone
      ("text"). ``VectorStoreQueryMode.MMR``: maximal marginal
      relevance on the **pooled vectors only** (no late interaction), over the pooled top
      ``mmr_prefetch_k`` (default max(20, 4 x top_k)) with ``mmr_threshold`` (the query's, or
      ``vector_store_kwargs={"mmr_threshold": ...}`` of a retriever) as the relevance weight
      (default 0.5). Any other mode (``SPARSE``, ``SEMANTIC_HYBRID``...) raises
      ``ValueError``. ``similarities`` are relevance scores in [0, 1]
      (:func:`~smart_retrievers.scoring.relevance` of the fused score), so
      ``SimilarityPostprocessor(similarity_cutoff=...)`` thresholds them, as it does
      :class:`~smart_retrievers.llama_index.SmartRetriever`'s scores; the raw fused, pooled and
      late scores are its results' ``smart_score``, ``pooled_score`` and ``late_score``.
    * **Filters.** ``MetadataFilters`` translate as in
      :func:`~smart_retrievers.llama_index.to_smart_filter`, as for :class:`SmartVectorIndex`: the keys
      ``doc_id``, ``ref_doc_id`` and ``document_id`` mean the node's source document and ``node_id`` the
      node id, unless a metadata field has that name. ``VectorStoreQuery.doc_ids`` / ``node_ids`` restrict too:
      ``doc_ids=[]`` matches no node, while ``node_ids=[]`` means no constraint (``VectorStoreIndex.as_retriever``
      passes ``[]`` for every store that keeps the text, as the LanceDB, Qdrant and Chroma stores read it).
    * **Filter only.** A query with neither ``query_str`` nor ``query_embedding`` returns the nodes matching
      its filters (up to ``similarity_top_k``, in table order, similarity 0), as Chroma answers it.
    * **Query arguments** (a retriever's ``vector_store_kwargs``): ``mmr_threshold`` (overrides the query's),
      ``mmr_prefetch_k`` or ``mmr_prefetch_factor`` (not both), ``query_type`` (``"vector"``: SMART,
      ``"fts"``, ``"hybrid"``); any other key raises ``TypeError``.
    * **Embeddings.** ``is_embedding_query`` is False: a ``VectorStoreIndex`` retriever does
      not embed the query for this store. ``VectorStoreIndex`` and ``IngestionPipeline`` do
      embed nodes before ``add``: give them :meth:`embed_model` (or any
      :class:`SmartEmbedding`) so that step runs the same model, and, with :meth:`embed_model`,
      is not repeated by the store.

    Example:
        >>> import tempfile
        >>> from llama_index.core import Document, StorageContext, VectorStoreIndex
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = SmartVectorStore(uri=tmp.name)
        >>> index = VectorStoreIndex.from_documents(
        ...     [Document(id_="k7", text="Code K7 labels the red star."), Document(id_="p2", text="Code P2 labels the blue circle.")],
        ...     storage_context=StorageContext.from_defaults(vector_store=store),
        ...     embed_model=store.embed_model(),
        ... )
        >>> [n.node.ref_doc_id for n in index.as_retriever(similarity_top_k=1).retrieve("which code labels the red star?")]
        ['k7']
        >>> tmp.cleanup()
    """

    stores_text: bool = True
    is_embedding_query: bool = False
    flat_metadata: bool = False

    _index: Any = PrivateAttr()
    _cache: Any = PrivateAttr()

    def __init__(
        self,
        uri: str | None = None,
        table: str | None = None,
        encoder: SmartEncoder | None = None,
        *,
        index: SmartIndex | None = None,
        cache_size: int = 4096,
        **index_kwargs: Any,
    ) -> None:
        from ...rerank import EncodingCache

        super().__init__(stores_text=True)
        self._index = open_smart_index(
            index, uri, table=table, encoder=encoder, owner="SmartVectorStore", **index_kwargs
        )
        self._cache = EncodingCache(cache_size)

    @classmethod
    def class_name(cls) -> str:
        return "SmartVectorStore"

    @property
    def client(self) -> SmartIndex:
        """The underlying :class:`~smart_retrievers.SmartIndex`."""
        return self._index

    @property
    def smart_index(self) -> SmartIndex:
        """The underlying :class:`~smart_retrievers.SmartIndex`."""
        return self._index

    def embed_model(self, embed_batch_size: int = 32) -> SmartEmbedding:
        """A :class:`SmartEmbedding` on this store's encoder whose node encodings the store reuses in ``add``.

        The embeddings are the stored pooled vectors; the token states computed with them are
        kept (up to ``cache_size`` texts, least recently used dropped) and written by ``add``
        when a node's content and embedding match, so ingestion runs one forward pass per node.
        """
        return SmartEmbedding(self._index.encoder, embed_batch_size=embed_batch_size, cache=self._cache)

    # ---- writes -----------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert nodes by node id (one LanceDB commit); returns their ids."""
        if isinstance(nodes, BaseNode):
            raise TypeError("expected a sequence of nodes, not a single node")
        checked = [check_node(node) for node in nodes]
        if not checked:
            return []
        rows = [node_row(node, None) for node in checked]
        texts = [text for text, _ in rows]
        ids = [node.node_id for node in checked]
        metadatas = [metadata for _, metadata in rows]
        ref_ids = [node.ref_doc_id for node in checked]
        images = [node_image(node) for node in checked]
        with internal_keys([NODE_KEY]):  # the node data key, refused in users' metadata
            if any(image is not None for image in images):
                return self._index.add_items(texts, images, ids=ids, metadatas=metadatas, ref_ids=ref_ids)
            encodings = self._encodings(checked, texts)
            return self._index.add_encodings(encodings, texts, ids=ids, metadatas=metadatas, ref_ids=ref_ids)

    def _encodings(self, nodes: list[TextNode], texts: list[str]) -> list[Encoding]:
        """Each node's encoding: the one its :meth:`embed_model` computed, else encoded now."""
        found: dict[int, Encoding] = {}
        for i, (node, text) in enumerate(zip(nodes, texts)):
            cached = self._cache.get(text)
            if (
                cached is not None
                and node.embedding is not None
                and np.allclose(cached.pooled, node.embedding, atol=1e-6)
            ):
                found[i] = cached
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:
            fresh = self._index.encoder.encode_documents([texts[i] for i in missing], show_progress=False)
            found.update(zip(missing, fresh))
        return [found[i] for i in range(len(texts))]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``."""
        if not isinstance(ref_doc_id, str):
            raise TypeError(f"ref_doc_id must be a str, got {type(ref_doc_id).__name__}")
        self._index.delete(ref_ids=[ref_doc_id])

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes with these ids and/or matching ``filters`` (both: AND); unknown ids are ignored."""
        if node_ids is None and filters is None:
            raise ValueError("delete_nodes() needs node_ids or filters; clear() deletes every node")
        if node_ids is not None:
            from ...validation import id_list

            node_ids = id_list(node_ids, "node_ids")
            if not node_ids:
                return
        self._index.delete(node_ids, where=where(filters))

    def clear(self) -> None:
        """Delete every node (the table and its codec stay)."""
        self._index.delete_all()

    async def async_add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    # ---- reads ------------------------------------------------------------------------------

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """The stored nodes with these ids (in that order; unknown ids skipped) and/or matching ``filters``,
        each with its stored pooled vector as ``embedding``."""
        if node_ids is not None:
            from ...validation import id_list

            hits = self._index.get(id_list(node_ids, "node_ids"))
            condition = where(filters)
            if condition is not None:
                keep = {hit.id for hit in self._index.rows(And((condition, column_in("id", [h.id for h in hits]))))}
                hits = [hit for hit in hits if hit.id in keep]
        else:
            hits = list(self._index.rows(where(filters)))
        nodes: list[BaseNode] = [hit_node(hit) for hit in hits]
        vectors = self._index.pooled_vectors([node.node_id for node in nodes]) if nodes else {}
        for node in nodes:  # the stored pooled vector, as Qdrant and LanceDB return a node's embedding
            vector = vectors.get(node.node_id)
            node.embedding = None if vector is None else vector.tolist()
        return nodes

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """SMART (``DEFAULT``) or pooled MMR (``MMR``) search for ``query.query_str``; see the class.

        ``kwargs`` (a retriever's ``vector_store_kwargs``) may be ``mmr_threshold``, ``mmr_prefetch_k``,
        ``mmr_prefetch_factor`` and ``query_type``; any other key raises ``TypeError``.
        """
        settings = query_settings(kwargs)
        mode = VectorStoreQueryMode(query.mode)
        if mode not in QUERY_MODES:
            raise ValueError(
                f"SmartVectorStore supports VectorStoreQueryMode {', '.join(m.name for m in QUERY_MODES)}, not {mode.name}"
            )
        k = query.similarity_top_k
        # node_ids=[] is "no constraint" here: VectorStoreIndex.as_retriever passes the index struct's node ids,
        # [] for every store that keeps the text (as LlamaIndex's LanceDB, Qdrant and Chroma stores read it);
        # doc_ids=[] (only ever the caller's) matches no node
        condition = where(query.filters, query.node_ids or None, query.doc_ids)
        text = query.query_str
        if text is None and query.query_embedding is None:  # filter only: the matching rows, as Chroma answers it
            return _result(list(itertools.islice(self._index.rows(condition, batch_size=max(k, 1)), k)))
        if not isinstance(text, str) or not text.strip():
            raise ValueError(
                "SmartVectorStore needs VectorStoreQuery.query_str: SMART encodes the query text with the "
                "store's encoder (a query_embedding alone carries no token states); a query with neither "
                "returns the rows matching its filters"
            )
        if mode == VectorStoreQueryMode.MMR:
            fetch_k = mmr_fetch_k(k, settings)
            # a query() argument (a retriever's vector_store_kwargs) overrides the query's own value
            threshold = settings.get("mmr_threshold", query.mmr_threshold)
            lambda_mult = 0.5 if threshold is None else threshold
            hits = self._index.max_marginal_relevance(
                text, k, fetch_k=fetch_k, lambda_mult=lambda_mult, where=condition
            )
        else:
            dense_weight = self._index.lambda_pool + self._index.lambda_late
            search = mode_settings(mode, query.alpha, dense_weight) | search_mode(settings.get("query_type"))
            hits = self._index.search(text, k=k, where=condition, **search)
        return _result(hits)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)


def _result(hits: list[Hit]) -> VectorStoreQueryResult:
    return VectorStoreQueryResult(
        nodes=[hit_node(hit) for hit in hits],  # rows read by a filter only: score 0
        similarities=[hit.relevance for hit in hits],
        ids=[hit.id for hit in hits],
    )
