"""LlamaIndex integration: a SMART retriever, a SMART reranker and a LanceDB-backed index.

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
* :func:`to_smart_filter` translates ``MetadataFilters`` into :mod:`smart_retrievers.filters`.

Images: ``ImageNode`` (``image_path``, ``image_url`` or base64 ``image``), ``ImageDocument``
and any ``Document`` with an ``image_resource`` are indexed through the index's vision
encoder (:mod:`smart_retrievers.encoders`); retrieval returns them as ``ImageNode``. Every
image path or URL goes through the encoder's :class:`~smart_retrievers.encoders.ImagePolicy`
(allowed roots, URLs off by default, size and time limits): a refused node raises
``ImageLoadError`` naming its position and id before anything is written.

Only ``llama_index.core`` is imported (``pip install "smart-retrievers[llama-index]"``).
"""

from __future__ import annotations

import asyncio
import base64
import difflib
import inspect
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import llama_index.core.instrumentation as instrument
import numpy as np
from llama_index.core.base.base_multi_modal_retriever import MultiModalRetriever
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.data_structs.data_structs import IndexDict
from llama_index.core.data_structs.registry import INDEX_STRUCT_TYPE_TO_INDEX_STRUCT_CLASS
from llama_index.core.indices.managed.base import BaseManagedIndex
from llama_index.core.indices.query.schema import QueryType
from llama_index.core.indices.registry import INDEX_STRUCT_TYPE_TO_INDEX_CLASS
from llama_index.core.ingestion import run_transformations
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import (
    BaseNode,
    Document,
    ImageDocument,
    ImageNode,
    IndexNode,
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
    TransformComponent,
)
from llama_index.core.storage.docstore.types import BaseDocumentStore, RefDocInfo
from llama_index.core.storage.storage_context import StorageContext
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from ..filters import And, Condition, Filter, Not, Or
from ..options import Modality, SearchMode, SearchOptions, check_weights

if TYPE_CHECKING:  # the index, the encoders and torch are imported when first needed
    from ..encoders import SmartEncoder
    from ..encoders.images import ImageInput
    from ..encoding import Encoding
    from ..index import Hit, SmartIndex

__all__ = ["NODE_KEY", "SmartNodeWithScore", "SmartRerank", "SmartRetriever", "SmartVectorIndex", "to_smart_filter"]

logger = logging.getLogger(__name__)
dispatcher = instrument.get_dispatcher(__name__)

NODE_KEY = "_llama_index"
"""Reserved metadata key under which :class:`SmartVectorIndex` keeps what rebuilds a node."""

# TextNode fields kept under NODE_KEY (id, text and metadata have their own columns).
_NODE_FIELDS = (
    "excluded_embed_metadata_keys",
    "excluded_llm_metadata_keys",
    "relationships",
    "metadata_template",
    "metadata_separator",
    "text_template",
    "mimetype",
    "start_char_idx",
    "end_char_idx",
)

_OPERATORS = {
    FilterOperator.EQ: "eq",
    FilterOperator.NE: "ne",
    FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt",
    FilterOperator.LTE: "lte",
    FilterOperator.IN: "in",
    FilterOperator.NIN: "nin",
    FilterOperator.ANY: "in",
    FilterOperator.CONTAINS: "contains",
    FilterOperator.TEXT_MATCH: "text_match",
    FilterOperator.TEXT_MATCH_INSENSITIVE: "text_match_insensitive",
    FilterOperator.IS_EMPTY: "is_empty",
}
_SUPPORTED = ", ".join(op.name for op in [*_OPERATORS, FilterOperator.ALL])


# ---- filters -----------------------------------------------------------------


def to_smart_filter(filters: MetadataFilters | None) -> Filter | None:
    """Translate LlamaIndex ``MetadataFilters`` into the :mod:`smart_retrievers.filters` model.

    ``EQ NE GT GTE LT LTE IN NIN CONTAINS TEXT_MATCH TEXT_MATCH_INSENSITIVE IS_EMPTY`` map to
    the operators of the same name; ``ANY`` is ``IN`` (on a list field: "has any of these") and ``ALL`` is an AND
    of ``EQ`` (on a list field: "has all of these"). Conditions ``AND``/``OR`` combine the
    filters, ``NOT`` matches rows matching none of them (as LlamaIndex's simple vector
    store does); ``MetadataFilters`` nest. An empty ``MetadataFilters`` matches every row.
    Missing fields follow :mod:`smart_retrievers.filters` (only ``NE``/``NIN`` match them;
    a key no row holds matches nothing, as in LlamaIndex's LanceDB and Chroma stores).
    The keys ``id`` and ``ref_id`` are the node id and its source document id;
    ``doc_id`` and ``ref_doc_id`` are ``ref_id`` too (unless a metadata field has that name).

    Raises:
        ValueError: for an operator LanceDB cannot express here or a malformed value.
        TypeError: if ``filters`` is not a ``MetadataFilters``.
    """
    if filters is None:
        return None
    if not isinstance(filters, MetadataFilters):
        raise TypeError(f"filters must be a llama_index MetadataFilters, got {type(filters).__name__}")
    return _convert_filters(filters)


def _convert_filters(filters: MetadataFilters) -> Filter:
    children = tuple(_convert(item) for item in filters.filters)
    if not children:
        return And(())
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return And(children)
    if condition == FilterCondition.OR:
        return Or(children)
    if condition == FilterCondition.NOT:
        return Not(Or(children))
    raise ValueError(f"Unsupported filter condition {condition!r}; supported: and, or, not")


def _convert(item: MetadataFilter | MetadataFilters) -> Filter:
    if isinstance(item, MetadataFilters):
        return _convert_filters(item)
    op = FilterOperator(item.operator)
    if op == FilterOperator.ALL:
        if not isinstance(item.value, list):
            raise ValueError(f"FilterOperator.ALL expects a list of values for key {item.key!r}, got {item.value!r}")
        return And(tuple(Condition(item.key, "eq", value) for value in item.value))
    if op not in _OPERATORS:
        raise ValueError(
            f"FilterOperator.{op.name} (key {item.key!r}) is not supported by SMART's LanceDB filters; supported operators: {_SUPPORTED}"
        )
    return Condition(item.key, _OPERATORS[op], item.value)


def _id_filter(column: str, values: Sequence[str] | None, name: str) -> Filter | None:
    """``column IN values``; None or an empty list means no constraint, as in ``VectorIndexRetriever``."""
    if values is None:
        return None
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{name} must be a list of str, got {values!r}")
    return Condition(column, "in", list(values)) if values else None


# ---- nodes <-> rows ------------------------------------------------------------


class SmartNodeWithScore(NodeWithScore):
    """A ``NodeWithScore`` scored by SMART.

    ``score`` is the fused score ``lambda_pool * pooled_score + lambda_late * late_score``
    that ranks the nodes; the two parts are kept here rather than in the node's metadata,
    so they never reach the LLM prompt or the node itself. ``late_score`` is None when no
    late interaction was computed (``mode="pooled"`` or ``lambda_late=0``).
    """

    pooled_score: float | None = None
    late_score: float | None = None

    @classmethod
    def class_name(cls) -> str:
        return "SmartNodeWithScore"


def _foreign(obj: Any) -> str:
    """A hint for an object of another framework (LangChain's ``Document``), else ""."""
    module = type(obj).__module__ or ""
    if module.startswith("langchain"):
        return (
            f" ({module}.{type(obj).__name__} is a LangChain object; LlamaIndex's SmartVectorIndex takes "
            "llama_index.core Documents/nodes: convert with llama_index.core.Document.from_langchain_format(doc), "
            "or use smart_retrievers.langchain.SmartRetriever)"
        )
    return ""


def _check_node(node: BaseNode) -> TextNode:
    if not isinstance(node, BaseNode):
        raise TypeError(f"expected llama_index nodes, got {type(node).__name__}{_foreign(node)}")
    if not isinstance(node, TextNode) or isinstance(node, IndexNode):
        raise TypeError(
            f"SmartVectorIndex stores text and image nodes only; node {node.node_id!r} is a {type(node).__name__}"
        )
    if NODE_KEY in node.metadata:
        raise ValueError(f"node {node.node_id!r}: metadata key {NODE_KEY!r} is reserved by SmartVectorIndex")
    return node


def _node_row(node: TextNode, doc_hash: str | None) -> tuple[str, dict[str, Any]]:
    """The text to encode and store (the node's embed content) and the row's metadata."""
    content = node.get_content(metadata_mode=MetadataMode.EMBED)
    dumped = node.model_dump(mode="json", include=set(_NODE_FIELDS), exclude_defaults=True)
    fields = {key: value for key, value in dumped.items() if key in _NODE_FIELDS}
    if node.text != content:  # the row holds what was encoded; keep the node's own text too
        fields["text"] = node.text
    if isinstance(node, ImageNode) and node.image_mimetype:
        fields["image_mimetype"] = node.image_mimetype
    info: dict[str, Any] = {"node": fields}
    if doc_hash is not None:
        info["doc_hash"] = doc_hash
    return content, {**node.metadata, NODE_KEY: info}


def _hit_node(hit: Hit) -> TextNode:
    """Rebuild the node of a stored row (rows written without SmartVectorIndex too).

    Image rows become an ``ImageNode`` whose ``image_url`` (URLs) or ``image_path`` (local
    paths) is the stored location; an image indexed from inline data without a location
    comes back without its image.
    """
    metadata = dict(hit.metadata)
    info = metadata.pop(NODE_KEY, None)
    fields = dict((info or {}).get("node", {}))
    text = fields.pop("text", hit.text)
    # a row written without LlamaIndex (LangChain, SmartIndex.add): its source document is its ref_id, else the
    # row itself (a LangChain Document is its own source), so ref_doc_id is never None for it
    source = hit.ref_id if info is not None else (hit.ref_id or hit.id)
    if "relationships" not in fields and source:
        fields["relationships"] = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=source)}
    if hit.modality != "image":
        return TextNode(id_=hit.id, text=text, metadata=metadata, **fields)
    from ..encoders.images import location_field

    location = dict([location_field(hit.image)]) if hit.image else {}
    return ImageNode(id_=hit.id, text=text, metadata=metadata, **location, **fields)


def _node_image(node: BaseNode, *, required: bool = True) -> ImageInput | None:
    """The image of an image node or document (None for a text node).

    ``ImageNode``: ``image_path``, else ``image_url``, else the base64 ``image``; any other
    node: its ``image_resource`` (``path``, else ``url``, else base64 ``data``). An
    ``ImageNode`` with none of them raises if ``required``, else gives None.
    """
    from ..encoders.images import image_location

    if isinstance(node, ImageNode):
        path, url, data = node.image_path, node.image_url, node.image
    else:
        resource = getattr(node, "image_resource", None)
        if resource is None:
            return None
        path, url, data = resource.path, resource.url, resource.data
    location = image_location(path, None if url is None else str(url))  # str(): a pydantic AnyUrl
    if location is not None:
        return location
    if data:
        return base64.b64decode(data)
    if isinstance(node, ImageNode) and required:
        raise ValueError(f"ImageNode {node.node_id!r} has no image (image_path, image_url or image)")
    return None


def _as_image_document(document: Document) -> Document:
    """A ``Document`` carrying an ``image_resource`` as an ``ImageDocument``, so node
    parsers keep its image (they turn ``ImageDocument`` into ``ImageNode``)."""
    if isinstance(document, ImageDocument) or getattr(document, "image_resource", None) is None:
        return document
    fields = document.model_dump(exclude={"image_resource", "class_name"})
    return ImageDocument(**fields, image_resource=document.image_resource)


def _smart_index(index: SmartIndex | SmartVectorIndex) -> SmartIndex:
    from ..index import SmartIndex

    if isinstance(index, SmartVectorIndex):
        return index.smart_index
    if isinstance(index, SmartIndex):
        return index
    raise TypeError(f"index must be a SmartIndex or SmartVectorIndex, got {type(index).__name__}")


def _encode_query_bundle(encoder: SmartEncoder, query_bundle: QueryBundle) -> Encoding:
    """Encode a query bundle's ``embedding_strs`` (``custom_embedding_strs`` or ``query_str``).

    Several strings (e.g. HyDE's hypothetical document plus the query) give one query whose
    pooled vector is their normalised mean, as LlamaIndex aggregates embeddings, and whose
    token states are all of theirs. A precomputed ``query_bundle.embedding`` is never used:
    it may come from another model and carries no token states.

    A bundle with an ``image_path`` is an image query (the encoder must be a vision
    encoder); its strings, if any, are encoded with the image as one interleaved query
    (Qwen-VL encoders; CLIP/SigLIP take an image or a text, not both).
    """
    from ..encoders import reads_images
    from ..encoding import Encoding

    if not isinstance(query_bundle, QueryBundle):
        raise TypeError(f"expected a QueryBundle, got {type(query_bundle).__name__}")
    texts = query_bundle.embedding_strs
    if query_bundle.image_path:
        if not reads_images(encoder):
            raise TypeError(f"an image query needs a vision encoder; {type(encoder).__name__} cannot encode images")
        text = "\n".join(t for t in texts if t.strip()) or None
        return encoder.encode_inputs(texts=[text], images=[query_bundle.image_path], query=True, show_progress=False)[0]
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError(
            f"the query has no text to encode (query_str={query_bundle.query_str!r}, custom_embedding_strs={query_bundle.custom_embedding_strs!r})"
        )
    if query_bundle.embedding is not None:
        logger.debug("ignoring QueryBundle.embedding: SMART encodes the query text itself")
    encodings = encoder.encode_queries(list(texts), show_progress=False)
    if len(encodings) == 1:
        return encodings[0]
    pooled = np.mean([e.pooled for e in encodings], axis=0)
    return Encoding(
        pooled=(pooled / np.linalg.norm(pooled)).astype(np.float32),
        tokens=np.concatenate([e.tokens for e in encodings]),
        modality="text",
    )


# ---- retriever -------------------------------------------------------------------


class SmartRetriever(MultiModalRetriever):
    """Retrieve nodes from a SMART index: pooled candidates, then late interaction.

    The arguments follow ``VectorIndexRetriever``, so ``index.as_retriever(...)`` calls
    carry over, plus SMART's own. Every result is a :class:`SmartNodeWithScore` whose node
    is a ``TextNode`` (an ``ImageNode`` for image rows) with its stored id, text, metadata
    and relationships (``ref_doc_id`` as SOURCE), scored by the fused SMART score.

    Like LlamaIndex's ``MultiModalRetriever``: ``retrieve`` searches every row (a
    ``QueryBundle`` with an ``image_path`` is an image query), ``text_retrieve`` returns
    text nodes only, ``text_to_image_retrieve`` image nodes for a text query and
    ``image_to_image_retrieve`` image nodes for an image (a path or URL string, or a
    ``QueryBundle`` with ``image_path``). Image queries need a vision encoder.

    Args:
        index: a :class:`SmartVectorIndex` or a :class:`~smart_retrievers.SmartIndex`.
        similarity_top_k: number of nodes returned.
        filters: LlamaIndex ``MetadataFilters`` (see :func:`to_smart_filter`), applied
            before the search.
        node_ids: only these node ids (None or empty: no constraint).
        doc_ids: only nodes of these source documents (None or empty: no constraint).
        mode: ``"rerank"`` (pooled top-``candidates``, then exact SMART), ``"exhaustive"``
            (exact SMART over every matching row) or ``"pooled"`` (single-vector cosine).
        candidates: pooled candidates re-scored in ``"rerank"`` mode (None: the index's).
        lambda_pool / lambda_late: fusion weights (None: the index's).
        image_similarity_top_k: number of image nodes returned by ``text_to_image_retrieve``
            and ``image_to_image_retrieve`` (None: ``similarity_top_k``).
        evidence: for a text query, put each text node's top matched spans in
            ``node.metadata["smart_evidence"]`` (``text``, ``start`` / ``end`` in ``node.text``, or
            None for a matched metadata value, ``share``, ``similarity``, ``query_tokens``;
            JSON-serialisable, from :func:`~smart_retrievers.explain.compact_evidence`, against
            ``query_str``), and list the
            key in the node's ``excluded_embed_metadata_keys`` and ``excluded_llm_metadata_keys`` so
            it never reaches a prompt. The hits' texts are re-encoded (one batched forward pass
            per search, plus the query); off by default, and free when off.
        callback_manager / verbose: as for any ``BaseRetriever``.

    Example:
        >>> import tempfile
        >>> from llama_index.core.schema import TextNode
        >>> from llama_index.core.vector_stores import MetadataFilters
        >>> tmp = tempfile.TemporaryDirectory()  # or "./smart_db", "s3://bucket/db"...
        >>> index = SmartVectorIndex(
        ...     [
        ...         TextNode(id_="k7", text="Code K7 labels the red star.", metadata={"year": 2021}),
        ...         TextNode(id_="p2", text="Code P2 labels the blue circle.", metadata={"year": 2022}),
        ...         TextNode(id_="k9", text="Code K9 labelled the red star.", metadata={"year": 2019}),
        ...     ],
        ...     uri=tmp.name,
        ... )
        >>> filters = MetadataFilters.from_dicts([{"key": "year", "value": 2020, "operator": ">="}])
        >>> retriever = SmartRetriever(index, similarity_top_k=1, filters=filters)
        >>> [(n.node.node_id, n.node.metadata) for n in retriever.retrieve("which code labels the red star?")]
        [('k7', {'year': 2021})]
        >>> tmp.cleanup()

        With a vision encoder, ``retriever.text_to_image_retrieve("a dog on a beach")``
        returns image nodes.
    """

    def __init__(
        self,
        index: SmartIndex | SmartVectorIndex,
        similarity_top_k: int = DEFAULT_SIMILARITY_TOP_K,
        filters: MetadataFilters | None = None,
        node_ids: Sequence[str] | None = None,
        doc_ids: Sequence[str] | None = None,
        *,
        mode: SearchMode = "rerank",
        candidates: int | None = None,
        lambda_pool: float | None = None,
        lambda_late: float | None = None,
        image_similarity_top_k: int | None = None,
        evidence: bool = False,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        self._index = _smart_index(index)
        if not isinstance(evidence, bool):
            raise TypeError(f"evidence must be a bool, got {type(evidence).__name__}")
        self._evidence = evidence
        parts = [
            f
            for f in (
                to_smart_filter(filters),
                _id_filter("id", node_ids, "node_ids"),
                _id_filter("ref_id", doc_ids, "doc_ids"),
            )
            if f is not None
        ]
        # None: the index's default, resolved by the index at each search
        self._options = SearchOptions(
            mode=mode,
            candidates=candidates,
            lambda_pool=lambda_pool,
            lambda_late=lambda_late,
            where=And(tuple(parts)) if parts else None,
        )
        self._index.resolve(self._options)  # raises now, not at the first search, if the settings do not fit the index
        self.similarity_top_k = similarity_top_k
        self._image_similarity_top_k = (
            None if image_similarity_top_k is None else _top_k("image_similarity_top_k", image_similarity_top_k)
        )
        if callback_manager is None and isinstance(index, SmartVectorIndex):
            callback_manager = index._callback_manager  # its handlers (TokenCountingHandler...) see the queries too
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def similarity_top_k(self) -> int:
        """Number of nodes returned."""
        return self._similarity_top_k

    @similarity_top_k.setter
    def similarity_top_k(self, value: int) -> None:
        self._similarity_top_k = _top_k("similarity_top_k", value)

    def _search(self, query_bundle: QueryBundle, k: int, modality: Modality | None = None) -> list[NodeWithScore]:
        options = self._index.resolve(self._options, k=k, modality=modality)
        hits = self._index.search_encoded(self._encode(query_bundle), options=options)
        has_late = options.mode != "pooled" and options.lambda_late != 0
        nodes = [_hit_node(hit) for hit in hits]
        if self._evidence and not query_bundle.image_path:  # off: no cost at all
            from ..explain import compact_evidence

            query = query_bundle.query_str if query_bundle.query_str.strip() else "\n".join(query_bundle.embedding_strs)
            for node, hit, spans in zip(nodes, hits, compact_evidence(self._index, query, hits)):
                if spans is not None:  # text rows only
                    _add_evidence(node, spans, hit.text)
        return [
            SmartNodeWithScore(
                node=node,
                score=hit.score,
                pooled_score=hit.pooled_score,
                late_score=hit.late_score if has_late else None,
            )
            for node, hit in zip(nodes, hits)
        ]

    def _encode(self, query_bundle: QueryBundle) -> Encoding:
        """The query's encoding, inside a ``CBEventType.EMBEDDING`` event (as a VectorStoreIndex query embeds)."""
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: {"model_name": _model_id(self._index.encoder)}}
        ) as event:
            query = _encode_query_bundle(self._index.encoder, query_bundle)
            chunks = [t for t in query_bundle.embedding_strs if t] if isinstance(query_bundle, QueryBundle) else []
            event.on_end(payload={EventPayload.CHUNKS: chunks, EventPayload.EMBEDDINGS: [query.pooled.tolist()]})
        return query

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._search(query_bundle, self._similarity_top_k)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Encoding and the LanceDB search block: keep them off the event loop.
        return await asyncio.to_thread(self._retrieve, query_bundle)

    # ---- MultiModalRetriever ------------------------------------------------

    @property
    def _image_k(self) -> int:
        return self._image_similarity_top_k or self._similarity_top_k

    def text_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        """Text nodes only, for a text query."""
        return self._search(_bundle(str_or_query_bundle), self._similarity_top_k, "text")

    def text_to_image_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        """Image nodes only (``image_similarity_top_k`` of them), for a text query."""
        return self._text_to_image_retrieve(_bundle(str_or_query_bundle))

    def image_to_image_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        """Image nodes only, for an image query: a path/URL string or a ``QueryBundle`` with ``image_path``."""
        return self._image_to_image_retrieve(_bundle(str_or_query_bundle, image=True))

    def _text_to_image_retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._search(query_bundle, self._image_k, "image")

    def _image_to_image_retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if not query_bundle.image_path:
            raise ValueError(
                "image_to_image_retrieve needs an image: pass its path/URL or a QueryBundle with image_path"
            )
        return self._search(query_bundle, self._image_k, "image")

    async def atext_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        return await asyncio.to_thread(self.text_retrieve, str_or_query_bundle)

    async def atext_to_image_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        return await asyncio.to_thread(self.text_to_image_retrieve, str_or_query_bundle)

    async def aimage_to_image_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        return await asyncio.to_thread(self.image_to_image_retrieve, str_or_query_bundle)

    async def _atext_to_image_retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._text_to_image_retrieve, query_bundle)

    async def _aimage_to_image_retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._image_to_image_retrieve, query_bundle)


EVIDENCE_KEY = "smart_evidence"
"""Node metadata key of ``SmartRetriever(evidence=True)``'s match evidence (kept out of embed and LLM content)."""


def _add_evidence(node: TextNode, spans: list[dict[str, Any]], encoded: str) -> None:
    """Put the evidence on the node, excluded from what LlamaIndex embeds and sends to the LLM.

    Spans come in the row's text (``encoded``: a SmartVectorIndex row holds the node's embed
    content, its metadata around its text); they are moved to ``node.text``. A span outside it
    (a metadata value that matched) keeps its ``text`` with ``start`` / ``end`` None.
    """
    offset = encoded.find(node.text)
    for span in spans:
        if span["start"] is None:
            continue
        start, end = span["start"] - offset, span["end"] - offset
        inside = offset >= 0 and 0 <= start and end <= len(node.text)
        span["start"], span["end"] = (start, end) if inside else (None, None)
    node.metadata[EVIDENCE_KEY] = spans
    for keys in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
        if EVIDENCE_KEY not in keys:
            keys.append(EVIDENCE_KEY)


def _top_k(name: str, value: Any) -> int:
    """``value``, checked as a number of results (SearchOptions' ``k``), under its LlamaIndex name."""
    try:
        return SearchOptions(k=value).k
    except ValueError:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}") from None


def _bundle(str_or_query_bundle: QueryType, *, image: bool = False) -> QueryBundle:
    """A ``QueryBundle`` for a query string (an image path/URL when ``image``), as LlamaIndex builds it."""
    if isinstance(str_or_query_bundle, QueryBundle):
        return str_or_query_bundle
    if not isinstance(str_or_query_bundle, str):
        raise TypeError(f"expected a str or QueryBundle, got {type(str_or_query_bundle).__name__}")
    return (
        QueryBundle(query_str="", image_path=str_or_query_bundle)
        if image
        else QueryBundle(query_str=str_or_query_bundle)
    )


def _model_id(encoder: Any) -> str:
    """What loads ``encoder`` again through :func:`~smart_retrievers.encoders.as_encoder`: the bundled
    model's name, else the hub id / directory it was loaded from (else its name)."""
    from ..encoders import BUNDLED_MODEL_NAMES

    name = getattr(encoder, "name", None)
    if name in BUNDLED_MODEL_NAMES:
        return name
    return str(getattr(encoder, "model_name_or_path", None) or name or type(encoder).__name__)


# ---- reranker ------------------------------------------------------------------------


class SmartRerank(BaseNodePostprocessor):
    """Re-rank the nodes of any retriever with SMART late interaction.

    Each node is scored on ``node.get_content(metadata_mode=MetadataMode.EMBED)`` (what an
    embedding model sees), an image node on its image (through a vision encoder; an
    ``ImageNode`` without image data, e.g. one indexed from inline data, on its text), and
    returned as a :class:`SmartNodeWithScore`, best first, cut to ``top_n``. A query bundle
    with an ``image_path`` is an image query. Nodes are encoded once and kept in an LRU cache; with an ``index``, nodes
    whose id the index holds with that same content reuse its stored token states, without
    a forward pass. The input nodes are never modified. Like LlamaIndex's rerankers it emits
    ``ReRankStartEvent``/``ReRankEndEvent`` and a ``CBEventType.RERANKING`` callback event.

    Args:
        top_n: how many nodes to return (None: all of them, re-ordered).
        model: the model to load and score with, as ``ColbertRerank(model=...)`` takes it: a
            hub id or a local directory (text or vision, through
            :func:`~smart_retrievers.encoders.load_encoder`); ``"all-MiniLM-L6-v2"`` is the
            bundled model. Default: the index's encoder, else the bundled model. After
            construction ``model`` holds the loadable id of the encoder in use, so
            ``SmartRerank.from_dict(rerank.to_dict())`` rebuilds the same reranker (without ``index``).
        index: an optional :class:`SmartVectorIndex` or :class:`~smart_retrievers.SmartIndex`
            whose stored token states are reused.
        encoder: an encoder object (default: the index's, else ``model``'s).
        lambda_pool / lambda_late: fusion weights.
        keep_retrieval_score: put each node's previous score in ``metadata["retrieval_score"]``
            of the returned copy.
        device: the device of the encoder loaded when neither ``index`` nor ``encoder`` is given.
        batch_size: encoder batch size for nodes not stored or cached.
        cache_size: how many encoded nodes the LRU cache keeps.
        callback_manager: LlamaIndex callback manager.

    Example:
        >>> from llama_index.core import Document, VectorStoreIndex
        >>> from llama_index.core.embeddings import MockEmbedding
        >>> from llama_index.core.llms import MockLLM
        >>> texts = {"p2": "Code P2 labels the blue circle.", "k7": "Code K7 labels the red star.", "m4": "Code M4 labels the yellow triangle."}
        >>> vector_index = VectorStoreIndex.from_documents(  # any index; a mock embedding keeps this offline
        ...     [Document(id_=i, text=t) for i, t in texts.items()], embed_model=MockEmbedding(embed_dim=8)
        ... )
        >>> query_engine = vector_index.as_query_engine(
        ...     llm=MockLLM(), similarity_top_k=20, node_postprocessors=[SmartRerank(top_n=1)]
        ... )
        >>> [n.node.ref_doc_id for n in query_engine.query("which code labels the red star?").source_nodes]
        ['k7']
    """

    model: str = Field(default="", description="Name of the encoder scoring the nodes.")
    top_n: int | None = Field(default=3, ge=1, description="Number of nodes returned (None: all).")
    lambda_pool: float = Field(default=1.0, ge=0, description="Weight of the pooled cosine.")
    lambda_late: float = Field(default=1.0, ge=0, description="Weight of the late-interaction score.")
    keep_retrieval_score: bool = Field(
        default=False, description="Keep the previous score in metadata['retrieval_score']."
    )
    device: str = Field(default="", description="Device of the encoder.")
    batch_size: int = Field(default=32, ge=1, description="Encoder batch size for nodes not stored or cached.")
    cache_size: int = Field(default=4096, ge=1, description="Encoded nodes kept in the LRU cache.")

    _scorer: Any = PrivateAttr()  # the SmartScorer doing the work

    def __init__(
        self,
        top_n: int | None = 3,
        *,
        model: str | None = None,
        index: SmartIndex | SmartVectorIndex | None = None,
        encoder: SmartEncoder | str | None = None,
        lambda_pool: float = 1.0,
        lambda_late: float = 1.0,
        keep_retrieval_score: bool = False,
        device: str | None = None,
        batch_size: int = 32,
        cache_size: int = 4096,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        # validate the fields before loading a model
        super().__init__(
            top_n=top_n,
            lambda_pool=lambda_pool,
            lambda_late=lambda_late,
            keep_retrieval_score=keep_retrieval_score,
            batch_size=batch_size,
            cache_size=cache_size,
            callback_manager=callback_manager or CallbackManager(),
        )
        from ..encoders import as_encoder
        from ..rerank import SmartScorer

        check_weights(lambda_pool, lambda_late)
        smart_index = None if index is None else _smart_index(index)
        if model == "":  # to_dict() of a reranker that never loaded a model
            model = None
        if model is not None and not isinstance(model, (str, Path)):
            raise TypeError(
                f"model must be a hub id or a model directory (str), got {type(model).__name__}; pass encoder objects as encoder="
            )
        if model is not None and encoder is not None:
            raise ValueError("pass model= (a model to load) or encoder= (an encoder object), not both")
        if model is not None and smart_index is not None and _model_id(smart_index.encoder) != str(model):
            raise ValueError(
                f"model={model!r} differs from the index's encoder {_model_id(smart_index.encoder)!r}; its stored token "
                "states would not match (leave model unset to use the index's)"
            )
        if model is not None and smart_index is None:
            encoder = str(model)
        if isinstance(encoder, (str, Path)):  # a hub id or directory, loaded here (on device=)
            encoder = as_encoder(encoder, **({} if device is None else {"device": device}))
            device = None
        if smart_index is not None and encoder is not None and encoder.fingerprint != smart_index.encoder.fingerprint:
            raise ValueError(
                "encoder differs from the index's encoder; its stored token states would not match (leave encoder unset)"
            )
        if device is not None and (encoder is not None or smart_index is not None):
            raise ValueError(
                "device= applies only when SmartRerank loads its own encoder (no index= or encoder= given)"
            )
        if encoder is None and smart_index is None:
            encoder = as_encoder(None, **({} if device is None else {"device": device}))
        # with an index and no encoder, the scorer follows the index's current encoder
        self._scorer = SmartScorer(
            encoder,
            index=smart_index,
            lambda_pool=lambda_pool,
            lambda_late=lambda_late,
            batch_size=batch_size,
            cache_size=cache_size,
        )
        self.model, self.device = _model_id(self._scorer.encoder), str(self._scorer.encoder.device)

    @classmethod
    def class_name(cls) -> str:
        return "SmartRerank"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("SmartRerank needs the query: pass query_bundle= or query_str=")
        if not nodes:
            return []
        dispatcher.event(
            ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self.top_n or len(nodes), model_name=self.model)
        )
        payload = {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model,
            EventPayload.QUERY_STR: query_bundle.query_str,
            EventPayload.TOP_K: self.top_n,
        }
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:
            query = _encode_query_bundle(self._scorer.encoder, query_bundle)
            texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
            images = [_node_image(n.node, required=False) for n in nodes]
            # stored token states are reused only where the index holds this id with this content
            ranked = self._scorer.score(
                query,
                texts,
                [n.node.node_id for n in nodes],
                images=images if any(im is not None for im in images) else None,
                top_n=self.top_n,
            )
            reranked: list[NodeWithScore] = [
                self._scored(nodes[c.position], c.score, c.pooled_score, c.late_score) for c in ranked
            ]
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    def _scored(self, original: NodeWithScore, score: float, pooled: float, late: float) -> SmartNodeWithScore:
        node = original.node
        if self.keep_retrieval_score:
            node = node.model_copy(update={"metadata": {**node.metadata, "retrieval_score": original.score}})
        return SmartNodeWithScore(
            node=node, score=score, pooled_score=pooled, late_score=late if self.lambda_late != 0 else None
        )


# ---- index ---------------------------------------------------------------------------

SMART_STRUCT_TYPE = "smart_lancedb"
"""The index struct type under which ``storage_context.persist`` saves a :class:`SmartVectorIndex`."""


@dataclass
class SmartIndexStruct(IndexDict):
    """What ``index.storage_context.persist(persist_dir=...)`` saves for a :class:`SmartVectorIndex`: a
    pointer to its LanceDB table (the nodes stay in the table), so that
    ``load_index_from_storage(StorageContext.from_defaults(persist_dir=...))`` opens it again.

    ``encoder`` is the hub id or directory of the encoder (see :func:`_model_id`); an encoder that
    cannot be loaded by name (a custom object) is saved as None with ``custom_encoder`` set, and
    loading then needs ``encoder=``. Credentials (``storage_options``, ``api_key``) are never saved:
    pass them to ``load_index_from_storage(..., storage_options=...)``.
    """

    uri: str | None = None
    table: str = "smart"
    encoder: str | None = None
    custom_encoder: str | None = None
    options: dict[str, Any] = dataclass_field(default_factory=dict)

    @classmethod
    def get_type(cls) -> str:  # type: ignore[override]
        return SMART_STRUCT_TYPE


INDEX_STRUCT_TYPE_TO_INDEX_STRUCT_CLASS[SMART_STRUCT_TYPE] = SmartIndexStruct  # type: ignore[index]


def _pointer(smart: SmartIndex, struct: SmartIndexStruct | None) -> SmartIndexStruct:
    """``struct`` (a new one if None) pointing at ``smart``'s table."""
    struct = struct or SmartIndexStruct()
    uri = smart.store.uri
    if "://" not in uri:  # a local path: absolute, so loading works from another directory
        uri = str(Path(uri).resolve())
    loadable = hasattr(smart.encoder, "model_name_or_path")
    struct.uri, struct.table = uri, smart.store.table_name
    struct.encoder = _model_id(smart.encoder) if loadable else None
    struct.custom_encoder = None if loadable else type(smart.encoder).__name__
    struct.options = {
        "lambda_pool": smart.lambda_pool,
        "lambda_late": smart.lambda_late,
        "candidates": smart.candidates,
    }
    return struct


def _embed_model_encoder(embed_model: Any) -> Any:
    """The SMART encoder behind ``embed_model=``: a ``SmartEmbedding``'s; any other embed model is refused."""
    try:
        from .llama_index_store import SmartEmbedding  # type: ignore[attr-defined]
    except ImportError:
        SmartEmbedding = None  # noqa: N806
    if SmartEmbedding is not None and isinstance(embed_model, SmartEmbedding):
        for name in ("encoder", "_encoder"):
            encoder = getattr(embed_model, name, None)
            if encoder is not None and hasattr(encoder, "encode_documents"):
                return encoder
    named = getattr(embed_model, "model_name", None)
    hint = f", e.g. encoder={named!r}" if isinstance(named, str) and named not in ("", "unknown") else ""
    raise TypeError(
        f"SmartVectorIndex cannot use embed_model={type(embed_model).__name__}: SMART scores with the token states "
        "(per-token hidden states) of the same forward pass that gives the pooled vector, and an embedding "
        "model's API returns only the pooled vector. Pass the model itself as encoder= (a hub id, a local directory or an "
        f"encoder object){hint}; the index loads it and keeps both"
        + (" (or pass a SmartEmbedding)" if SmartEmbedding is not None else "")
    )


def _check_documents(documents: list[Any]) -> None:
    bad = next((d for d in documents if not isinstance(d, Document)), None)
    if bad is not None:
        raise TypeError(
            f"expected llama_index Document objects, got {type(bad).__module__}.{type(bad).__name__}{_foreign(bad)}"
        )


def _check_index_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Unknown keyword arguments, refused by name (LanceDB's own error would print their whole repr)."""
    import lancedb

    from ..index import SmartIndex

    known = set()
    for function in (SmartIndex.__init__, lancedb.connect):
        known |= {
            name
            for name, param in inspect.signature(function).parameters.items()
            if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
        }
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(
            f"SmartVectorIndex got unexpected keyword argument(s) {unknown}; it takes uri=, index=, encoder=, table=, "
            "transformations=, storage_context=, embed_model= (a SmartEmbedding) and SmartIndex's options"
        )


def _check_storage_context(storage_context: StorageContext | None) -> None:
    """A storage context holding another vector store would be silently unused: refuse it, briefly."""
    if storage_context is None:
        return
    if not isinstance(storage_context, StorageContext):
        raise TypeError(f"storage_context must be a llama_index StorageContext, got {type(storage_context).__name__}")
    stores = {name: type(store).__name__ for name, store in storage_context.vector_stores.items()}
    foreign = {name: kind for name, kind in stores.items() if kind != "SimpleVectorStore"}
    if foreign:
        raise ValueError(
            f"SmartVectorIndex keeps its nodes in its own LanceDB table (uri=, table=), so the storage_context's "
            f"vector store ({', '.join(sorted(set(foreign.values())))}) would never be used; pass uri= instead "
            "(a storage_context without a vector store is fine: persist() saves a pointer to the table)"
        )


class SmartVectorIndex(BaseManagedIndex):
    """A LlamaIndex index whose nodes live in a SMART LanceDB table.

    Nodes are stored one per row: node id as row id, ``ref_doc_id`` as ``ref_id``, node
    metadata as filterable metadata, and the node's embed content
    (``get_content(MetadataMode.EMBED)``) as the encoded text. Image nodes (``ImageNode``;
    documents with an image, ``ImageDocument`` or an ``image_resource``, become image nodes
    when parsed) need a vision encoder: their image is encoded, their embed content is
    stored as text, and their ``image_path``/``image_url`` (never the pixels) as the row's
    image; base64-only images are encoded but come back without their image. What else rebuilds the
    ``TextNode`` (relationships, metadata exclusions and templates, the node's own text when
    it differs, the source document's hash) is kept under the reserved metadata key
    :data:`NODE_KEY`, which is stripped on read. There is no docstore: the table is the one
    copy, so another process opening the same ``uri`` sees the same nodes, and
    ``refresh_ref_docs`` compares document hashes stored in the table.

    Inserting a document whose id is already indexed replaces its nodes (new nodes are
    written first, then the stale ones are deleted), so re-running an ingestion script does
    not duplicate a corpus.

    Args:
        nodes: nodes to insert now (``from_documents`` parses documents first).
        uri: the LanceDB database (a directory, ``s3://``... or ``db://``); or
        index: an open :class:`~smart_retrievers.SmartIndex` (then leave ``uri``,
            ``encoder``, ``table`` and ``index_kwargs`` unset).
        encoder: the encoder: an encoder object, or a hub id / local model directory to load
            (default: the bundled all-MiniLM-L6-v2).
        table: the table name (default ``"smart"``).
        transformations: node parsing for ``insert``/``from_documents`` (default:
            ``Settings.transformations``, a ``SentenceSplitter``).
        callback_manager / show_progress: as for any LlamaIndex index. Writes and queries emit
            ``CBEventType.EMBEDDING`` events (``TokenCountingHandler`` counts them).
        storage_context: a ``StorageContext`` without a vector store of its own; its index
            store records this index. ``index.storage_context.persist(persist_dir=d)`` saves a
            pointer to the table (:class:`SmartIndexStruct`: uri, table, encoder), and
            ``load_index_from_storage(StorageContext.from_defaults(persist_dir=d))`` opens this
            index again (pass ``encoder=`` there for an encoder not loadable by name, and
            credentials such as ``storage_options=``). The nodes themselves stay in the table.
        index_struct: set by ``load_index_from_storage`` (a :class:`SmartIndexStruct`).
        **index_kwargs: other :class:`~smart_retrievers.SmartIndex` arguments
            (``lambda_pool``, ``lambda_late``, ``candidates``, ``storage_options``...).

    Example:
        >>> import tempfile
        >>> from llama_index.core import Document
        >>> from llama_index.core.llms import MockLLM
        >>> tmp = tempfile.TemporaryDirectory()  # or "./smart_db", "s3://bucket/db"...
        >>> documents = [
        ...     Document(id_="p2", text="Code P2 labels the blue circle."),
        ...     Document(id_="k7", text="Code K7 labels the red star."),
        ... ]
        >>> index = SmartVectorIndex.from_documents(documents, uri=tmp.name)
        >>> llm = MockLLM()  # any LlamaIndex LLM; MockLLM keeps this offline
        >>> response = index.as_query_engine(llm=llm, similarity_top_k=1).query("which code labels the red star?")
        >>> [n.node.ref_doc_id for n in response.source_nodes]
        ['k7']
        >>> tmp.cleanup()
    """

    def __init__(
        self,
        nodes: Sequence[BaseNode] | None = None,
        *,
        uri: str | None = None,
        index: SmartIndex | None = None,
        encoder: SmartEncoder | None = None,
        table: str | None = None,
        transformations: list[TransformComponent] | None = None,
        callback_manager: CallbackManager | None = None,
        show_progress: bool = False,
        storage_context: StorageContext | None = None,
        index_struct: IndexDict | None = None,
        **index_kwargs: Any,
    ) -> None:
        from ..index import open_index

        _check_storage_context(storage_context)
        if "embed_model" in index_kwargs:
            embed_encoder = _embed_model_encoder(index_kwargs.pop("embed_model"))
            if encoder is not None and encoder is not embed_encoder:
                raise ValueError("pass encoder= or embed_model= (a SmartEmbedding), not both")
            encoder = embed_encoder
        if index_struct is not None:  # load_index_from_storage: reopen the table the struct points at
            if not isinstance(index_struct, SmartIndexStruct) or not index_struct.uri:
                raise ValueError(
                    f"this persisted index ({type(index_struct).__name__}) holds no pointer to a SMART table; "
                    "open it with SmartVectorIndex(uri=..., table=...) instead"
                )
            if index is None and uri is None:
                if encoder is None and index_struct.custom_encoder:
                    raise ValueError(
                        f"this index was persisted with a custom encoder ({index_struct.custom_encoder}) that cannot be "
                        "loaded by name; pass it: load_index_from_storage(storage_context, encoder=...)"
                    )
                uri, table = index_struct.uri, table or index_struct.table
                encoder = encoder if encoder is not None else index_struct.encoder
                index_kwargs = {**index_struct.options, **index_kwargs}
        _check_index_kwargs(index_kwargs)
        self._smart_index = open_index(
            index, uri, table=table, encoder=encoder, owner="SmartVectorIndex", **index_kwargs
        )
        struct = index_struct if isinstance(index_struct, SmartIndexStruct) else None
        super().__init__(
            index_struct=_pointer(self._smart_index, struct),
            storage_context=storage_context,
            callback_manager=callback_manager,
            transformations=transformations,
            show_progress=show_progress,
        )
        if nodes:
            self._insert(nodes)

    @classmethod
    def from_documents(  # type: ignore[override]
        cls,
        documents: Sequence[Document],
        *,
        uri: str | None = None,
        index: SmartIndex | None = None,
        transformations: list[TransformComponent] | None = None,
        show_progress: bool = False,
        callback_manager: CallbackManager | None = None,
        storage_context: StorageContext | None = None,
        **kwargs: Any,
    ) -> SmartVectorIndex:
        """Parse ``documents`` with ``transformations`` (default: a ``SentenceSplitter``) and index the nodes.

        ``kwargs`` are the other constructor arguments (``encoder``, ``table``, ``lambda_pool``...).
        ``embed_model=`` takes a ``SmartEmbedding`` (its encoder is used); any other embedding
        model is refused with the reason: SMART needs the token states that only its own
        forward pass gives. ``storage_context`` is as in the constructor.
        """
        if isinstance(documents, Document):
            raise TypeError("expected a sequence of documents, not a single document")
        documents = list(documents)
        _check_documents(documents)  # before a model is loaded or a table opened
        smart = cls(
            uri=uri,
            index=index,
            transformations=transformations,
            show_progress=show_progress,
            callback_manager=callback_manager,
            storage_context=storage_context,
            **kwargs,
        )
        with smart._callback_manager.as_trace("index_construction"):
            smart._upsert_documents(documents)
        return smart

    @property
    def smart_index(self) -> SmartIndex:
        """The underlying :class:`~smart_retrievers.SmartIndex`."""
        return self._smart_index

    @property
    def docstore(self) -> BaseDocumentStore:
        """Not available: the LanceDB table is the only store (see :meth:`get_nodes`)."""
        raise NotImplementedError(
            "SmartVectorIndex keeps nodes in its LanceDB table, not in a docstore; use get_nodes(), ref_doc_info or smart_index"
        )

    # ---- writes ------------------------------------------------------------

    def _write_nodes(self, nodes: Sequence[BaseNode], doc_hashes: Mapping[str, str]) -> list[str]:
        if isinstance(nodes, BaseNode):
            raise TypeError("expected a sequence of nodes, not a single node")
        checked = [_check_node(node) for node in nodes]
        if not checked:
            return []
        rows = [_node_row(node, doc_hashes.get(node.ref_doc_id or "")) for node in checked]
        texts = [text for text, _ in rows]
        # one EMBEDDING event per write, as VectorStoreIndex emits (TokenCountingHandler counts its chunks)
        serialized = {"model_name": _model_id(self._smart_index.encoder)}
        with self._callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: serialized}
        ) as event:
            ids = self._smart_index.add_items(
                texts,
                [_node_image(node) for node in checked],
                ids=[node.node_id for node in checked],
                metadatas=[metadata for _, metadata in rows],
                ref_ids=[node.ref_doc_id for node in checked],
                show_progress=self._show_progress,
            )
            event.on_end(payload={EventPayload.CHUNKS: texts})
        return ids

    def _upsert_documents(self, documents: Sequence[Document]) -> None:
        """Index documents, replacing the nodes of any that were indexed before."""
        if isinstance(documents, Document):
            raise TypeError("expected a sequence of documents, not a single document")
        documents = list(documents)
        _check_documents(documents)
        if not documents:
            return
        documents = list(
            {doc.id_: _as_image_document(doc) for doc in documents}.values()
        )  # one version per id: the last
        nodes = run_transformations(documents, self._transformations, show_progress=self._show_progress)
        ids = self._write_nodes(nodes, {doc.id_: doc.hash for doc in documents})
        self._smart_index.delete(ref_ids=[doc.id_ for doc in documents], where={"id": {"$nin": ids}})

    def _insert(self, nodes: Sequence[BaseNode], **insert_kwargs: Any) -> None:
        """Encode and upsert nodes by node id."""
        self._write_nodes(nodes, {})

    def insert_nodes(self, nodes: Sequence[BaseNode], **insert_kwargs: Any) -> None:
        """Encode and upsert nodes by node id (no node parsing)."""
        self._insert(nodes)

    def insert(self, document: Document, **insert_kwargs: Any) -> None:
        """Parse and index one document, replacing its nodes if it was indexed before."""
        self._upsert_documents([document])

    def update_ref_doc(self, document: Document, **update_kwargs: Any) -> None:
        """Re-parse and re-index a document, replacing its previous nodes."""
        self._upsert_documents([document])

    def refresh_ref_docs(self, documents: Sequence[Document], **update_kwargs: Any) -> list[bool]:
        """Index the documents that are new or whose hash changed; returns which ones were."""
        documents = list(documents)
        stored = self._stored_hashes([doc.id_ for doc in documents])
        changed = [stored.get(doc.id_) != {doc.hash} for doc in documents]
        self._upsert_documents([doc for doc, flag in zip(documents, changed) if flag])
        return changed

    def delete_nodes(self, node_ids: list[str], delete_from_docstore: bool = False, **delete_kwargs: Any) -> None:
        """Delete nodes by id (unknown ids are ignored)."""
        from ..validation import id_list  # the one id check: a single string is refused, never split

        self._smart_index.delete(id_list(node_ids, "node_ids"))

    def _delete_node(self, node_id: str, **delete_kwargs: Any) -> None:
        self.delete_nodes([node_id])

    def delete_ref_doc(self, ref_doc_id: str, delete_from_docstore: bool = False, **delete_kwargs: Any) -> None:
        """Delete every node of a source document."""
        if not isinstance(ref_doc_id, str):
            raise TypeError(f"ref_doc_id must be a str, got {type(ref_doc_id).__name__}")
        if not self._smart_index.delete(ref_ids=[ref_doc_id]):
            logger.warning("ref_doc_id %s not found, nothing deleted.", ref_doc_id)

    async def ainsert_nodes(self, nodes: Sequence[BaseNode], **insert_kwargs: Any) -> None:
        await asyncio.to_thread(self.insert_nodes, nodes)

    async def ainsert(self, document: Document, **insert_kwargs: Any) -> None:
        await asyncio.to_thread(self.insert, document)

    async def aupdate_ref_doc(self, document: Document, **update_kwargs: Any) -> None:
        await asyncio.to_thread(self.update_ref_doc, document)

    async def arefresh_ref_docs(self, documents: Sequence[Document], **update_kwargs: Any) -> list[bool]:
        return await asyncio.to_thread(self.refresh_ref_docs, documents)

    async def adelete_nodes(
        self, node_ids: list[str], delete_from_docstore: bool = False, **delete_kwargs: Any
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids)

    async def adelete_ref_doc(self, ref_doc_id: str, delete_from_docstore: bool = False, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete_ref_doc, ref_doc_id)

    # ---- reads -------------------------------------------------------------

    def _stored_hashes(self, ref_doc_ids: list[str]) -> dict[str, set[str | None]]:
        hashes: dict[str, set[str | None]] = {}
        if ref_doc_ids:
            for hit in self._smart_index.rows({"ref_id": {"$in": ref_doc_ids}}):
                info = hit.metadata.get(NODE_KEY) or {}
                hashes.setdefault(hit.ref_id, set()).add(info.get("doc_hash"))
        return hashes

    def get_nodes(self, node_ids: Sequence[str]) -> list[TextNode]:
        """The stored nodes for these ids, in the given order (unknown ids are skipped)."""
        from ..validation import id_list  # the one id check: a single string is refused, never split

        return [_hit_node(hit) for hit in self._smart_index.get(id_list(node_ids, "node_ids"))]

    @property
    def ref_doc_info(self) -> dict[str, RefDocInfo]:
        """Source document id -> its node ids and metadata, read from the table."""
        info: dict[str, RefDocInfo] = {}
        for hit in self._smart_index.rows({"ref_id": {"$is_empty": False}}):
            doc = info.get(hit.ref_id)
            if doc is None:
                metadata = dict(hit.metadata)
                metadata.pop(NODE_KEY, None)
                doc = info[hit.ref_id] = RefDocInfo(node_ids=[], metadata=metadata)
            doc.node_ids.append(hit.id)
        return info

    def as_retriever(self, **kwargs: Any) -> SmartRetriever:
        """A :class:`SmartRetriever` over this index.

        Keyword arguments that :class:`SmartRetriever` takes are passed on. ``as_query_engine``
        and ``as_chat_engine`` pass one set of keyword arguments to the retriever and the
        engine, so the engines' arguments are left to them. Nothing else is dropped silently:
        ``vector_store_query_mode`` other than ``"default"`` (``"mmr"``, ``"hybrid"``...) and the
        hybrid-search arguments (``alpha``, ``sparse_top_k``, ``hybrid_top_k``,
        ``vector_store_kwargs``) raise ``ValueError``, a misspelt retriever argument
        (``similarity_topk``) raises ``TypeError`` naming the right one, and any other unknown
        argument gives a ``UserWarning`` naming it.
        """
        _check_retriever_kwargs(kwargs)
        kwargs.setdefault("callback_manager", self._callback_manager)
        return SmartRetriever(self, **{k: v for k, v in kwargs.items() if k in _RETRIEVER_ARGS})


INDEX_STRUCT_TYPE_TO_INDEX_CLASS[SMART_STRUCT_TYPE] = SmartVectorIndex  # type: ignore[index]  # load_index_from_storage

_RETRIEVER_ARGS = frozenset(inspect.signature(SmartRetriever.__init__).parameters) - {"self", "index"}
_HYBRID_ARGS = {
    "alpha": "alpha weights dense against sparse scores in hybrid search",
    "sparse_top_k": "sparse_top_k is the sparse half of hybrid search",
    "hybrid_top_k": "hybrid_top_k is the size of a hybrid search's fused list",
    "vector_store_kwargs": "vector_store_kwargs go to a vector store's query",
}


def _engine_args() -> frozenset[str]:
    """Arguments that as_query_engine / as_chat_engine pass on to the engines (not to the retriever)."""
    from llama_index.core import get_response_synthesizer
    from llama_index.core.chat_engine import (
        CondensePlusContextChatEngine,
        CondenseQuestionChatEngine,
        ContextChatEngine,
        SimpleChatEngine,
    )
    from llama_index.core.query_engine import RetrieverQueryEngine

    functions = [
        RetrieverQueryEngine.from_args,
        get_response_synthesizer,
        CondensePlusContextChatEngine.from_defaults,
        CondenseQuestionChatEngine.from_defaults,
        ContextChatEngine.from_defaults,
        SimpleChatEngine.from_defaults,
    ]
    names = {"chat_mode", "llm", "query_engine", "streaming", "use_async", "verbose"}
    for function in functions:
        names |= set(inspect.signature(function).parameters)
    return frozenset(names - {"self", "cls", "kwargs", "retriever"})


def _check_retriever_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Refuse or warn about as_retriever() arguments that SmartRetriever would otherwise drop silently."""
    mode = kwargs.get("vector_store_query_mode")
    if mode is not None and str(getattr(mode, "value", mode)) != "default":
        raise ValueError(
            f"vector_store_query_mode={str(getattr(mode, 'value', mode))!r} is not supported by SmartRetriever: it "
            "always ranks by SMART (pooled candidates, then late interaction; see mode=). For hybrid search fuse "
            "it with a BM25 retriever through QueryFusionRetriever; MMR is not implemented"
        )
    for name, what in _HYBRID_ARGS.items():
        if name in kwargs:
            raise ValueError(
                f"{name}= is not supported by SmartRetriever: {what}, which SMART does not do. SMART's own weights "
                "are lambda_pool / lambda_late; for hybrid search use QueryFusionRetriever"
            )
    engine = None
    for name in kwargs:
        if name in _RETRIEVER_ARGS or name == "vector_store_query_mode":
            continue
        engine = engine if engine is not None else _engine_args()
        if name in engine:
            continue
        close = difflib.get_close_matches(name, sorted(_RETRIEVER_ARGS), n=1, cutoff=0.8)
        if close:
            raise TypeError(f"as_retriever() got an unexpected keyword argument {name!r}; did you mean {close[0]!r}?")
        warnings.warn(
            f"as_retriever(): {name!r} is not an argument of SmartRetriever or of the LlamaIndex engines; it is ignored",
            UserWarning,
            stacklevel=3,
        )
