"""LlamaIndex <-> SMART rows: the one translator of the LlamaIndex integration.

Nodes become rows (:func:`node_row`: the embed content is the encoded text, what rebuilds the node
is kept under :data:`NODE_KEY`) and rows become nodes again (:func:`hit_node`, an ``ImageNode`` for
an image row); ``MetadataFilters`` become :mod:`smart_retrievers.filters` (:func:`to_smart_filter`,
:func:`where`). Every LlamaIndex class of the package reads and writes through these functions.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.schema import (
    BaseNode,
    Document,
    ImageDocument,
    ImageNode,
    IndexNode,
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from ...filters import LLAMA_INDEX_KEY as NODE_KEY
from ...filters import And, Condition, Filter, Not, Or, column_in

if TYPE_CHECKING:
    from ...encoders.images import ImageInput
    from ...index import Hit

__all__ = [
    "NODE_KEY",
    "SmartNodeWithScore",
    "as_image_document",
    "check_documents",
    "check_node",
    "hit_node",
    "node_image",
    "node_row",
    "to_smart_filter",
    "where",
]

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
    A key that names a metadata field is that field; otherwise the keys ``id`` and ``ref_id`` are the
    node id and its source document id, ``doc_id``, ``ref_doc_id`` and ``document_id`` are ``ref_id`` too
    and ``node_id`` is ``id`` (:data:`~smart_retrievers.filters.FIELD_ALIASES`, the one rule for every
    class of the package: metadata first).

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
    """``column IN values`` (the column, even where metadata has a field of its name); None means no
    constraint and an empty list matches no row (a scope with no documents is empty, never everything)."""
    if values is None:
        return None
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{name} must be a list of str, got {values!r}")
    return column_in(column, values)


def where(
    filters: MetadataFilters | None, node_ids: Sequence[str] | None = None, doc_ids: Sequence[str] | None = None
) -> Filter | None:
    """``filters`` AND ``id IN node_ids`` AND ``ref_id IN doc_ids`` (None: no constraint; ``[]``: no row)."""
    parts = [
        f
        for f in (
            to_smart_filter(filters),
            _id_filter("id", node_ids, "node_ids"),
            _id_filter("ref_id", doc_ids, "doc_ids"),
        )
        if f is not None
    ]
    return And(tuple(parts)) if parts else None


# ---- nodes <-> rows ------------------------------------------------------------


class SmartNodeWithScore(NodeWithScore):
    """A ``NodeWithScore`` scored by SMART.

    ``score`` is the relevance in [0, 1] (:func:`~smart_retrievers.scoring.relevance` of the fused
    score, the one scale of every score the package gives a framework, so
    ``SimilarityPostprocessor(similarity_cutoff=...)`` means the same for every class). The raw
    parts are kept here rather than in the node's metadata, so they never reach the LLM prompt or
    the node itself: ``smart_score`` the fused score ``lambda_pool * pooled_score + lambda_late *
    late_score + lambda_lex * lex_score`` that ranks the nodes, ``pooled_score``, ``late_score``
    (None when no late interaction was computed: ``mode="pooled"`` or ``lambda_late=0``) and
    ``lex_score`` (the lexical term of a "hybrid" search or a reranker with ``lambda_lex``; None
    when none was computed).
    """

    smart_score: float | None = None
    pooled_score: float | None = None
    late_score: float | None = None
    lex_score: float | None = None

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


def check_node(node: BaseNode) -> TextNode:
    if not isinstance(node, BaseNode):
        raise TypeError(f"expected llama_index nodes, got {type(node).__name__}{_foreign(node)}")
    if not isinstance(node, TextNode) or isinstance(node, IndexNode):
        raise TypeError(
            f"SmartVectorIndex stores text and image nodes only; node {node.node_id!r} is a {type(node).__name__}"
        )
    if NODE_KEY in node.metadata:
        raise ValueError(f"node {node.node_id!r}: metadata key {NODE_KEY!r} is reserved by SmartVectorIndex")
    return node


def node_row(node: TextNode, doc_hash: str | None) -> tuple[str, dict[str, Any]]:
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


def hit_node(hit: Hit) -> TextNode:
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
    from ...encoders.images import location_field

    location = dict([location_field(hit.image)]) if hit.image else {}
    return ImageNode(id_=hit.id, text=text, metadata=metadata, **location, **fields)


def node_image(node: BaseNode, *, required: bool = True) -> ImageInput | None:
    """The image of an image node or document (None for a text node).

    ``ImageNode``: ``image_path``, else ``image_url``, else the base64 ``image``; any other
    node: its ``image_resource`` (``path``, else ``url``, else base64 ``data``). An
    ``ImageNode`` with none of them raises if ``required``, else gives None.
    """
    from ...encoders.images import image_location

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


def as_image_document(document: Document) -> Document:
    """A ``Document`` carrying an ``image_resource`` as an ``ImageDocument``, so node
    parsers keep its image (they turn ``ImageDocument`` into ``ImageNode``)."""
    if isinstance(document, ImageDocument) or getattr(document, "image_resource", None) is None:
        return document
    fields = document.model_dump(exclude={"image_resource", "class_name"})
    return ImageDocument(**fields, image_resource=document.image_resource)


def check_documents(documents: list[Any]) -> None:
    bad = next((d for d in documents if not isinstance(d, Document)), None)
    if bad is not None:
        raise TypeError(
            f"expected llama_index Document objects, got {type(bad).__module__}.{type(bad).__name__}{_foreign(bad)}"
        )
