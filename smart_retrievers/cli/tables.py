"""``smart-retrievers info`` and ``delete``: read or trim a stored table without loading a model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..filters import RESERVED_FIELDS
from .common import check_db, check_where, parse_where, table_options


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "info", help="what an index holds: rows, table format, encoder fingerprint, dims, codec, size on disk"
    )
    table_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = commands.add_parser(
        "delete", help="delete rows by id, source-document id or metadata filter (no model is loaded)"
    )
    table_options(p)
    p.add_argument("--ids", nargs="+", metavar="ID", help="row ids to delete (default: none)")
    p.add_argument(
        "--ref-ids", nargs="+", metavar="REF_ID", help="delete every row of these source documents (default: none)"
    )
    p.add_argument(
        "--where", help="delete the rows matching this metadata filter (JSON, as search --where; default: none)"
    )
    p.add_argument("--all", action="store_true", help="delete every row (the table and its codec stay)")
    p.set_defaults(func=cmd_delete)


def open_store(args: argparse.Namespace) -> Any:
    """The :class:`SmartStore` of ``--db`` / ``--table`` with the fingerprint it records (no model, never created)."""
    from ..store import SmartStore

    check_db(args.db)
    return SmartStore.open_existing(args.db, args.table)


def folder_bytes(folder: Path) -> int | None:
    """Bytes of every file under a local ``folder`` (all its versions), or None where there is no such folder."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else None


def cmd_info(args: argparse.Namespace) -> int:
    from .._version import __version__
    from ..store import CODEC_TABLE_SUFFIX

    described = open_store(args).describe()
    on_disk = [folder_bytes(Path(args.db) / f"{name}.lance") for name in (args.table, args.table + CODEC_TABLE_SUFFIX)]
    info = {
        "db": args.db,
        "table": args.table,
        "rows": described.rows,
        "table_version": described.version,
        "table_format": described.format,
        "storage_bytes": None if on_disk[0] is None else on_disk[0] + (on_disk[1] or 0),
        "data_bytes": described.table_bytes + described.codec_table_bytes,
        "codec_table_bytes": described.codec_table_bytes,
        "dim": described.dim,
        "token_dim": described.token_dim,
        "compression": described.compression,
        "codec": described.codec,
        "bytes_per_original_token": described.bytes_per_token,
        "metadata_fields": {k: v for k, v in described.field_types.items() if k not in RESERVED_FIELDS},
        "encoder": described.fingerprint,
        "smart_retrievers_version": __version__,
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    notes = {
        "storage_bytes": "on disk: the table and its codec table, every kept version",
        "data_bytes": "the current version's data, codec table included",
        "bytes_per_original_token": "stored bytes per token state the encoder gave (a pooling codec keeps fewer)",
        "table_format": "the layout of schema metadata and side tables (smart-retrievers migrate updates older ones)",
    }
    for key, value in info.items():
        shown = f"{value / 1e6:.2f} MB ({value} bytes)" if key.endswith("_bytes") and value is not None else value
        note = f"  ({notes[key]})" if key in notes and value is not None else ""
        print(f"{key + ':':<26}{shown}{note}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    where = parse_where(args.where)
    if args.all and (args.ids or args.ref_ids or where is not None):
        raise ValueError("--all deletes every row; it takes no --ids, --ref-ids or --where")
    if not (args.all or args.ids or args.ref_ids or where is not None):
        raise ValueError("delete needs --ids, --ref-ids or --where (or --all to delete every row)")
    store = open_store(args)
    if args.all:
        deleted = store.delete_all()
    else:
        check_where(store, where, args.where)
        deleted = store.delete(ids=args.ids, ref_ids=args.ref_ids, where=where)
    print(f"deleted {deleted} rows from table {args.table!r} at {args.db}; {store.count()} rows left")
    return 0
