"""What a stored table holds, for reports (the CLI's ``info``): :class:`TableInfo`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..codec import TokenCodec
from .codec_table import CODEC_TABLE_SUFFIX
from .creation import table_names
from .format import FORMAT_VERSION, stored_format
from .layout import TableLayout
from .schema import FieldTypes

if TYPE_CHECKING:
    from .table import SmartStore


@dataclass
class TableInfo:
    """A table's contents and cost, read from its schema and LanceDB's statistics (no model loaded).

    Attributes:
        table / uri: where it is.
        rows: rows in the table (0 before the first write).
        version: the table's version (None before the first write).
        format: the table format its schema records (:mod:`.format`); before the first write, the
            :data:`~.format.FORMAT_VERSION` this release will write it in.
        fingerprint: the encoder fingerprint the table records.
        dim / token_dim: the pooled vectors' and the token states' width.
        compression: the codec preset ("none": float16 states).
        codec: the codec's :meth:`~smart_retrievers.codec.TokenCodec.describe` (None without one).
        codec_ref: the reference to the codec in the codec table (None: none, or stored inline).
        layout: which column holds what (native, or an upgraded table's).
        field_types: the filterable metadata fields and their types.
        table_bytes / codec_table_bytes: data bytes of the table's and its codec table's current version.
        bytes_per_token: stored bytes per original token state (a pooling codec keeps about
            one in ``pool``, so this is its bytes per kept token divided by ``pool``); None
            while the codec is still to be fitted.
    """

    table: str
    uri: str
    rows: int
    version: int | None
    format: int
    fingerprint: dict[str, Any]
    dim: int
    token_dim: int
    compression: str
    codec: dict[str, Any] | None
    codec_ref: str | None
    layout: TableLayout
    field_types: FieldTypes = field(default_factory=dict)
    table_bytes: int = 0
    codec_table_bytes: int = 0
    bytes_per_token: float | None = None


def bytes_per_original_token(token_dim: int, codec: TokenCodec | None) -> float:
    """Stored bytes per original token state: float16 states, or a codec's codes over its pooling.

    >>> bytes_per_original_token(384, None)
    768.0
    """
    if codec is None:
        return 2.0 * token_dim
    return codec.bytes_per_token / codec.pool


def table_info(store: SmartStore) -> TableInfo:
    """The :class:`TableInfo` of ``store``'s table (zeros before its first write)."""
    lance_table = store.table
    stats = lance_table.stats() if lance_table is not None else {"num_rows": 0, "total_bytes": 0}
    codec_table = store.table_name + CODEC_TABLE_SUFFIX
    has_codec_table = store.codec_ref is not None and codec_table in table_names(store.db)
    codec = store.codec
    return TableInfo(
        table=store.table_name,
        uri=store.uri,
        rows=int(stats["num_rows"]),
        version=store.version,
        format=stored_format(lance_table.schema) if lance_table is not None else FORMAT_VERSION,
        fingerprint=dict(store.fingerprint),
        dim=int(store.fingerprint["dim"]),
        token_dim=store.token_dim,
        compression=store.compression,
        codec=codec.describe() if codec is not None else None,
        codec_ref=store.codec_ref,
        layout=store.layout,
        field_types=store.field_types,
        table_bytes=int(stats["total_bytes"]),
        codec_table_bytes=int(store.db.open_table(codec_table).stats()["total_bytes"]) if has_codec_table else 0,
        bytes_per_token=None if store.needs_codec else bytes_per_original_token(store.token_dim, codec),
    )
