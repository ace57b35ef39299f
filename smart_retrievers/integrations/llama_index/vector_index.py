"""The LlamaIndex managed index (``BaseManagedIndex``) whose storage is a SMART LanceDB table."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.data_structs.data_structs import IndexDict
from llama_index.core.indices.managed.base import BaseManagedIndex
from llama_index.core.indices.registry import INDEX_STRUCT_TYPE_TO_INDEX_CLASS
from llama_index.core.ingestion import run_transformations
from llama_index.core.schema import BaseNode, Document, TextNode, TransformComponent
from llama_index.core.storage.docstore.types import BaseDocumentStore, RefDocInfo
from llama_index.core.storage.storage_context import StorageContext

from ...filters import Condition, Not, column_in
from ...validation import internal_keys
from ..indexes import open_smart_index
from .arguments import RETRIEVER_ARGS, check_retriever_kwargs, check_storage_context, embed_model_encoder
from .nodes import NODE_KEY, as_image_document, check_documents, check_node, hit_node, node_image, node_row
from .persist import SMART_STRUCT_TYPE, SmartIndexStruct, index_struct_for
from .queries import model_id
from .retriever import SmartRetriever

if TYPE_CHECKING:
    from ...encoders import SmartEncoder
    from ...index import SmartIndex

__all__ = ["SmartVectorIndex"]

logger = logging.getLogger(__name__)


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
        check_storage_context(storage_context)
        if "embed_model" in index_kwargs:
            embed_encoder = embed_model_encoder(index_kwargs.pop("embed_model"))
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
        self._smart_index = open_smart_index(
            index, uri, table=table, encoder=encoder, owner="SmartVectorIndex", **index_kwargs
        )
        struct = index_struct if isinstance(index_struct, SmartIndexStruct) else None
        super().__init__(
            index_struct=index_struct_for(self._smart_index, struct),
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
        check_documents(documents)  # before a model is loaded or a table opened
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
    def callback_manager(self) -> CallbackManager:
        """The callback manager of this index, which its retrievers share."""
        return self._callback_manager

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
        checked = [check_node(node) for node in nodes]
        if not checked:
            return []
        rows = [node_row(node, doc_hashes.get(node.ref_doc_id or "")) for node in checked]
        texts = [text for text, _ in rows]
        # one EMBEDDING event per write, as VectorStoreIndex emits (TokenCountingHandler counts its chunks)
        serialized = {"model_name": model_id(self._smart_index.encoder)}
        with (
            self._callback_manager.event(CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: serialized}) as event,
            internal_keys([NODE_KEY]),
        ):  # the node data key, refused in users' metadata
            ids = self._smart_index.add_items(
                texts,
                [node_image(node) for node in checked],
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
        check_documents(documents)
        if not documents:
            return
        documents = list(
            {doc.id_: as_image_document(doc) for doc in documents}.values()
        )  # one version per id: the last
        nodes = run_transformations(documents, self._transformations, show_progress=self._show_progress)
        ids = self._write_nodes(nodes, {doc.id_: doc.hash for doc in documents})
        self._smart_index.delete(ref_ids=[doc.id_ for doc in documents], where=Not(column_in("id", ids)))

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
        from ...validation import id_list  # the one id check: a single string is refused, never split

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
            for hit in self._smart_index.rows(column_in("ref_id", ref_doc_ids)):
                info = hit.metadata.get(NODE_KEY) or {}
                hashes.setdefault(cast(str, hit.ref_id), set()).add(info.get("doc_hash"))  # selected by ref_id
        return hashes

    def get_nodes(self, node_ids: Sequence[str]) -> list[TextNode]:
        """The stored nodes for these ids, in the given order (unknown ids are skipped)."""
        from ...validation import id_list  # the one id check: a single string is refused, never split

        return [hit_node(hit) for hit in self._smart_index.get(id_list(node_ids, "node_ids"))]

    @property
    def ref_doc_info(self) -> dict[str, RefDocInfo]:
        """Source document id -> its node ids and metadata, read from the table."""
        info: dict[str, RefDocInfo] = {}
        for hit in self._smart_index.rows(Condition("ref_id", "is_empty", False, column=True)):
            ref_id = cast(str, hit.ref_id)  # the filter selects rows that have one
            doc = info.get(ref_id)
            if doc is None:
                metadata = dict(hit.metadata)
                metadata.pop(NODE_KEY, None)
                doc = info[ref_id] = RefDocInfo(node_ids=[], metadata=metadata)
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
        check_retriever_kwargs(kwargs)
        kwargs.setdefault("callback_manager", self._callback_manager)
        return SmartRetriever(self, **{k: v for k, v in kwargs.items() if k in RETRIEVER_ARGS})


INDEX_STRUCT_TYPE_TO_INDEX_CLASS[SMART_STRUCT_TYPE] = SmartVectorIndex  # type: ignore[index]  # load_index_from_storage
