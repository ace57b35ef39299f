"""What ``storage_context.persist`` saves for a :class:`SmartVectorIndex`: a pointer to its LanceDB table."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.data_structs.data_structs import IndexDict
from llama_index.core.data_structs.registry import INDEX_STRUCT_TYPE_TO_INDEX_STRUCT_CLASS

from .queries import model_id

if TYPE_CHECKING:
    from ...index import SmartIndex

__all__ = ["SMART_STRUCT_TYPE", "SmartIndexStruct", "index_struct_for"]

SMART_STRUCT_TYPE = "smart_lancedb"
"""The index struct type under which ``storage_context.persist`` saves a :class:`SmartVectorIndex`."""


@dataclass
class SmartIndexStruct(IndexDict):
    """What ``index.storage_context.persist(persist_dir=...)`` saves for a :class:`SmartVectorIndex`: a
    pointer to its LanceDB table (the nodes stay in the table), so that
    ``load_index_from_storage(StorageContext.from_defaults(persist_dir=...))`` opens it again.

    ``encoder`` is the hub id or directory of the encoder (see :func:`model_id`); an encoder that
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


def index_struct_for(smart: SmartIndex, struct: SmartIndexStruct | None) -> SmartIndexStruct:
    """``struct`` (a new one if None) pointing at ``smart``'s table."""
    struct = struct or SmartIndexStruct()
    uri = smart.store.uri
    if "://" not in uri:  # a local path: absolute, so loading works from another directory
        uri = str(Path(uri).resolve())
    loadable = hasattr(smart.encoder, "model_name_or_path")
    struct.uri, struct.table = uri, smart.store.table_name
    struct.encoder = model_id(smart.encoder) if loadable else None
    struct.custom_encoder = None if loadable else type(smart.encoder).__name__
    struct.options = {
        "lambda_pool": smart.lambda_pool,
        "lambda_late": smart.lambda_late,
        "candidates": smart.candidates,
    }
    return struct
