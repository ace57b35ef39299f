"""``smart-retrievers migrate``: bring a table written in an older table format up to this release's."""

from __future__ import annotations

import argparse

from .common import check_db, table_options


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "migrate",
        help="bring a table written by an older smart-retrievers to this release's table format "
        "(one metadata-only commit; rows are not rewritten, no model is loaded)",
    )
    table_options(p)
    p.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    from ..store.migrate import migrate_table

    check_db(args.db)
    report = migrate_table(args.db, args.table)
    if not report.migrated:
        print(f"table {args.table!r} is already in table format {report.to_format}; nothing to do")
        return 0
    for step in report.steps:
        print(step)
    print(f"table {args.table!r} migrated from table format {report.from_format} to {report.to_format}")
    return 0
