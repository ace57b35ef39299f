"""``smart-retrievers index``: a JSONL file, a BEIR folder or a folder of text files into an index, in this
process or on Ray Data actors."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..codec import DEFAULT_COMPRESSION
from ..validation import corpus_item
from .common import encoder_kwargs, encoder_options, load_model, show_progress, table_options


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "index",
        help="index a JSONL file (BEIR corpus or {id, text, metadata} lines), a BEIR folder or a folder of .txt/.md files",
    )
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


TEXT_SUFFIXES = (".txt", ".md")
"""The files a folder without ``corpus.jsonl`` is indexed from: one document per file."""


def corpus_file(path: Path) -> Path | None:
    """The JSONL file to read for ``path`` (the file itself, or a BEIR folder's ``corpus.jsonl``); None for text
    files (a folder of them, or one .txt/.md file). A missing path stops here, before any model loads."""
    if not path.exists():
        raise SystemExit(f"no such file or folder: {path}")
    if path.is_dir():
        corpus = path / "corpus.jsonl"
        return corpus if corpus.is_file() else None
    return None if path.suffix.lower() in TEXT_SUFFIXES else path


def load_items(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The ``{id, text, metadata}`` items at ``path`` (see :func:`corpus_file`) and how many empty files were skipped."""
    corpus = corpus_file(path)
    if corpus is not None:
        return list(read_items(corpus)), 0
    return read_text_files(path)


def read_text_files(path: Path) -> tuple[list[dict[str, Any]], int]:
    """One item per .txt/.md file under the folder ``path`` (hidden files and folders left out; or ``path``
    itself, one file), in path order: id = its path relative to the folder, metadata ``file_name`` and
    ``file_path`` (the same relative path). Empty files are skipped and counted; a file that is not UTF-8
    text stops the command, naming it."""
    folder = path if path.is_dir() else path.parent
    files = sorted(
        f
        for f in (folder.rglob("*") if path.is_dir() else [path])
        if f.suffix.lower() in TEXT_SUFFIXES
        and f.is_file()
        and not any(part.startswith(".") for part in f.relative_to(folder).parts)
    )
    if not files:
        raise SystemExit(f"{folder} holds no corpus.jsonl and no {' or '.join(TEXT_SUFFIXES)} files")
    items, empty = [], 0
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SystemExit(f"{file}: not UTF-8 text") from None
        if not text.strip():
            empty += 1
            continue
        rel = file.relative_to(folder).as_posix()
        try:
            items.append(corpus_item({"id": rel, "text": text, "metadata": {"file_name": file.name, "file_path": rel}}))
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"{file}: {exc}") from None
    return items, empty


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
    items, empty = load_items(Path(args.path))  # read and checked before the model loads
    index = SmartIndex(args.db, encoder=load_model(args), table=args.table, compression=args.compression)
    start = time.perf_counter()
    index.add(
        [r["text"] for r in items],
        ids=[r["id"] for r in items],
        metadatas=[r["metadata"] for r in items],
        show_progress=show_progress(args),
    )
    took = time.perf_counter() - start
    skipped = f"; {empty} empty files skipped" if empty else ""
    print(
        f"indexed {len(items)} items into {args.db} (table {args.table!r}) in {took:.1f}s; "
        f"{index.last_truncated} truncated{skipped}; {index.count()} rows now"
    )
    return 0


def index_with_ray(args: argparse.Namespace) -> int:
    """``index --ray``: encode on Ray Data actors, write one commit (smart_retrievers.distributed)."""
    corpus = corpus_file(Path(args.path))
    if corpus is None:
        raise SystemExit("--ray reads JSONL: give a JSONL file or a BEIR folder (index text files without --ray)")
    try:
        from ..distributed import index_with_ray as run
    except ImportError as exc:
        raise SystemExit(f"--ray needs Ray Data: pip install 'smart-retrievers[ray]' ({exc})") from None
    start = time.perf_counter()
    index = run(
        str(corpus),
        args.db,
        model=args.model,
        encoder_options=encoder_kwargs(args),
        actors=args.actors,
        table=args.table,
        compression=args.compression,
        show_progress=show_progress(args),
    )
    took = time.perf_counter() - start
    print(
        f"indexed with {args.actors} Ray actor(s) into {args.db} (table {args.table!r}) in {took:.1f}s; {index.count()} rows now"
    )
    return 0
