"""The LangChain retriever over a SMART index: pooled candidates, then late interaction."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever, LangSmithRetrieverParams
from langchain_core.runnables import RunnableConfig
from pydantic import ConfigDict, Field, field_validator, model_validator

from ...filters import parse_filter
from ...options import DEFAULT_MODE, Modality, SearchMode, SearchOptions
from ..indexes import open_smart_index, smart_index_of
from .documents import SCORE_KEYS, check_documents, document_image, hit_document, warn_reserved

if TYPE_CHECKING:  # the index, the encoders and torch are imported when first needed
    from ...encoders import SmartEncoder
    from ...encoders.images import ImageInput
    from ...index import SmartIndex

__all__ = ["QUERY_KEYS", "SmartRetriever"]

QUERY_KEYS = ("text", "query", "image")
"""Keys of a dict query (``invoke({"text": ..., "image": ...})``): ``text`` (or ``query``) and ``image``."""


def index_field(value: Any) -> SmartIndex:
    """:func:`~smart_retrievers.integrations.indexes.smart_index_of` for a pydantic field (which wraps ValueError only)."""
    try:
        return smart_index_of(value)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


class SmartRetriever(BaseRetriever):
    """Retrieve LangChain ``Document`` objects from a SMART index.

    Scoring is ``lambda_pool * cos(pooled) + lambda_late * mean_q max_d cos(tokens)``
    over the index's stored token states. Every returned document has ``id`` set and
    ``metadata["smart_score"]`` (the fused score it is ranked by), ``metadata["pooled_score"]``
    and ``metadata["late_score"]``.

    ``k``, ``filter``, ``candidates``, ``mode``, ``lambda_pool``, ``lambda_late`` and
    ``modality`` are defaults; each can be overridden per call, e.g.
    ``retriever.invoke(q, k=3, filter={...})``. A per-call ``filter`` replaces the default
    one (pass ``{}`` to search without it).

    Images (the index needs a vision encoder): ``retriever.invoke("", image="query.jpg")``
    searches with an image (a path, URL, bytes or PIL image); a non-empty query string is
    then encoded with the image as one interleaved query (Qwen-VL encoders only).
    ``modality="image"`` (or ``"text"``) returns only image (or text) documents. Image
    documents come back with ``metadata["image_path"]`` or ``metadata["image_url"]``.

    A dict input ``{"text": ..., "image": ...}`` (``"query"`` for ``"text"``) is a query too,
    so an image query can flow through a chain: ``retriever.invoke({"image": "query.jpg"})``,
    or ``{"text": "a dog", "image": ...}`` for one interleaved query.

    Args:
        index: the :class:`~smart_retrievers.SmartIndex` to search (or a LlamaIndex
            ``SmartVectorIndex``: both frameworks share one table; rows LlamaIndex wrote come back
            with their node id as ``Document.id`` and without LlamaIndex's internal node data).
        k: number of documents returned.
        candidates: pooled candidates re-scored in ``"rerank"`` mode (None: the index's default).
        mode: ``"rerank"`` (pooled candidates, then exact SMART), ``"exhaustive"`` (exact SMART
            over every matching row) or ``"pooled"`` (single-vector cosine only).
        lambda_pool / lambda_late: fusion weights (None: the index's defaults).
        filter: a LangChain/Mongo-style metadata filter, e.g.
            ``{"year": {"$gte": 2020}, "$or": [{"topic": "a"}, {"topic": "b"}]}``; the operators
            are those of :mod:`smart_retrievers.filters` (``$eq $ne $gt $gte $lt $lte $in $nin
            $contains $text_match $is_empty`` and ``$and $or $not``).
        modality: ``"text"`` or ``"image"`` to return only that kind of document (None: both).
        evidence: add ``metadata["smart_evidence"]`` to text documents: the top matched spans of
            :meth:`SmartIndex.explain <smart_retrievers.index.SmartIndex.explain>` (``text``, ``start``,
            ``end``, ``share``, ``similarity``, ``query_tokens``; at most
            :data:`~smart_retrievers.explain.EVIDENCE_SPANS`), JSON-serialisable, from
            :func:`~smart_retrievers.explain.compact_evidence`. The hits' texts are re-encoded (one
            batched forward pass per search, plus the query); off by default, and free when off.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()  # or "./smart_db", "s3://bucket/db"...
        >>> retriever = SmartRetriever.from_texts(
        ...     ["Code K7 labels the red star.", "Code P2 labels the blue circle.", "Code K9 labelled the red star."],
        ...     metadatas=[{"year": 2021}, {"year": 2022}, {"year": 2019}],
        ...     ids=["k7", "p2", "k9"],
        ...     uri=tmp.name,
        ...     k=1,
        ... )
        >>> docs = retriever.invoke("which code labels the red star?", filter={"year": {"$gte": 2020}})
        >>> [(doc.id, doc.page_content) for doc in docs]
        [('k7', 'Code K7 labels the red star.')]
        >>> tmp.cleanup()
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    index: Any  # a SmartIndex (checked by _check_index; Any keeps the index out of this module's imports)
    k: int = Field(default=4, ge=1)
    candidates: int | None = Field(default=None, ge=1)
    mode: SearchMode = DEFAULT_MODE
    lambda_pool: float | None = None
    lambda_late: float | None = None
    filter: dict[str, Any] | None = None
    modality: Modality | None = None
    evidence: bool = False
    """Put each text document's top matched spans in ``metadata["smart_evidence"]`` (re-encodes each hit)."""

    @field_validator("filter")
    @classmethod
    def _check_filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        parse_filter(value)  # raises ValueError on unknown operators or malformed filters
        return value

    @field_validator("index")
    @classmethod
    def _check_index(cls, value: Any) -> SmartIndex:
        return index_field(value)

    @model_validator(mode="after")
    def _check_options(self) -> SmartRetriever:
        self.index.resolve(self._options())  # the index checks the settings against its defaults
        return self

    # ---- construction --------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str] | None = None,
        *,
        uri: str = "./smart_db",
        encoder: SmartEncoder | str | None = None,
        table: str = "smart",
        **kwargs: Any,
    ) -> SmartRetriever:
        """Index ``texts`` (upserting by ``ids``) in the LanceDB at ``uri`` and return a retriever.

        ``encoder`` defaults to the bundled all-MiniLM-L6-v2 (a hub id or local directory is loaded).
        ``kwargs`` that are retriever fields (``k``, ``mode``, ``filter``...) configure the retriever;
        the others are :class:`~smart_retrievers.SmartIndex` options (``compression``,
        ``read_consistency_interval``, ``storage_options``...). Both are checked before anything is written.
        """
        retriever = cls._opened(uri, encoder, table, kwargs)
        retriever.index.add(texts, ids=ids, metadatas=metadatas)
        return retriever

    @classmethod
    def from_documents(
        cls,
        documents: Sequence[Document],
        *,
        uri: str = "./smart_db",
        encoder: SmartEncoder | str | None = None,
        table: str = "smart",
        **kwargs: Any,
    ) -> SmartRetriever:
        """Like :meth:`from_texts`, from ``Document`` objects (see :meth:`add_documents`)."""
        documents = check_documents(documents)  # before a model is loaded or a table opened
        retriever = cls._opened(uri, encoder, table, kwargs)
        retriever.add_documents(documents)
        return retriever

    @classmethod
    def _opened(cls, uri: str, encoder: Any, table: str, kwargs: dict[str, Any]) -> SmartRetriever:
        """A retriever with the field ``kwargs`` on the index opened at ``uri`` with the other ``kwargs``."""
        fields = {key: value for key, value in kwargs.items() if key in cls.model_fields and key != "index"}
        index_kwargs = {key: value for key, value in kwargs.items() if key not in fields}
        index = open_smart_index(None, uri, owner="SmartRetriever", table=table, encoder=encoder, **index_kwargs)
        return cls(index=index, **fields)

    # ---- writes --------------------------------------------------------

    def add_documents(self, documents: Sequence[Document], *, ids: Sequence[str] | None = None) -> list[str]:
        """Encode and upsert documents by id; returns their ids.

        The id of each document is ``ids[i]`` if given, else ``Document.id``, else a new
        random one. Adding a document whose id is already stored replaces it (one copy).
        Image documents (``metadata["image_path"]`` or ``metadata["image_url"]``) are
        encoded from their image, their ``page_content`` stored as caption; all documents
        are written in one atomic call. The input documents are not modified.

        Each row's ``ref_id`` is its own id (a Document is its own source), so LlamaIndex reading
        the same table sees it as ``ref_doc_id``. Metadata keys that results set
        (``smart_score``, ``pooled_score``, ``late_score``) give a ``UserWarning``: results
        would replace them.
        """
        documents = check_documents(documents)
        if ids is None:
            ids = [doc.id or uuid.uuid4().hex for doc in documents]
        warn_reserved(documents, SCORE_KEYS, "SmartRetriever")
        return self.index.add_items(
            [doc.page_content for doc in documents],
            [document_image(doc) for doc in documents],
            ids=ids,
            metadatas=[doc.metadata for doc in documents],
            ref_ids=None if isinstance(ids, str) else list(ids),
        )

    def delete(self, ids: Sequence[str]) -> int:
        """Delete documents by id; returns how many were deleted (unknown ids are ignored)."""
        from ...validation import id_list  # the one id check: a single string is refused, never split

        return self.index.delete(id_list(ids, "ids"))

    # ---- retrieval -----------------------------------------------------

    def invoke(
        self, input: str | Mapping[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        """Retrieve for a query string, or a dict ``{"text": ..., "image": ...}`` (see the class notes)."""
        text, kwargs = _query_input(input, kwargs)
        return super().invoke(text, config, **kwargs)

    async def ainvoke(
        self, input: str | Mapping[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        text, kwargs = _query_input(input, kwargs)
        return await super().ainvoke(text, config, **kwargs)

    def _options(self, **overrides: Any) -> SearchOptions:
        """This retriever's settings (None: the index's default), with the non-None ``overrides`` applied."""
        return SearchOptions(
            k=self.k,
            mode=self.mode,
            candidates=self.candidates,
            lambda_pool=self.lambda_pool,
            lambda_late=self.lambda_late,
            where=self.filter,
            modality=self.modality,
        ).updated(**overrides)

    def _search(self, query: str, image: ImageInput | None, overrides: dict[str, Any]) -> list[Document]:
        options = self._options(**overrides)
        if image is not None:
            hits = self.index.search_image(image, text=query or None, options=options)
        else:
            hits = self.index.search(query, options=options)
        docs = [hit_document(hit, scores=True) for hit in hits]
        if self.evidence and image is None:  # off: no cost at all
            from ...explain import compact_evidence

            for doc, spans in zip(docs, compact_evidence(self.index, query, hits)):
                if spans is not None:  # text rows only
                    doc.metadata["smart_evidence"] = spans
        return docs

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Mapping[str, Any] | None = None,
        candidates: int | None = None,
        mode: SearchMode | None = None,
        lambda_pool: float | None = None,
        lambda_late: float | None = None,
        image: ImageInput | None = None,
        modality: Modality | None = None,
    ) -> list[Document]:
        # a per-call filter (even {}) replaces the default one: updated() keeps only None
        overrides = {
            "k": k,
            "where": filter,
            "candidates": candidates,
            "mode": mode,
            "lambda_pool": lambda_pool,
            "lambda_late": lambda_late,
            "modality": modality,
        }
        return self._search(query, image, overrides)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        # the sync form's arguments; encoding and the LanceDB search block, so they run in a worker thread
        sync_manager = CallbackManagerForRetrieverRun.get_noop_manager()
        return await asyncio.to_thread(self._get_relevant_documents, query, run_manager=sync_manager, **kwargs)

    def _get_ls_params(self, **kwargs: Any) -> LangSmithRetrieverParams:
        params = super()._get_ls_params(**kwargs)
        params["ls_vector_store_provider"] = "LanceDB"
        params["ls_embedding_provider"] = "smart-retrievers"
        params["ls_embedding_model"] = self.index.encoder.fingerprint["model"]
        return params


def _query_input(input: Any, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The query text and keyword arguments of an ``invoke`` input: a str, or a dict with text / image."""
    if not isinstance(input, Mapping):
        return input, kwargs
    unknown = sorted(set(input) - set(QUERY_KEYS))
    if unknown:
        raise ValueError(f"a dict query takes the keys {list(QUERY_KEYS)}; got unknown key(s) {unknown}")
    if "text" in input and "query" in input:
        raise ValueError('a dict query takes "text" or "query", not both')
    text = input.get("text", input.get("query")) or ""
    if not isinstance(text, str):
        raise TypeError(f'the query "text" must be a str, got {type(text).__name__}')
    image = input.get("image")
    if image is not None:
        if kwargs.get("image") is not None:
            raise ValueError("the image is given twice: in the dict query and as image=")
        kwargs = {**kwargs, "image": image}
    elif not text:
        raise ValueError('a dict query needs "text" (or "query") or "image"')
    return text, kwargs
