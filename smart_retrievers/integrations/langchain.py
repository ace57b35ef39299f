"""LangChain integration: a SMART retriever and a SMART reranker (document compressor).

* :class:`SmartRetriever` is a ``BaseRetriever`` over a :class:`~smart_retrievers.SmartIndex`;
  use it where you would use ``vectorstore.as_retriever()``.
* :class:`SmartReranker` is a ``BaseDocumentCompressor`` that re-scores the documents of any
  other retriever with SMART; use it in ``ContextualCompressionRetriever`` or as an LCEL step
  (:meth:`SmartReranker.wrap`).

Images: a ``Document`` whose ``metadata["image_path"]`` (a local path) or
``metadata["image_url"]`` (a URL) is set is an image document. It is indexed through the
index's vision encoder (:mod:`smart_retrievers.encoders`), its ``page_content`` kept as its
caption; the retriever takes an image query through ``invoke(query, image=...)`` and the
reranker scores image documents on their image. Every image location goes through the
encoder's :class:`~smart_retrievers.encoders.ImagePolicy` (allowed roots, URLs off by
default, size and time limits): a refused document raises ``ImageLoadError`` naming its
position and id before anything is written.

Only ``langchain_core`` is imported (``pip install "smart-retrievers[langchain]"``).
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever, LangSmithRetrieverParams
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, RunnableParallel, RunnablePassthrough
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ..filters import parse_filter
from ..options import DEFAULT_READ_CONSISTENCY, Modality, SearchMode, SearchOptions, check_weights

if TYPE_CHECKING:  # the index, the encoders and torch are imported when first needed
    from ..encoders import SmartEncoder
    from ..encoders.images import ImageInput
    from ..index import Hit, SmartIndex

__all__ = ["IMAGE_KEYS", "SmartReranker", "SmartRetriever", "document_image"]

_SCORE_KEYS = ("smart_score", "pooled_score", "late_score")
IMAGE_KEYS = ("image_path", "image_url")
"""Metadata keys that make a ``Document`` an image document (the first one set wins)."""
_RELEVANCE_KEYS = ("relevance_score", "pooled_score", "late_score")
NODE_KEY = "_llama_index"
"""LlamaIndex's internal node data in a shared table (see ``smart_retrievers.llama_index``): never shown here."""
QUERY_KEYS = ("text", "query", "image")
"""Keys of a dict query (``invoke({"text": ..., "image": ...})``): ``text`` (or ``query``) and ``image``."""


# Field validators: pydantic turns their ValueError into a ValidationError.


def _smart_index(value: Any) -> SmartIndex:
    """A SmartIndex, or the one behind a LlamaIndex ``SmartVectorIndex`` (both frameworks share a table)."""
    from ..index import SmartIndex

    inner = getattr(value, "smart_index", None)  # a SmartVectorIndex, without importing llama_index here
    if not isinstance(value, SmartIndex) and isinstance(inner, SmartIndex):
        return inner
    if not isinstance(value, SmartIndex):
        raise ValueError(  # noqa: TRY004 (pydantic wraps ValueError only)
            f"index must be a SmartIndex, got {type(value).__name__} (a LlamaIndex SmartVectorIndex works too)"
        )
    return value


def _check_documents(documents: Sequence[Any]) -> list[Document]:
    """LangChain Documents; a LlamaIndex one is named as such, with the conversion."""
    if isinstance(documents, Document):
        raise TypeError("expected a sequence of documents, not a single Document")
    documents = list(documents)
    for i, doc in enumerate(documents):
        if not isinstance(doc, Document):
            kind = f"{type(doc).__module__}.{type(doc).__name__}"
            hint = (
                " (a LlamaIndex object: convert it with doc.to_langchain_format(), "
                "or index it with smart_retrievers.llama_index.SmartVectorIndex)"
                if kind.startswith("llama_index")
                else ""
            )
            raise TypeError(f"documents[{i}] is a {kind}, not a langchain_core Document{hint}")
    return documents


def _warn_reserved(documents: Sequence[Document], keys: Sequence[str], what: str) -> None:
    """Warn (naming them) that metadata keys a result sets would replace the user's own."""
    clash = sorted({key for doc in documents for key in keys if key in doc.metadata})
    if clash:
        warnings.warn(
            f"metadata key(s) {clash} are set by {what} on the documents it returns, replacing the values "
            "stored under those names; rename them to keep both",
            UserWarning,
            stacklevel=3,
        )


def _encoder(value: Any) -> Any:
    from ..encoding import Encoder

    if not isinstance(value, Encoder):
        raise ValueError(f"encoder must be a SmartEncoder or a vision encoder, got {type(value).__name__}")  # noqa: TRY004 (as above)
    return value


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
    mode: SearchMode = "rerank"
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
        return _smart_index(value)

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
        compression: str | None = None,
        read_consistency_interval: timedelta | None = DEFAULT_READ_CONSISTENCY,
        **kwargs: Any,
    ) -> SmartRetriever:
        """Index ``texts`` (upserting by ``ids``) in the LanceDB at ``uri`` and return a retriever.

        ``encoder`` defaults to the bundled all-MiniLM-L6-v2 (a hub id or local directory is loaded); ``compression`` is the token codec
        of a new table and ``read_consistency_interval`` how often reads look for other
        processes' writes (see :class:`~smart_retrievers.SmartIndex`); ``kwargs`` are retriever
        fields (``k``, ``mode``, ``filter``...), validated before anything is written.
        """
        retriever = cls(index=_open_index(uri, encoder, table, compression, read_consistency_interval), **kwargs)
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
        compression: str | None = None,
        read_consistency_interval: timedelta | None = DEFAULT_READ_CONSISTENCY,
        **kwargs: Any,
    ) -> SmartRetriever:
        """Like :meth:`from_texts`, from ``Document`` objects (see :meth:`add_documents`)."""
        documents = _check_documents(documents)  # before a model is loaded or a table opened
        retriever = cls(index=_open_index(uri, encoder, table, compression, read_consistency_interval), **kwargs)
        retriever.add_documents(documents)
        return retriever

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
        documents = _check_documents(documents)
        if ids is None:
            ids = [doc.id or uuid.uuid4().hex for doc in documents]
        _warn_reserved(documents, _SCORE_KEYS, "SmartRetriever")
        return self.index.add_items(
            [doc.page_content for doc in documents],
            [document_image(doc) for doc in documents],
            ids=ids,
            metadatas=[doc.metadata for doc in documents],
            ref_ids=None if isinstance(ids, str) else list(ids),
        )

    def delete(self, ids: Sequence[str]) -> int:
        """Delete documents by id; returns how many were deleted (unknown ids are ignored)."""
        from ..validation import id_list  # the one id check: a single string is refused, never split

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
        docs = [_document(hit) for hit in hits]
        if self.evidence and image is None:  # off: no cost at all
            from ..explain import compact_evidence

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
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Mapping[str, Any] | None = None,
        candidates: int | None = None,
        mode: SearchMode | None = None,
        lambda_pool: float | None = None,
        lambda_late: float | None = None,
        image: ImageInput | None = None,
        modality: Modality | None = None,
    ) -> list[Document]:
        overrides = {
            "k": k,
            "where": filter,
            "candidates": candidates,
            "mode": mode,
            "lambda_pool": lambda_pool,
            "lambda_late": lambda_late,
            "modality": modality,
        }
        # Encoding and the LanceDB search are blocking: run them in a worker thread.
        return await asyncio.to_thread(self._search, query, image, overrides)

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


def _document(hit: Hit) -> Document:
    from ..encoders.images import location_field

    scores = dict(zip(_SCORE_KEYS, (hit.score, hit.pooled_score, hit.late_score)))
    metadata = {key: value for key, value in hit.metadata.items() if key != NODE_KEY}  # written by LlamaIndex
    metadata.update(scores)
    if hit.modality == "image" and hit.image and not any(metadata.get(key) for key in IMAGE_KEYS):
        # an image row written without LangChain: say where its image is
        key, location = location_field(hit.image)
        metadata[key] = location
    return Document(page_content=hit.text, metadata=metadata, id=hit.id)


def document_image(document: Document) -> str | None:
    """The image location of an image document (``metadata["image_path"]``, else
    ``metadata["image_url"]``), or None for a text document."""
    from ..encoders.images import image_location

    try:
        return image_location(*(document.metadata.get(key) for key in IMAGE_KEYS))
    except TypeError as exc:
        raise TypeError(f"document {document.id!r}, metadata {' or '.join(map(repr, IMAGE_KEYS))}: {exc}") from None


class SmartReranker(BaseDocumentCompressor):
    """Re-rank the documents of any retriever with SMART late interaction.

    ``compress_documents`` returns copies of the documents (the inputs are never modified),
    keeping ``id``, best first by the fused score, cut to ``top_n``, with
    ``metadata["relevance_score"]`` (the fused score), ``metadata["pooled_score"]`` and
    ``metadata["late_score"]``.

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
            bundled model.
        device: the device of the model loaded here (``model=`` or the bundled one).
        lambda_pool / lambda_late: fusion weights.
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
    batch_size: int | None = Field(default=None, ge=1)
    cache_size: int = Field(default=4096, ge=1)
    index: Any = None  # a SmartIndex or None (checked by _check_index)
    encoder: Any = None  # a SmartEncoder, a vision encoder or None (checked by _check_encoder)

    _scorer: Any = PrivateAttr()  # the SmartScorer doing the work

    @field_validator("index")
    @classmethod
    def _check_index(cls, value: Any) -> SmartIndex | None:
        return None if value is None else _smart_index(value)

    @field_validator("encoder")
    @classmethod
    def _check_encoder(cls, value: Any) -> Any:
        return None if value is None else _encoder(value)

    @model_validator(mode="after")
    def _check(self) -> SmartReranker:
        check_weights(self.lambda_pool, self.lambda_late)
        if self.model is not None and self.encoder is not None:
            raise ValueError("pass model= (a model to load) or encoder= (an encoder object), not both")
        if self.device is not None and (self.encoder is not None or self.index is not None):
            raise ValueError("device= applies only to a model loaded by the reranker (model=, or no index=/encoder=)")
        if self.model is not None and self.index is not None:
            raise ValueError("pass model= or index= (the reranker then uses the index's encoder), not both")
        if (
            self.index is not None
            and self.encoder is not None
            and self.encoder.fingerprint != self.index.encoder.fingerprint
        ):
            raise ValueError(
                "encoder differs from the index's encoder; the stored token states would not match (leave encoder unset)"
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        from ..encoders import as_encoder
        from ..rerank import SmartScorer

        encoder = self.encoder
        if encoder is None and self.index is None and (self.model is not None or self.device is not None):
            encoder = as_encoder(self.model, **({} if self.device is None else {"device": self.device}))
        self._scorer = SmartScorer(
            encoder,
            index=self.index,
            lambda_pool=self.lambda_pool,
            lambda_late=self.lambda_late,
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
        _warn_reserved(documents, ("relevance_score",), "SmartReranker")
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
            doc.metadata.update(zip(_RELEVANCE_KEYS, (cand.score, cand.pooled_score, cand.late_score)))
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


def _open_index(
    uri: str, encoder: SmartEncoder | None, table: str, compression: str | None, interval: timedelta | None
) -> SmartIndex:
    """The SmartIndex behind ``from_texts`` / ``from_documents``."""
    from ..index import SmartIndex

    return SmartIndex(uri, encoder=encoder, table=table, compression=compression, read_consistency_interval=interval)
