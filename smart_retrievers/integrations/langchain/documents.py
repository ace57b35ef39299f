"""LangChain <-> SMART rows: the one translator of the LangChain integration.

A stored row becomes a ``Document`` in one place (:func:`hit_document`): its id, text and metadata,
without the package's internal keys (:data:`~smart_retrievers.filters.RESERVED_FIELDS`, e.g. what
LlamaIndex keeps on a table both frameworks share), with the SMART scores when asked, and with its
image location for an image row. Image documents are recognised by :data:`IMAGE_KEYS`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from ...filters import RESERVED_FIELDS

if TYPE_CHECKING:
    from ...index import Hit

__all__ = ["IMAGE_KEYS", "SCORE_KEYS", "check_documents", "document_image", "hit_document", "warn_reserved"]

SCORE_KEYS = ("smart_score", "pooled_score", "late_score")
"""Metadata keys of a retrieved document's fused, pooled and late scores."""
IMAGE_KEYS = ("image_path", "image_url")
"""Metadata keys that make a ``Document`` an image document (the first one set wins)."""


def hit_document(hit: Hit, *, scores: bool = False) -> Document:
    """A stored row as a ``Document``: its id, text and metadata (internal keys left out), plus
    :data:`SCORE_KEYS` if ``scores``; an image row written without LangChain says where its image is."""
    from ...encoders.images import location_field

    metadata = {key: value for key, value in hit.metadata.items() if key not in RESERVED_FIELDS}
    if scores:
        metadata.update(zip(SCORE_KEYS, (hit.score, hit.pooled_score, hit.late_score)))
    if hit.modality == "image" and hit.image and not any(metadata.get(key) for key in IMAGE_KEYS):
        key, location = location_field(hit.image)
        metadata[key] = location
    return Document(page_content=hit.text, metadata=metadata, id=hit.id)


def document_image(document: Document) -> str | None:
    """The image location of an image document (``metadata["image_path"]``, else
    ``metadata["image_url"]``), or None for a text document."""
    from ...encoders.images import image_location

    try:
        return image_location(*(document.metadata.get(key) for key in IMAGE_KEYS))
    except TypeError as exc:
        raise TypeError(f"document {document.id!r}, metadata {' or '.join(map(repr, IMAGE_KEYS))}: {exc}") from None


def check_documents(documents: Sequence[Any]) -> list[Document]:
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


def warn_reserved(documents: Sequence[Document], keys: Sequence[str], what: str) -> None:
    """Warn (naming them) that metadata keys a result sets would replace the user's own."""
    clash = sorted({key for doc in documents for key in keys if key in doc.metadata})
    if clash:
        warnings.warn(
            f"metadata key(s) {clash} are set by {what} on the documents it returns, replacing the values "
            "stored under those names; rename them to keep both",
            UserWarning,
            stacklevel=3,
        )
