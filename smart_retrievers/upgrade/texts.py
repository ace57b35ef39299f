"""What an upgrade encodes: the text each row's stored vector was computed from, its hash, and the new columns.

Plain LanceDB and LangChain tables embedded their ``text`` column. LanceDB's LlamaIndex store
embedded ``node.get_content(MetadataMode.EMBED)``: the node's metadata lines (its
``metadata_template`` per key, minus ``excluded_embed_metadata_keys``, joined by its
``metadata_separator``) put before the text through its ``text_template``. Every row keeps
that node as JSON (``metadata._node_content``, templates and exclusions included), so the
text is rebuilt from the row itself, without importing LlamaIndex (the core never does), with
LlamaIndex's rule (``TextNode.get_content``; the tests compare both). The vector check
of :func:`~smart_retrievers.upgrade.upgrade_table` refuses the table if the rebuilt text is not
what the store embedded.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..codec import TokenCodec
from ..store import TableLayout, n_tokens_column, tokens_to_arrow, tokens_type, vectors_to_arrow
from ..store.layout import SMART_VECTOR, TEXT_HASH

__all__ = ["RowEncoder", "llama_index_embed_text", "text_hash"]

NODE_CONTENT = "_node_content"
"""The metadata key where LanceDB's LlamaIndex store keeps each node as JSON."""
_DEFAULT_TEXT_TEMPLATE = "{metadata_str}\n\n{content}"
_DEFAULT_METADATA_TEMPLATE = "{key}: {value}"


def text_hash(text: str) -> str:
    """The hash recorded per row (column ``tokens_text_hash``) of the text its token states were computed from."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def llama_index_embed_text(text: str, node_content: str | None) -> str:
    """The text LlamaIndex embedded for a node (``MetadataMode.EMBED``), from its stored JSON.

    ``text`` is the store's text column (the node's text); ``node_content`` the node as
    ``node_to_metadata_dict`` stored it (None or unreadable: the text alone).
    """
    try:
        node = json.loads(node_content) if node_content else None
    except json.JSONDecodeError:
        node = None
    if not isinstance(node, dict):
        return text
    excluded = set(node.get("excluded_embed_metadata_keys") or ())
    template = node.get("metadata_template") or _DEFAULT_METADATA_TEMPLATE
    separator = str(node.get("metadata_separator", node.get("metadata_seperator", "\n")))  # the older spelling
    lines = [template.format(key=k, value=str(v)) for k, v in (node.get("metadata") or {}).items() if k not in excluded]
    metadata_str = separator.join(lines).strip()
    if not metadata_str:
        return text
    return (node.get("text_template") or _DEFAULT_TEXT_TEMPLATE).format(content=text, metadata_str=metadata_str).strip()


class RowEncoder:
    """A layout's rows to the columns an upgrade adds: ``tokens``, ``n_tokens``, ``tokens_text_hash``
    (and ``smart_vector`` when the table's vectors are another model's).

    ``source_columns`` are the columns :meth:`texts` reads.
    """

    def __init__(self, encoder: Any, layout: TableLayout, token_dim: int, codec: TokenCodec | None) -> None:
        self.encoder, self.layout, self.token_dim, self.codec = encoder, layout, token_dim, codec
        self.llama_index = layout.metadata is not None and NODE_CONTENT in layout.hidden_keys
        metadata = [layout.metadata] if layout.metadata is not None and self.llama_index else []
        self.source_columns: list[str] = [layout.text, *metadata]
        fields = [
            pa.field("tokens", tokens_type(token_dim, codec)),
            pa.field("n_tokens", pa.int32()),
            pa.field(TEXT_HASH, pa.string()),
        ]
        if layout.vector == SMART_VECTOR:
            fields.append(pa.field(SMART_VECTOR, pa.list_(pa.float32(), encoder.fingerprint["dim"])))
        self.schema = pa.schema(fields)

    def texts(self, rows: pa.RecordBatch | pa.Table) -> list[str]:
        """The text each row's vector was computed from (a null text counts as empty)."""
        texts = [t or "" for t in rows.column(self.layout.text).to_pylist()]
        if not self.llama_index:
            return texts
        nodes = pc.struct_field(rows.column(self.layout.metadata), NODE_CONTENT).to_pylist()
        return [llama_index_embed_text(t, n) for t, n in zip(texts, nodes, strict=True)]

    def encode(self, texts: list[str]) -> pa.RecordBatch:
        """The new columns of rows with these texts."""
        encodings = self.encoder.encode_documents(texts, show_progress=False)
        tokens = tokens_to_arrow([e.tokens for e in encodings], self.token_dim, self.codec)
        columns = [tokens, n_tokens_column(tokens), pa.array([text_hash(t) for t in texts], pa.string())]
        if self.layout.vector == SMART_VECTOR:
            columns.append(vectors_to_arrow(np.stack([e.pooled for e in encodings])))
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)
