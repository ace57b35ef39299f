"""What every command shares: the table and model options, the encoder they ask for, opening an index."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..index import SmartIndex

DEFAULT_DB = "./smart_db"
DEFAULT_TABLE = "smart"


def table_options(parser: argparse.ArgumentParser) -> None:
    """``--db`` and ``--table``, with the defaults every command shares."""
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--table", default=DEFAULT_TABLE)


def model_options(parser: argparse.ArgumentParser) -> None:
    """The options that pick the model (see :func:`load_model`)."""
    parser.add_argument("--model", help="model directory or hub id (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument("--max-length", type=int, help="token limit per input (default: the model's)")


def encoder_options(parser: argparse.ArgumentParser) -> None:
    """The model options, the encoding batch size, the adapter and ``--quiet``."""
    model_options(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--adapter", help="a trained SMART adapter directory")
    progress_options(parser)


def progress_options(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bars (a command that draws them shows them by default)."""
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def show_progress(args: argparse.Namespace) -> bool:
    """Whether the command draws its progress bars: yes unless ``--quiet``."""
    return not getattr(args, "quiet", False)


def encoder_kwargs(args: argparse.Namespace, batch_size: int | None = None) -> dict[str, Any]:
    """The encoder keyword arguments the options ask for (batch size, adapter, max length, no bars if ``--quiet``)."""
    kwargs: dict[str, Any] = {"batch_size": batch_size or args.batch_size}
    if not show_progress(args):
        kwargs["show_progress"] = False
    if getattr(args, "adapter", None):
        kwargs["adapter"] = args.adapter
    if getattr(args, "max_length", None):
        kwargs["max_length"] = args.max_length
    return kwargs


def load_model(args: argparse.Namespace, batch_size: int | None = None):
    """The bundled encoder, or the right one (text or vision-language) for ``--model``;
    ``batch_size`` (default ``--batch-size``) inputs per forward pass."""
    from ..encoders import default_encoder, load_encoder

    kwargs = encoder_kwargs(args, batch_size)
    if args.model:
        return load_encoder(args.model, **kwargs)
    return default_encoder(**kwargs)


def check_db(db: str) -> None:
    """Stop unless a local ``--db`` directory exists (opening LanceDB there would create it)."""
    if "://" not in db and not Path(db).is_dir():
        raise SystemExit(f"no index at {db}: the directory does not exist (build one with `smart-retrievers index`)")


def open_index(
    args: argparse.Namespace, then: str = "run `smart-retrievers index` first", **options: Any
) -> SmartIndex:
    """The index at ``--db`` / ``--table`` with the model the options ask for; it must exist and hold rows.

    ``then`` tells the user what to do about an empty table; ``options`` go to :class:`SmartIndex`.
    """
    from ..index import SmartIndex
    from ..store import SmartStore

    check_db(args.db)
    try:  # before the model loads: a missing table is named with the tables there
        SmartStore.open_existing(args.db, args.table)
    except ValueError as exc:  # TableNotFoundError, FingerprintMismatchError (a plain LanceDB table: upgrade)
        raise SystemExit(str(exc)) from None
    index = SmartIndex(args.db, encoder=load_model(args), table=args.table, **options)
    if index.count() == 0:
        raise SystemExit(f"no rows in table {args.table!r} at {args.db}; {then}")
    return index


def parse_where(raw: str | None) -> Any:
    """``--where`` as a parsed filter; a bad one raises ValueError naming ``--where``."""
    from ..filters import parse_filter

    if not raw:
        return None
    try:
        return parse_filter(json.loads(raw))
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"--where {raw!r} is not a valid filter: {exc}") from None


def check_where(store: Any, where: Any, raw: str | None) -> None:
    """Render ``where`` against the table's field types: a value of the wrong type is a ``--where`` error."""
    try:
        store.where_sql(where)
    except ValueError as exc:
        raise ValueError(f"--where {raw!r}: {exc}") from None
