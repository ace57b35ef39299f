"""A LangChain ``VectorStore`` on a SMART LanceDB table (SMART search; pooled-only search by vector and MMR)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from ...options import SearchOptions
from ..indexes import open_smart_index
from .documents import document_image, hit_document
from .embeddings import SmartEmbeddings

if TYPE_CHECKING:
    from ...encoders import SmartEncoder
    from ...index import Hit, SmartIndex

__all__ = ["SmartVectorStore"]

_SEARCH_SETTINGS = ("candidates", "mode", "lambda_pool", "lambda_late", "modality", "nprobes", "refine_factor", "ef")
"""SMART settings a search call may pass as keyword arguments (besides ``k``, ``filter`` and ``query_type``)."""
QUERY_TYPES = {"vector": None, "fts": "text", "hybrid": "hybrid"}
"""``query_type`` values (as LangChain's LanceDB store names them) and the SmartIndex search mode of each."""


class SmartVectorStore(VectorStore):
    """A LangChain vector store on a SMART LanceDB table.

    Build it as ``SmartVectorStore(uri="./smart_db", table="smart", encoder=None)`` (any other
    :class:`~smart_retrievers.SmartIndex` argument may follow) or ``SmartVectorStore(index=...)``.

    * **Writes.** ``add_texts`` / ``add_documents`` upsert by id (``ids=``, else
      ``Document.id``, else a new uuid) in one commit and never modify the input documents;
      image documents (``metadata["image_path"]`` / ``["image_url"]``) are encoded from their
      image (a vision encoder is needed). ``delete(ids)`` / ``delete(where={...})`` (both: AND)
      return True (unknown ids are ignored; ``ids=[]`` deletes nothing); ``delete()`` without
      either is refused: empty the table with ``store.index.delete_all()``.
    * **Search.** ``similarity_search(query, k=4, filter=None, **settings)`` ranks by SMART;
      ``filter`` is a Mongo-style dict (:mod:`smart_retrievers.filters`) and ``settings`` any of
      ``mode``, ``candidates``, ``lambda_pool``, ``lambda_late``, ``modality`` (and the ANN settings),
      or ``query_type`` ``"vector"`` (SMART), ``"fts"`` / ``"hybrid"``; any other keyword raises. Documents come
      back with their id and stored metadata only. An empty query returns the rows matching ``filter``
      (up to ``k``, in table order, score 0), as Chroma answers a metadata-only query.
    * **One score scale.** ``similarity_search_with_score`` and
      ``similarity_search_with_relevance_scores`` both pair each document with its relevance in [0, 1]
      (:func:`~smart_retrievers.scoring.relevance`, ``clip(fused / (λ_pool + λ_late), 0, 1)``),
      which ``as_retriever(search_type="similarity_score_threshold", search_kwargs={"score_threshold": ...})``
      thresholds; ``relevance_score_fn=`` replaces that mapping for the relevance scores (it receives
      the relevance). The raw fused, pooled and late scores are in the metadata of
      :class:`~smart_retrievers.langchain.SmartRetriever`'s documents.
    * **Pooled only.** ``similarity_search_by_vector`` (and ``..._with_relevance_scores``) ranks by the
      cosine of a caller's vector with the stored pooled vectors: a vector carries no token states, so
      there is no late interaction; the score is that cosine clipped to [0, 1]. ``max_marginal_relevance_search`` (``as_retriever(search_type="mmr")``)
      runs MMR on the pooled vectors of the pooled top ``fetch_k``: like any single-vector store.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = SmartVectorStore.from_texts(
        ...     ["Code K7 labels the red star.", "Code P2 labels the blue circle."], ids=["k7", "p2"], uri=tmp.name
        ... )
        >>> [doc.id for doc in store.similarity_search("which code labels the red star?", k=1)]
        ['k7']
        >>> tmp.cleanup()
    """

    def __init__(
        self,
        uri: str | None = None,
        table: str | None = None,
        encoder: SmartEncoder | None = None,
        *,
        index: SmartIndex | None = None,
        relevance_score_fn: Callable[[float], float] | None = None,
        **index_kwargs: Any,
    ) -> None:
        if relevance_score_fn is not None and not callable(relevance_score_fn):
            raise TypeError(f"relevance_score_fn must be callable, got {type(relevance_score_fn).__name__}")
        self.override_relevance_score_fn = relevance_score_fn
        self.index = open_smart_index(
            index, uri, table=table, encoder=encoder, owner="SmartVectorStore", **index_kwargs
        )
        self._embeddings = SmartEmbeddings(self.index.encoder)

    @property
    def embeddings(self) -> Embeddings:
        """A :class:`SmartEmbeddings` on the store's encoder (its pooled vectors)."""
        return self._embeddings

    # ---- writes ---------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Encode and upsert texts; ``ids[i]`` None (or no ids) gets a new uuid. Returns the ids."""
        texts = [texts] if isinstance(texts, str) else list(texts)  # a str is one text, as in LangChain's stores
        return self._add(texts, [None] * len(texts), metadatas, ids)

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Encode and upsert documents by ``ids=`` / ``Document.id`` (new uuids for the rest); returns the ids."""
        documents = list(documents)
        return self._add(
            [doc.page_content for doc in documents],
            [document_image(doc) for doc in documents],
            [doc.metadata for doc in documents],
            kwargs.get("ids") or [doc.id for doc in documents],
        )

    def _add(
        self,
        texts: list[str],
        images: list[str | None],
        metadatas: Sequence[dict[str, Any] | None] | None,
        ids: Sequence[str | None] | None,
    ) -> list[str]:
        row_ids = None
        if ids is not None:
            if isinstance(ids, str) or len(ids) != len(texts):
                raise ValueError(f"got {len(texts)} texts but ids={ids!r}")
            row_ids = [i if i is not None else uuid.uuid4().hex for i in ids]
        if any(image is not None for image in images):
            return self.index.add_items(texts, images, ids=row_ids, metadatas=metadatas)
        return self.index.add(texts, ids=row_ids, metadatas=metadatas)

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        return await asyncio.to_thread(self.add_texts, list(texts), metadatas, ids=ids)

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add_documents, documents, **kwargs)

    def delete(
        self, ids: list[str] | None = None, *, where: dict[str, Any] | None = None, **kwargs: Any
    ) -> bool | None:
        """Delete documents by id and/or by a metadata filter ``where`` (both: AND; unknown ids are ignored);
        True once done. ``ids=[]`` deletes nothing."""
        from ...validation import id_list  # a single string is refused, never split into characters

        if kwargs:
            raise TypeError(f"delete() got unexpected keyword argument(s) {sorted(kwargs)}; it takes ids and where")
        if ids is None and where is None:
            raise ValueError("delete() needs ids or where; to empty the store call store.index.delete_all()")
        if ids is not None:
            ids = id_list(ids, "ids")
            if not ids:
                return True
        self.index.delete(ids, where=where)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, in that order (unknown ids are skipped)."""
        from ...validation import id_list

        return [hit_document(hit) for hit in self.index.get(id_list(ids, "ids"))]

    # ---- search ---------------------------------------------------------------------------

    def _hits(self, query: str, k: int, filter: dict[str, Any] | None, kwargs: dict[str, Any]) -> list[Hit]:
        kwargs = dict(kwargs)
        query_type = kwargs.pop("query_type", None)
        unknown = set(kwargs) - set(_SEARCH_SETTINGS)
        if unknown:
            raise TypeError(
                f"unexpected search arguments {sorted(unknown)}; SMART takes query_type, {', '.join(_SEARCH_SETTINGS)}"
            )
        if query_type not in (None, *QUERY_TYPES):
            raise ValueError(f"query_type must be one of {', '.join(map(repr, QUERY_TYPES))}, got {query_type!r}")
        if QUERY_TYPES.get(query_type) is not None:
            kwargs["mode"] = QUERY_TYPES[query_type]
        options = SearchOptions(k=k, where=filter, **kwargs)
        if isinstance(query, str) and not query.strip():  # no query: the rows matching the filter, as Chroma gives
            return list(itertools.islice(self.index.rows(filter, batch_size=options.k), options.k))
        return self.index.search(query, options=options)

    def similarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents ranked best by SMART (see the class for ``filter`` and settings)."""
        return [hit_document(hit) for hit in self._hits(query, k, filter, kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """``similarity_search`` with each document's relevance in [0, 1] (higher is better)."""
        return [(hit_document(hit), hit.relevance) for hit in self._hits(query, k, filter, kwargs)]

    def _similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        filter = kwargs.pop("filter", None)
        to_relevance = self._select_relevance_score_fn()
        return [(hit_document(hit), to_relevance(hit.relevance)) for hit in self._hits(query, k, filter, kwargs)]

    async def _asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return await asyncio.to_thread(self._similarity_search_with_relevance_scores, query, k, **kwargs)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """The scores are relevances in [0, 1] already: the identity, unless ``relevance_score_fn=`` was given."""
        if self.override_relevance_score_fn is not None:
            return self.override_relevance_score_fn
        return lambda score: score

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents whose pooled vectors are closest (cosine) to ``embedding``: pooled only.

        A vector has no token states, so there is no late interaction; ``embedding`` must come
        from the store's encoder (:attr:`embeddings`) to mean anything.
        """
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """``similarity_search_by_vector`` with each document's pooled cosine clipped to [0, 1] (its relevance)."""
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)} for a pooled search by vector")
        hits = self.index.search_by_vector(embedding, k=k, where=filter)
        return [(hit_document(hit), hit.relevance) for hit in hits]

    def similarity_search_by_vector_with_relevance_scores(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_with_score_by_vector` through ``relevance_score_fn`` (if given): pooled only."""
        to_relevance = self._select_relevance_score_fn()
        pairs = self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)
        return [(doc, to_relevance(score)) for doc, score in pairs]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR on the pooled vectors: ``k`` of the pooled top ``fetch_k``, relevant and diverse.

        Relevance and redundancy are pooled cosines (no late interaction), as in any
        single-vector store; ``lambda_mult`` 1 is plain similarity, 0 maximal diversity.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)} for an MMR search (on pooled vectors)")
        hits = self.index.max_marginal_relevance(query, k, fetch_k=fetch_k, lambda_mult=lambda_mult, where=filter)
        return [hit_document(hit) for hit in hits]

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search` for a caller's vector (pooled vectors only)."""
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)} for an MMR search (on pooled vectors)")
        hits = self.index.max_marginal_relevance(embedding, k, fetch_k=fetch_k, lambda_mult=lambda_mult, where=filter)
        return [hit_document(hit) for hit in hits]

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        uri: str | None = "./smart_db",
        table: str | None = None,
        encoder: SmartEncoder | None = None,
        index: SmartIndex | None = None,
        **kwargs: Any,
    ) -> SmartVectorStore:
        """A store at ``uri`` (or on ``index``) holding ``texts``.

        ``embedding`` may be None or a :class:`SmartEmbeddings` (its encoder is used); SMART
        encodes with its own model, so any other ``Embeddings`` is refused. ``kwargs`` are
        :class:`~smart_retrievers.SmartIndex` arguments (``compression``, ``lambda_pool``...).
        """
        store = cls._open(embedding, uri, table, encoder, index, kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    def from_documents(
        cls, documents: list[Document], embedding: Embeddings | None = None, **kwargs: Any
    ) -> SmartVectorStore:
        """Like :meth:`from_texts`, from documents (ids from ``ids=`` or ``Document.id``; images kept)."""
        ids = kwargs.pop("ids", None)
        store = cls._open(
            embedding,
            kwargs.pop("uri", "./smart_db"),
            kwargs.pop("table", None),
            kwargs.pop("encoder", None),
            kwargs.pop("index", None),
            kwargs,
        )
        store.add_documents(list(documents), **({"ids": ids} if ids is not None else {}))
        return store

    @classmethod
    def _open(
        cls,
        embedding: Embeddings | None,
        uri: str | None,
        table: str | None,
        encoder: SmartEncoder | None,
        index: SmartIndex | None,
        index_kwargs: dict[str, Any],
    ) -> SmartVectorStore:
        if embedding is not None:
            if not isinstance(embedding, SmartEmbeddings):
                raise TypeError(
                    f"SmartVectorStore encodes with its own SMART encoder (token states too); pass embedding=None "
                    f"or a SmartEmbeddings, not {type(embedding).__name__}"
                )
            if encoder is not None and encoder is not embedding.encoder:
                raise ValueError("embedding= and encoder= name two encoders; pass one")
            encoder = encoder or (embedding.encoder if index is None else None)
        if index is not None:
            return cls(index=index)
        return cls(uri=uri, table=table, encoder=encoder, **index_kwargs)
