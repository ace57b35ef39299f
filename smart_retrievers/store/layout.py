"""Table layouts: where a table keeps the columns a SMART search reads.

A table written by smart-retrievers has the native layout (``id``, ``ref_id``, ``text``,
``image``, ``modality``, JSON ``metadata``, ``vector``, ``tokens``, ``n_tokens``). A
single-vector table upgraded in place (:mod:`smart_retrievers.upgrade`) keeps its owner's
columns: LanceDB's LlamaIndex store (``id``, ``doc_id``, ``vector``, ``text``, a struct
``metadata`` with LlamaIndex's own keys), LangChain's (``vector``, ``id``, ``text``, a struct
``metadata``) or any plain LanceDB table, and gains ``tokens`` and ``n_tokens``. A
:class:`TableLayout`, stored in the table's schema metadata, maps one onto the other, so that
the store reads either through the same logical columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ..codec import TokenCodec
from ..filters import SqlTarget
from ..validation import json_default
from .arrow import tokens_to_arrow, vectors_block

LAYOUT_KEY = "smart_retrievers.layout"
"""Schema metadata key of a table's :class:`TableLayout` (absent: the native layout)."""
LLAMA_INDEX_KEYS = ("_node_content", "_node_type", "document_id", "doc_id", "ref_doc_id")
"""Keys LlamaIndex's ``node_to_metadata_dict`` adds to a node's metadata: its internals, not the user's."""
TEXT_HASH = "tokens_text_hash"
"""The column where an upgrade records a hash of the text each row's token states were computed from."""
TOKEN_COLUMNS = ("tokens", "n_tokens", TEXT_HASH)
"""The columns an upgrade adds (their names are fixed)."""
SMART_VECTOR = "smart_vector"
"""The pooled-vector column an upgrade adds when the table's own vectors come from another model."""


@dataclass(frozen=True)
class TableLayout:
    """The physical column of each logical SMART column (None: the table has none).

    Attributes:
        id / text / vector: the row id, the text and the pooled vector (required).
        ref_id: the source-document id column, if any.
        metadata: the metadata column, if any; ``metadata_struct`` says whether it is an
            Arrow struct (one child per field) or LanceDB JSON.
        hidden_keys: struct children that are the owner's internals (LlamaIndex's node
            data): never returned as metadata and never filterable.
        image / modality: image paths and the row's modality (an upgraded table has neither:
            every row is text).
        owner: who wrote the table ("smart-retrievers", "llama-index", "langchain", "lancedb").
    """

    id: str = "id"
    text: str = "text"
    vector: str = "vector"
    ref_id: str | None = "ref_id"
    metadata: str | None = "metadata"
    metadata_struct: bool = False
    hidden_keys: tuple[str, ...] = ()
    image: str | None = "image"
    modality: str | None = "modality"
    owner: str = "smart-retrievers"

    @property
    def native(self) -> bool:
        """True for a table written by smart-retrievers itself."""
        return self == NATIVE

    def physical(self, name: str) -> str | None:
        """The column holding the logical column ``name`` (tokens/n_tokens keep their names)."""
        return getattr(self, name) if name in _LOGICAL else name

    @property
    def sql_target(self) -> SqlTarget:
        """How filters reach this layout's metadata and id columns."""
        return SqlTarget(
            metadata=sql_name(self.metadata or "metadata"),
            struct=self.metadata_struct,
            columns={"id": sql_name(self.id), "ref_id": None if self.ref_id is None else sql_name(self.ref_id)},
        )

    def modality_sql(self, modality: str) -> str | None:
        """The condition selecting rows of ``modality`` ("text" / "image"; None: every row is of it)."""
        if self.modality is None:  # an upgraded table: text rows only
            return None if modality == "text" else "FALSE"
        return f"{self.modality} = '{'image' if modality == 'image' else 'text'}'"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_schema(cls, schema: pa.Schema) -> TableLayout:
        """The layout a table's schema metadata records (:data:`NATIVE` when it records none)."""
        raw = (schema.metadata or {}).get(LAYOUT_KEY.encode())
        return cls.from_json(raw) if raw else NATIVE

    @classmethod
    def from_json(cls, raw: str | bytes) -> TableLayout:
        data = json.loads(raw)
        data["hidden_keys"] = tuple(data.get("hidden_keys", ()))
        return cls(**data)


NATIVE = TableLayout()


def sql_name(column: str) -> str:
    """``column`` as a LanceDB SQL identifier (quoted: an upgraded table's names may hold spaces)."""
    return "`" + column.replace("`", "``") + "`"


_LOGICAL = ("id", "ref_id", "text", "image", "modality", "metadata", "vector")


def detect_layout(
    schema: pa.Schema,
    *,
    id_column: str = "id",
    text_column: str = "text",
    vector_column: str = "vector",
    metadata_column: str | None = "metadata",
    ref_id_column: str | None = None,
) -> TableLayout:
    """The layout of a single-vector table, checked against its ``schema``.

    ``metadata_column`` is used when the table has it (a struct); ``ref_id_column`` None
    picks LlamaIndex's ``doc_id`` when it holds strings. Raises ``ValueError`` naming the
    column that is missing or of the wrong type.
    """
    names = set(schema.names)

    def require(name: str, what: str, ok: Any, expected: str) -> None:
        if name not in names:
            raise ValueError(f"the table has no {what} column {name!r} (its columns: {sorted(names)})")
        if not ok(schema.field(name).type):
            raise ValueError(f"{what} column {name!r} is {schema.field(name).type}, not {expected}")

    require(id_column, "id", _is_string, "a string")
    require(text_column, "text", _is_string, "a string")
    require(vector_column, "vector", _is_float_vector, "a fixed-size list of floats")
    taken = [c for c in (*TOKEN_COLUMNS, SMART_VECTOR) if c in names]
    metadata: str | None = None
    struct_keys: list[str] = []
    if metadata_column is not None and metadata_column in names:
        kind = schema.field(metadata_column).type
        if not pa.types.is_struct(kind):
            raise ValueError(
                f"metadata column {metadata_column!r} is {kind}, not a struct; pass metadata_column=None "
                "to upgrade without filterable metadata"
            )
        metadata, struct_keys = metadata_column, [kind.field(i).name for i in range(kind.num_fields)]
    if ref_id_column is None and "doc_id" in names and _is_string(schema.field("doc_id").type):
        ref_id_column = "doc_id"
    elif ref_id_column is not None:
        require(ref_id_column, "ref_id", _is_string, "a string")
    llama_index = "_node_content" in struct_keys
    langchain = metadata is not None and names - set(taken) == {"id", "text", "vector", metadata}
    owner = "llama-index" if llama_index else "langchain" if langchain else "lancedb"
    return TableLayout(
        id=id_column,
        text=text_column,
        vector=vector_column,
        ref_id=ref_id_column,
        metadata=metadata,
        metadata_struct=metadata is not None,
        hidden_keys=tuple(k for k in LLAMA_INDEX_KEYS if k in struct_keys) if llama_index else (),
        image=None,
        modality=None,
        owner=owner,
    )


def _is_string(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_float_vector(kind: pa.DataType) -> bool:
    return pa.types.is_fixed_size_list(kind) and pa.types.is_floating(kind.value_type)


def struct_field_types(kind: pa.DataType, hidden: Sequence[str] = ()) -> dict[str, str]:
    """The filterable fields of a struct metadata column and their filter types.

    Strings, integers, floats, booleans and lists of them map to ``str``, ``int``,
    ``float``, ``bool`` and ``list``; other children (timestamps, nested structs) are not
    filterable and left out, so a filter on them matches like a missing field.
    """
    types: dict[str, str] = {}
    for i in range(kind.num_fields):
        child = kind.field(i)
        if child.name in hidden:
            continue
        t = child.type
        if _is_string(t):
            types[child.name] = "str"
        elif pa.types.is_boolean(t):
            types[child.name] = "bool"
        elif pa.types.is_integer(t):
            types[child.name] = "int"
        elif pa.types.is_floating(t):
            types[child.name] = "float"
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            types[child.name] = "list"
    return types


def to_logical(table: pa.Table, layout: TableLayout, columns: Sequence[str], *, extra: Sequence[str] = ()) -> pa.Table:
    """``table`` (read with :meth:`TableLayout.physical` names) with the logical ``columns``.

    Columns the table lacks are filled (``ref_id`` / ``image`` null, ``modality`` "text");
    struct metadata becomes JSON text without its hidden keys and null values; the vector
    becomes float32. ``extra`` columns (``_rowid``...) are passed through after them.
    """
    n = len(table)
    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in columns:
        source = layout.physical(name)
        if source is None or source not in table.column_names:
            out[name] = pa.array(["text"] * n if name == "modality" else [None] * n, pa.string())
        elif name == "metadata" and layout.metadata_struct:
            out[name] = pa.array(
                [_metadata_json(row, layout.hidden_keys) for row in table.column(source).to_pylist()],
                pa.json_(pa.utf8()),
            )
        elif name == "vector":
            column = table.column(source)
            out[name] = column.cast(pa.list_(pa.float32(), column.type.list_size))
        else:
            out[name] = table.column(source)
    for name in extra:
        out[name] = table.column(name)
    return pa.table(out)


def _metadata_json(row: Mapping[str, Any] | None, hidden: Sequence[str]) -> str:
    kept = {k: v for k, v in (row or {}).items() if v is not None and k not in hidden}
    return json.dumps(kept, default=json_default)


def read_columns(layout: TableLayout, columns: Sequence[str]) -> list[str]:
    """The table columns to read for the logical ``columns``.

    An upgraded table's rows may lack token states (written by the owner's store since),
    so ``vector`` comes with ``tokens`` there; a native table's rows always have them.
    """
    if layout.native:
        return list(columns)
    selected: list[str] = []
    for name in [*columns, "vector"] if "tokens" in columns else columns:
        source = layout.physical(name)
        if source is not None and source not in selected:
            selected.append(source)
    return selected


def logical_rows(
    found: pa.Table,
    layout: TableLayout,
    columns: Sequence[str],
    *,
    extra: Sequence[str] = (),
    token_dim: int,
    codec: TokenCodec | None,
) -> pa.Table:
    """Rows read with :func:`read_columns` as the logical ``columns`` (then ``extra``).

    On an upgraded table, a row without token states has its pooled vector as its one token
    (the method's rule for an input with no token); ``token_dim`` and ``codec`` are the table's.
    """
    if layout.native:
        return found.select([*columns, *extra])
    if "tokens" in columns and found.column("tokens").null_count:
        filled = _pooled_as_tokens(found, layout, token_dim, codec)
        found = found.set_column(found.schema.get_field_index("tokens"), "tokens", filled)
    return to_logical(found, layout, columns, extra=extra)


def _pooled_as_tokens(found: pa.Table, layout: TableLayout, token_dim: int, codec: TokenCodec | None) -> pa.Array:
    """``tokens`` where each row without token states has its normalised pooled vector.

    Run the upgrade again to give such rows their real token states.
    """
    tokens = found.column("tokens").combine_chunks()
    missing = np.flatnonzero(tokens.is_null().to_numpy(zero_copy_only=False))
    vectors = vectors_block(found.column(layout.vector)).numpy()[missing]
    if token_dim != vectors.shape[1]:
        raise ValueError(
            f"{len(missing)} rows have no token states and their pooled vectors ({vectors.shape[1]}-d) "
            f"cannot stand in for {token_dim}-d tokens; run upgrade() again to give them token states"
        )
    norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    filled = tokens_to_arrow([v[None, :] for v in vectors / norms], token_dim, codec).cast(tokens.type)
    index = np.arange(len(tokens))
    index[missing] = len(tokens) + np.arange(len(missing))
    return pa.concat_arrays([tokens, filled]).take(pa.array(index))
