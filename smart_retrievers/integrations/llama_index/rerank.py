"""The LlamaIndex reranker (node postprocessor): SMART scores for the nodes of any retriever."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import llama_index.core.instrumentation as instrument
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from ..indexes import smart_index_of
from .nodes import SmartNodeWithScore, node_image
from .queries import encode_query_bundle, model_id

if TYPE_CHECKING:
    from pathlib import Path

    from ...encoders import SmartEncoder
    from ...rerank import CandidateScore

__all__ = ["SmartRerank"]

dispatcher = instrument.get_dispatcher(__name__)


class SmartRerank(BaseNodePostprocessor):
    """Re-rank the nodes of any retriever with SMART late interaction.

    Each node is scored on ``node.get_content(metadata_mode=MetadataMode.EMBED)`` (what an
    embedding model sees), an image node on its image (through a vision encoder; an
    ``ImageNode`` without image data, e.g. one indexed from inline data, on its text), and
    returned as a :class:`SmartNodeWithScore` (``score`` the relevance in [0, 1], the raw fused score in
    ``smart_score``), best first, cut to ``top_n``. A query bundle
    with an ``image_path`` is an image query. Nodes are encoded once and kept in an LRU cache; with an ``index``, nodes
    whose id the index holds with that same content reuse its stored token states, without
    a forward pass. The input nodes are never modified. Like LlamaIndex's rerankers it emits
    ``ReRankStartEvent``/``ReRankEndEvent`` and a ``CBEventType.RERANKING`` callback event.

    Args:
        top_n: how many nodes to return (None: all of them, re-ordered).
        model: the model to load and score with, as ``ColbertRerank(model=...)`` takes it: a
            hub id or a local directory (text or vision, through
            :func:`~smart_retrievers.encoders.load_encoder`); ``"all-MiniLM-L6-v2"`` is the
            bundled model. Default: the index's encoder, else the bundled model. With ``index``, it must
            be the index's model (same fingerprint): :meth:`~smart_retrievers.rerank.SmartScorer.create`. After
            construction ``model`` holds the loadable id of the encoder in use, so
            ``SmartRerank.from_dict(rerank.to_dict())`` rebuilds the same reranker (without ``index``).
        index: an optional :class:`SmartVectorIndex` or :class:`~smart_retrievers.SmartIndex`
            whose stored token states are reused.
        encoder: an encoder object (default: the index's, else ``model``'s).
        lambda_pool / lambda_late: fusion weights.
        lambda_lex: weight of BM25 evidence among the nodes (0, the default: SMART alone; e.g. 0.5 as
            "hybrid" search): see :class:`~smart_retrievers.rerank.SmartScorer`; the lexical part is
            ``lex_score`` of each :class:`SmartNodeWithScore`.
        keep_retrieval_score: put each node's previous score in ``metadata["retrieval_score"]``
            of the returned copy.
        device: the device of a model loaded here (``model=``, or neither ``index`` nor ``encoder``).
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
    lambda_lex: float = Field(default=0.0, ge=0, description="Weight of BM25 evidence among the nodes.")
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
        model: str | Path | None = None,
        index: Any = None,
        encoder: SmartEncoder | str | None = None,
        lambda_pool: float = 1.0,
        lambda_late: float = 1.0,
        lambda_lex: float = 0.0,
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
            lambda_lex=lambda_lex,
            keep_retrieval_score=keep_retrieval_score,
            batch_size=batch_size,
            cache_size=cache_size,
            callback_manager=callback_manager or CallbackManager(),
        )
        from ...rerank import SmartScorer

        # the one rule for which encoder a reranker scores with (model= / encoder= / index= / device=)
        self._scorer = SmartScorer.create(
            model=model or None,  # "": to_dict() of a reranker that never loaded a model
            encoder=encoder,
            index=None if index is None else smart_index_of(index),
            device=device,
            lambda_pool=lambda_pool,
            lambda_late=lambda_late,
            lambda_lex=lambda_lex,
            batch_size=batch_size,
            cache_size=cache_size,
        )
        self.model, self.device = model_id(self._scorer.encoder), str(self._scorer.encoder.device)

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
        payload: dict[str, Any] = {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model,
            EventPayload.QUERY_STR: query_bundle.query_str,
            EventPayload.TOP_K: self.top_n,
        }
        with self.callback_manager.event(CBEventType.RERANKING, payload=payload) as event:
            query = encode_query_bundle(self._scorer.encoder, query_bundle)
            texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
            images = [node_image(n.node, required=False) for n in nodes]
            # stored token states are reused only where the index holds this id with this content
            ranked = self._scorer.score(
                query,
                texts,
                [n.node.node_id for n in nodes],
                images=images if any(im is not None for im in images) else None,
                top_n=self.top_n,
                text=None if query_bundle.image_path else "\n".join(query_bundle.embedding_strs),
            )
            reranked: list[NodeWithScore] = [self._scored(nodes[c.position], c) for c in ranked]
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    def _scored(self, original: NodeWithScore, scored: CandidateScore) -> SmartNodeWithScore:
        node = original.node
        if self.keep_retrieval_score:
            node = node.model_copy(update={"metadata": {**node.metadata, "retrieval_score": original.score}})
        return SmartNodeWithScore(
            node=node,
            score=scored.relevance,
            smart_score=scored.score,
            pooled_score=scored.pooled_score,
            late_score=scored.late_score if self.lambda_late != 0 else None,
            lex_score=scored.lex_score if self.lambda_lex != 0 else None,
        )
