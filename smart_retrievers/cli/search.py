"""``smart-retrievers search``: hits for a query, as lines or JSON, with match evidence on ``--explain``."""

from __future__ import annotations

import argparse
import json

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
            f"{rank:>2}. {hit.score:.4f} (pooled {hit.pooled_score:.4f}, late {hit.late_score:.4f}, "
            f"lexical {hit.lex_score:.4f})  [{hit.id}] {snippet}"
        )
        if args.explain:
            print("    " + index.explain(args.query, hit).render().replace("\n", "\n    "))
    return 0
