"""``smart-retrievers index``: a JSONL file into an index, in this process or on Ray Data actors."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..codec import DEFAULT_COMPRESSION
from ..validation import corpus_item
from .common import encoder_kwargs, encoder_options, load_model, table_options


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("index", help="index a JSONL file (BEIR corpus or {id, text, metadata} lines)")
    p.add_argument("path")
    table_options(p)
    p.add_argument(
        "--compression",
        help=f"token codec of a new table ('none': float16; default: {DEFAULT_COMPRESSION}); an existing table keeps its own",
    )
    p.add_argument("--ray", action="store_true", help="encode on Ray Data actors (extra [ray]); one commit")
    p.add_argument("--actors", type=int, default=1, help="Ray encoder actors with --ray (default: 1)")
    encoder_options(p)
    p.set_defaults(func=cmd_index)


def read_items(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a BEIR corpus (_id/title/text) or {id, text, metadata} JSON lines."""
    from ..evaluation.beir import read_jsonl

    seen: dict[str, int] = {}
    try:
        for line_no, row in read_jsonl(path):
            try:
                item = corpus_item(row)
            except (TypeError, ValueError) as exc:  # a line of the wrong shape: path:line, no traceback
                raise SystemExit(f"{path}:{line_no}: {exc}") from None
            if item["id"] in seen:
                raise SystemExit(f"{path}:{line_no}: duplicate id {item['id']!r} (first on line {seen[item['id']]})")
            seen[item["id"]] = line_no
            yield item
    except ValueError as exc:  # malformed line
        raise SystemExit(str(exc)) from None


def cmd_index(args: argparse.Namespace) -> int:
    from ..index import SmartIndex

    if args.ray:
        return index_with_ray(args)
    items = list(read_items(Path(args.path)))
    index = SmartIndex(args.db, encoder=load_model(args), table=args.table, compression=args.compression)
    start = time.perf_counter()
    index.add(
        [r["text"] for r in items],
        ids=[r["id"] for r in items],
        metadatas=[r["metadata"] for r in items],
        show_progress=True,
    )
    took = time.perf_counter() - start
    print(
        f"indexed {len(items)} items into {args.db} (table {args.table!r}) in {took:.1f}s; {index.last_truncated} truncated; {index.count()} rows now"
    )
    return 0


def index_with_ray(args: argparse.Namespace) -> int:
    """``index --ray``: encode on Ray Data actors, write one commit (smart_retrievers.distributed)."""
    try:
        from ..distributed import index_with_ray as run
    except ImportError as exc:
        raise SystemExit(f"--ray needs Ray Data: pip install 'smart-retrievers[ray]' ({exc})") from None
    start = time.perf_counter()
    index = run(
        args.path,
        args.db,
        model=args.model,
        encoder_options=encoder_kwargs(args),
        actors=args.actors,
        table=args.table,
        compression=args.compression,
    )
    took = time.perf_counter() - start
    print(
        f"indexed with {args.actors} Ray actor(s) into {args.db} (table {args.table!r}) in {took:.1f}s; {index.count()} rows now"
    )
    return 0
