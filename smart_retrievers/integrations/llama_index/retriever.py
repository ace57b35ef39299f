"""The LlamaIndex retriever over a SMART index: pooled candidates, then late interaction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.base_multi_modal_retriever import MultiModalRetriever
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.indices.query.schema import QueryType
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.types import MetadataFilters

from ...options import DEFAULT_MODE, Modality, SearchMode, SearchOptions
from ..indexes import smart_index_of
from .nodes import SmartNodeWithScore, hit_node, where
from .queries import as_query_bundle, encode_query_bundle, model_id

if TYPE_CHECKING:
    from ...encoding import Encoding

__all__ = ["EVIDENCE_KEY", "SmartRetriever"]


class SmartRetriever(MultiModalRetriever):
    """Retrieve nodes from a SMART index: pooled candidates, then late interaction.

    The arguments follow ``VectorIndexRetriever``, so ``index.as_retriever(...)`` calls
    carry over, plus SMART's own. Every result is a :class:`SmartNodeWithScore` whose node
    is a ``TextNode`` (an ``ImageNode`` for image rows) with its stored id, text, metadata
    and relationships (``ref_doc_id`` as SOURCE), ranked by the fused SMART score; its ``score`` is the
    relevance in [0, 1] and ``smart_score`` / ``pooled_score`` / ``late_score`` the raw scores.

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
        node_ids: only these node ids (None: no constraint; an empty list matches no node).
        doc_ids: only nodes of these source documents (None: no constraint; an empty list matches no node).
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
        >>> from smart_retrievers.llama_index import SmartVectorIndex
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
        index: Any,
        similarity_top_k: int = DEFAULT_SIMILARITY_TOP_K,
        filters: MetadataFilters | None = None,
        node_ids: Sequence[str] | None = None,
        doc_ids: Sequence[str] | None = None,
        *,
        mode: SearchMode = DEFAULT_MODE,
        candidates: int | None = None,
        lambda_pool: float | None = None,
        lambda_late: float | None = None,
        image_similarity_top_k: int | None = None,
        evidence: bool = False,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        self._index = smart_index_of(index)
        if not isinstance(evidence, bool):
            raise TypeError(f"evidence must be a bool, got {type(evidence).__name__}")
        self._evidence = evidence
        # None: the index's default, resolved by the index at each search
        self._options = SearchOptions(
            mode=mode,
            candidates=candidates,
            lambda_pool=lambda_pool,
            lambda_late=lambda_late,
            where=where(filters, node_ids, doc_ids),
        )
        self._index.resolve(self._options)  # raises now, not at the first search, if the settings do not fit the index
        self.similarity_top_k = similarity_top_k
        self._image_similarity_top_k = (
            None if image_similarity_top_k is None else _top_k("image_similarity_top_k", image_similarity_top_k)
        )
        if callback_manager is None:  # a SmartVectorIndex's handlers (TokenCountingHandler...) see the queries too
            callback_manager = getattr(index, "callback_manager", None)
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
        words = None if query_bundle.image_path else "\n".join(query_bundle.embedding_strs)  # for the full-text index
        hits = self._index.search_encoded(self._encode(query_bundle), options=options, text=words)
        has_late = options.mode != "pooled" and options.lambda_late != 0
        nodes = [hit_node(hit) for hit in hits]
        if self._evidence and not query_bundle.image_path:  # off: no cost at all
            from ...explain import compact_evidence

            query = query_bundle.query_str if query_bundle.query_str.strip() else "\n".join(query_bundle.embedding_strs)
            for node, hit, spans in zip(nodes, hits, compact_evidence(self._index, query, hits)):
                if spans is not None:  # text rows only
                    _add_evidence(node, spans, hit.text)
        return [
            SmartNodeWithScore(
                node=node,
                score=hit.relevance,
                smart_score=hit.score,
                pooled_score=hit.pooled_score,
                late_score=hit.late_score if has_late else None,
                lex_score=hit.lex_score if options.mode == "hybrid" else None,
            )
            for node, hit in zip(nodes, hits)
        ]

    def _encode(self, query_bundle: QueryBundle) -> Encoding:
        """The query's encoding, inside a ``CBEventType.EMBEDDING`` event (as a VectorStoreIndex query embeds)."""
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: {"model_name": model_id(self._index.encoder)}}
        ) as event:
            query = encode_query_bundle(self._index.encoder, query_bundle)
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
        return self._search(as_query_bundle(str_or_query_bundle), self._similarity_top_k, "text")

    def text_to_image_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        """Image nodes only (``image_similarity_top_k`` of them), for a text query."""
        return self._text_to_image_retrieve(as_query_bundle(str_or_query_bundle))

    def image_to_image_retrieve(self, str_or_query_bundle: QueryType) -> list[NodeWithScore]:
        """Image nodes only, for an image query: a path/URL string or a ``QueryBundle`` with ``image_path``."""
        return self._image_to_image_retrieve(as_query_bundle(str_or_query_bundle, image=True))

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
