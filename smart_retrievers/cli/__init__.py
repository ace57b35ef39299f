"""The ``smart-retrievers`` command line: each command group declares its options next to its handler.

* :mod:`.indexing`: ``index``;
* :mod:`.search`: ``search`` (``--explain`` for match evidence);
* :mod:`.tables`: ``info`` and ``delete`` (no model is loaded); :mod:`.migrate`: ``migrate`` (table format);
* :mod:`.upkeep`: ``optimize``, ``recompress`` (``compact``, deprecated) and ``upgrade``;
* :mod:`.evaluate`: ``eval`` and ``calibrate``; :mod:`.train`: ``train``;
* :mod:`.common`: the shared options and helpers; :mod:`.help`: help texts that state every default.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import evaluate, indexing, migrate, search, tables, train, upkeep
from .help import document

__all__ = ["build_parser", "main"]

GROUPS = (indexing, search, tables, upkeep, migrate, evaluate, train)
"""The command modules, in the order ``--help`` lists their commands."""


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="smart-retrievers", description="SMART late-interaction retrieval on single-vector embedders."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(commands)
    document(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smart-retrievers`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:  # bad input: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
