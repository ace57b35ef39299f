"""Keeping a table in shape: ``optimize`` (compact fragments, ANN index), ``recompress`` (re-code token
states; ``compact`` is its deprecated old name) and ``upgrade`` (a single-vector table gains token states)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..codec import DEFAULT_COMPRESSION
from .common import encoder_options, load_model, open_index, show_progress, table_options


def register(commands: argparse._SubParsersAction) -> None:
    _register_optimize(commands)
    recompress_help = "rewrite a float16 table's token states into a codec, without re-encoding"
    _recompress_parser(commands, "recompress", recompress_help).set_defaults(func=cmd_recompress)
    _recompress_parser(commands, "compact", "deprecated name of `recompress`").set_defaults(func=cmd_compact)
    _register_upgrade(commands)


def _register_optimize(commands: argparse._SubParsersAction) -> None:
    from ..store import ANN_INDEX_TYPES, DEFAULT_ANN_INDEX, DEFAULT_ANN_MIN_ROWS

    p = commands.add_parser(
        "optimize", help="compact the table, drop old versions, build or update the pooled ANN index"
    )
    table_options(p)
    p.add_argument(
        "--ann-min-rows",
        type=int,
        default=DEFAULT_ANN_MIN_ROWS,
        help=f"build the ANN index from this many rows (default: {DEFAULT_ANN_MIN_ROWS})",
    )
    p.add_argument("--index-type", choices=ANN_INDEX_TYPES, default=DEFAULT_ANN_INDEX)
    p.add_argument("--num-partitions", type=int, help="IVF partitions (default: LanceDB's choice from the row count)")
    p.add_argument(
        "--cleanup-older-than",
        type=float,
        default=7.0,
        metavar="DAYS",
        help="remove table versions older than this many days (0: all but the latest; default 7)",
    )
    p.add_argument("--rebuild-index", action="store_true", help="retrain the ANN index even if one exists")
    encoder_options(p)
    p.set_defaults(func=cmd_optimize)


def _recompress_parser(commands: argparse._SubParsersAction, name: str, help: str) -> argparse.ArgumentParser:
    p = commands.add_parser(name, help=help)
    table_options(p)
    p.add_argument("--compression", default=DEFAULT_COMPRESSION, help=f"codec preset (default: {DEFAULT_COMPRESSION})")
    encoder_options(p)
    return p


def _register_upgrade(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "upgrade",
        help="give an existing single-vector LanceDB table (LlamaIndex / LangChain / plain) SMART token states, in place",
    )
    p.add_argument("--db", required=True, help="the LanceDB database (a directory, or s3:// ...)")
    p.add_argument("--table", required=True)
    p.add_argument("--text-column", default="text", help="the column holding each row's text")
    p.add_argument("--vector-column", default="vector", help="the column holding the pooled vectors")
    p.add_argument("--id-column", default="id", help="the column holding the unique row ids")
    p.add_argument("--metadata-column", default="metadata", help="a struct column of filterable metadata")
    p.add_argument("--no-metadata", action="store_true", help="upgrade without filterable metadata")
    p.add_argument("--ref-id-column", help="the source-document id column (default: LlamaIndex's doc_id if set)")
    p.add_argument(
        "--compression",
        help=f"token codec ('none': float16; default: {DEFAULT_COMPRESSION}); a resumed upgrade keeps its own",
    )
    p.add_argument(
        "--reencode-vectors",
        action="store_true",
        help="if the table's vectors are another model's, add this model's own smart_vector column instead of refusing",
    )
    encoder_options(p)
    p.set_defaults(func=cmd_upgrade)


def cmd_recompress(args: argparse.Namespace) -> int:
    index = open_index(args, then="nothing to recompress")
    start = time.perf_counter()
    rows = index.recompress(args.compression, show_progress=show_progress(args))
    codec = index.codec.describe() if index.codec is not None else None  # --compression none: float16 states
    stored = f"{codec['preset']!r} ({codec['bytes_per_token']} bytes per stored token)" if codec else "float16 states"
    print(
        f"compressed {rows} rows of table {args.table!r} at {args.db} to {stored} in {time.perf_counter() - start:.1f}s"
    )
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    """``compact``, the old name of ``recompress``: warns on stderr, then recompresses."""
    print(
        "warning: `smart-retrievers compact` is deprecated and will be removed in the next minor version; "
        "use `smart-retrievers recompress` (`optimize` compacts the table)",
        file=sys.stderr,
    )
    return cmd_recompress(args)


def cmd_optimize(args: argparse.Namespace) -> int:
    from datetime import timedelta

    index = open_index(args, then="nothing to optimize", ann_min_rows=args.ann_min_rows, ann_index_type=args.index_type)
    report = index.optimize(
        cleanup_older_than=timedelta(days=args.cleanup_older_than),
        rebuild_index=args.rebuild_index,
        num_partitions=args.num_partitions,
    )
    if report.index_type is None:
        ann = f"no ANN index (fewer than {args.ann_min_rows} rows: flat search)"
    else:
        how = f"built in {report.index_seconds:.1f}s" if report.index_built else "updated"
        ann = f"ANN index {report.index_type} {how}: {report.indexed_rows} rows indexed, {report.unindexed_rows} not"
    print(
        f"optimized table {args.table!r} at {args.db}: {report.rows} rows, "
        f"fragments {report.fragments_before} -> {report.fragments_after}, "
        f"versions {report.versions_before} -> {report.versions_after}; {ann}; {report.seconds:.1f}s"
    )
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    from ..upgrade import UpgradeConflictError, upgrade_table

    if "://" not in args.db and not Path(args.db).exists():
        raise SystemExit(f"no LanceDB database at {args.db}")
    try:
        report = upgrade_table(
            args.db,
            args.table,
            load_model(args),
            text_column=args.text_column,
            vector_column=args.vector_column,
            id_column=args.id_column,
            metadata_column=None if args.no_metadata else args.metadata_column,
            ref_id_column=args.ref_id_column,
            compression=args.compression,
            reencode_vectors=args.reencode_vectors,
            batch_size=args.batch_size,
            show_progress=show_progress(args),
        )
    except UpgradeConflictError as exc:  # other writers kept committing: nothing lost, a re-run finishes
        print(f"error: {exc}", file=sys.stderr)
        return 1
    checked = "" if report.min_cosine is None else f"; vectors checked (lowest cosine {report.min_cosine:.4f})"
    print(
        f"upgraded table {args.table!r} at {args.db}: {report.rows} rows, {report.backfilled} backfilled, "
        f"{report.caught_up} caught up, {report.refreshed} re-encoded (text changed), "
        f"pooled vectors from {report.vector_column!r}{checked}; "
        f"{report.bytes_per_row:,.0f} bytes added per row; {report.seconds:.1f}s"
    )
    return 0
