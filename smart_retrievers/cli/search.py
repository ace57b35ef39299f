"""``smart-retrievers search``: hits for a query, as lines or JSON, with match evidence on ``--explain``; and
``explain``: one row's evidence for a query, in the terminal or as an HTML page."""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path
from typing import Any

from ..options import DEFAULT_MODE, SEARCH_MODES
from .common import check_where, encoder_options, open_index, parse_where, table_options


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("search", help="search an index")
    p.add_argument("query")
    table_options(p)
    p.add_argument("-k", type=int, default=5)
    p.add_argument(
        "--mode", choices=SEARCH_MODES, default=DEFAULT_MODE, help="hybrid: SMART plus BM25 evidence (default)"
    )
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--where", help='metadata filter as JSON, e.g. \'{"year": {"$gte": 2020}}\' (default: no filter)')
    p.add_argument("--json", action="store_true", help="print hits as JSON")
    p.add_argument(
        "--explain", action="store_true", help="show each hit's match evidence (query token -> document span)"
    )
    encoder_options(p)
    p.set_defaults(func=cmd_search)

    p = commands.add_parser("explain", help="why a stored row matches a query: its evidence, or an HTML page of it")
    p.add_argument("query")
    p.add_argument("id", help="the row's id")
    table_options(p)
    p.add_argument("--html", metavar="OUT.html", help="write the evidence as an HTML page (default: none)")
    p.add_argument("--json", action="store_true", help="print the evidence as JSON")
    encoder_options(p)
    p.set_defaults(func=cmd_explain)


def evidence_label(index: Any) -> str:
    """What ``--explain`` prints, named: the float states, or on a coded table the stored codes that scored the hit."""
    codec = index.codec
    if codec is None:
        return "evidence (float states, as stored):"
    return f"evidence (the stored {codec.describe()['preset']!r} codes that scored the hit):"


def cmd_search(args: argparse.Namespace) -> int:
    where = parse_where(args.where)  # before a model is loaded
    index = open_index(args)
    check_where(index.store, where, args.where)
    hits = index.search(args.query, k=args.k, where=where, mode=args.mode, candidates=args.candidates)
    if args.json:
        rows = [
            {**h.__dict__, **({"evidence": index.explain(args.query, h).to_dict()} if args.explain else {})}
            for h in hits
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not hits:
        print(f"0 results{' (--where matched no row)' if where is not None else ''}")
    for rank, hit in enumerate(hits, 1):
        snippet = hit.text if len(hit.text) <= 100 else hit.text[:97] + "..."
        print(
            f"{rank:>2}. score {hit.score:.4f} (pooled {hit.pooled_score:.4f}, late {hit.late_score:.4f}, "
            f"lexical {hit.lex_score:.4f})  [{hit.id}] {snippet}"
        )
        if args.explain:
            rendered = index.explain(args.query, hit).render()
            print(f"    {evidence_label(index)}\n    " + rendered.replace("\n", "\n    "))
    return 0


def html_page(evidence: Any, label: str) -> str:
    """A standalone HTML page of ``evidence`` (:meth:`Evidence.to_html`) under ``label``."""
    title = html.escape(f"{evidence.doc_id}: {evidence.query}")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><p><i>{html.escape(label)}</i></p>\n{evidence.to_html()}\n</body></html>\n"
    )


def cmd_explain(args: argparse.Namespace) -> int:
    out = Path(args.html) if args.html else None
    if out is not None and not out.parent.is_dir():  # before a model is loaded
        raise SystemExit(f"--html {args.html}: the folder {out.parent} does not exist")
    index = open_index(args)
    try:
        evidence = index.explain(args.query, args.id)
    except KeyError as exc:  # no row with that id
        raise SystemExit(exc.args[0]) from None
    label = evidence_label(index)
    if out is not None:
        out.write_text(html_page(evidence, label), encoding="utf-8")
    if args.json:
        print(json.dumps(evidence.to_dict(), indent=2))
    else:
        print(f"{label}\n{evidence.render()}")
    if out is not None:
        print(f"wrote {out}", file=sys.stderr if args.json else sys.stdout)
    return 0
