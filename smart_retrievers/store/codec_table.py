"""The codec side table: a table's token codec, stored once beside it and referenced from its schema."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

from ..codec import TokenCodec
from .creation import create_or_open, table_names

CODEC_TABLE_SUFFIX = "__smart_codecs"
"""The codecs of table ``T`` live in table ``T__smart_codecs`` beside it, one row per codec, keyed by hash."""

_CODEC_SCHEMA = pa.schema([pa.field("sha256", pa.string(), nullable=False), pa.field("codec", pa.binary())])
_LOADED_CODECS: dict[str, TokenCodec] = {}


def save_codec(db: Any, table: str, codec: TokenCodec) -> str:
    """Store ``codec`` in ``table``'s codec table (once per content) and return its reference.

    A codec is a few MB of matrices. In the schema metadata it would be copied into the
    manifest of every commit (2 MB per ``add``, kept until old versions are cleaned up), so the
    schema holds only this small reference (hash, preset) and the codec itself is one row of
    ``{table}__smart_codecs``, written once (looked up by hash first).
    """
    raw = codec.to_json().encode()
    digest = hashlib.sha256(raw).hexdigest()
    side = create_or_open(db, table + CODEC_TABLE_SUFFIX, _CODEC_SCHEMA)
    if side.count_rows(f"sha256 = '{digest}'") == 0:
        row = pa.table({"sha256": [digest], "codec": [raw]}, schema=_CODEC_SCHEMA)
        side.add(row)  # a concurrent writer of the same codec may add the same row: identical, harmless
    _LOADED_CODECS[digest] = codec
    return json.dumps({"sha256": digest, "preset": codec.preset, "table": table + CODEC_TABLE_SUFFIX})


def load_codec(db: Any, raw: str | bytes | None) -> TokenCodec | None:
    """The codec a table's ``CODEC_KEY`` value names (None: float16 states); older tables hold it inline."""
    if not raw:
        return None
    data = json.loads(raw)
    if "sha256" not in data:
        return TokenCodec.from_json(raw)
    digest = data["sha256"]
    if digest not in _LOADED_CODECS:
        if data["table"] not in table_names(db):
            raise FileNotFoundError(f"the codec table {data['table']!r} the table's token codes need is missing")
        found = db.open_table(data["table"]).search().where(f"sha256 = '{digest}'").select(["codec"]).to_arrow()
        blob = found.column("codec")[0].as_py() if len(found) else None
        if blob is None or hashlib.sha256(blob).hexdigest() != digest:
            raise FileNotFoundError(f"codec {digest[:12]} is missing or damaged in table {data['table']!r}")
        _LOADED_CODECS[digest] = TokenCodec.from_json(blob)
    return _LOADED_CODECS[digest]


def user_tables(db: Any) -> list[str]:
    """The database's tables, without the codec side tables."""
    return [name for name in table_names(db) if not name.endswith(CODEC_TABLE_SUFFIX)]
