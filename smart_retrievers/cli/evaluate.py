"""``smart-retrievers eval`` (single-vector vs SMART on a BEIR-layout dataset) and ``calibrate`` (the fusion
weights of an index, by cross-validated nDCG@10 on judged queries)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from ..codec import DEFAULT_COMPRESSION
from ..evaluation.calibrate import DEFAULT_GRID, DEFAULT_LEX_GRID
from ..lexical import DEFAULT_LAMBDA_LEX
from .common import check_db, encoder_options, load_model, open_index, show_progress, table_options


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "eval", help="single-vector vs SMART on a BEIR-layout dataset (corpus rows may carry an `image`)"
    )
    p.add_argument("beir_dir")
    p.add_argument("--split", default="test")
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--lambda-pool", type=float, default=1.0)
    p.add_argument("--lambda-late", type=float, default=1.0)
    p.add_argument(
        "--lambda-lex",
        type=float,
        default=DEFAULT_LAMBDA_LEX,
        help="weight of the lexical (BM25) term in smart-hybrid, at full lexical trust",
    )
    p.add_argument(
        "--no-lexical",
        action="store_true",
        help="leave out the lexical methods (bm25, hybrid-rrf, smart-hybrid), which build a full-text index",
    )
    p.add_argument(
        "--compression",
        default=DEFAULT_COMPRESSION,
        help=f"token codec preset, scored as an index with it would ('none': float16; default: {DEFAULT_COMPRESSION})",
    )
    p.add_argument("--json", help="write results to this JSON file")
    p.add_argument(
        "--plot", metavar="OUT.png", help="draw nDCG@10, per-query gain and recall@k to a PNG (extra [plot])"
    )
    encoder_options(p)
    p.set_defaults(func=cmd_eval)

    p = commands.add_parser(
        "calibrate",
        help="choose lambda_pool/lambda_late/lambda_lex for an index by k-fold cross-validated nDCG@10 on judged queries",
        description="Grid-search the fusion weights (pooled only, late only and ratios between, each with "
        "several lexical weights) on a BEIR-layout split's queries and qrels against an index holding its "
        "corpus (row ids = corpus ids), with k-fold cross-validation; keeps the default "
        f"1/1/{DEFAULT_LAMBDA_LEX:g} unless calibrating wins under cross-validation.",
    )
    p.add_argument("beir_dir", help="BEIR dataset directory (queries.jsonl, qrels/SPLIT.tsv; corpus.jsonl for the ids)")
    table_options(p)
    p.add_argument("--split", default="test")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--candidates", type=int, default=100, help="pooled (and full-text) candidates re-scored per query")
    p.add_argument(
        "--grid",
        nargs="+",
        metavar="POOL/LATE[/LEX]",
        help="settings to try, e.g. 1/0 1/1 1/2 0/1 (each with every --lex-grid value) or 1/1/0.3 "
        f"(default: {' '.join(f'{a:g}/{b:g}' for a, b in DEFAULT_GRID)})",
    )
    p.add_argument(
        "--lex-grid",
        nargs="+",
        type=float,
        default=list(DEFAULT_LEX_GRID),
        metavar="LEX",
        help=f"lambda_lex values tried with each POOL/LATE (default: {' '.join(f'{x:g}' for x in DEFAULT_LEX_GRID)})",
    )
    p.add_argument("--min-gain", type=float, default=0.0, help="CV nDCG@10 gain over the default needed to move off it")
    p.add_argument("--seed", type=int, default=0, help="fold shuffle seed")
    p.add_argument(
        "--save", action="store_true", help="store the chosen weights in the table (searches default to them)"
    )
    p.add_argument("--json", help="write the calibration report to this JSON file")
    encoder_options(p)
    p.set_defaults(func=cmd_calibrate)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluation import compare, encode_corpus, load_beir

    if args.plot:  # before anything is encoded
        from ..evaluation.plots import require_matplotlib

        try:
            require_matplotlib()
        except ImportError as exc:
            raise SystemExit(str(exc)) from None
    dataset = load_beir(args.beir_dir, split=args.split)
    encoder = load_model(args)
    query_ids = list(dataset.queries)
    start = time.perf_counter()
    # image rows go through the vision encoder
    doc_ids, docs = encode_corpus(dataset, encoder, show_progress=show_progress(args))
    encode_docs_s = time.perf_counter() - start
    start = time.perf_counter()
    queries = encoder.encode_queries([dataset.queries[q] for q in query_ids], show_progress=show_progress(args))
    encode_queries_s = time.perf_counter() - start
    # image rows have no text for the full-text index: the lexical methods are for text corpora
    lexical_off = args.no_lexical or any(dataset.corpus[d].get("image") for d in doc_ids)
    result = compare(
        query_ids,
        queries,
        doc_ids,
        docs,
        dataset.qrels,
        candidates=args.candidates,
        lambda_pool=args.lambda_pool,
        lambda_late=args.lambda_late,
        compression=args.compression,
        encoder=encoder,
        doc_texts=None if lexical_off else [dataset.doc_text(d) for d in doc_ids],
        query_texts=None if lexical_off else [dataset.queries[q] for q in query_ids],
        lambda_lex=args.lambda_lex,
        show_progress=show_progress(args),
    )
    timings = {"encode_corpus_s": encode_docs_s, "encode_queries_s": encode_queries_s, **result.timings}
    print(f"{dataset.name} ({args.split}): {len(doc_ids)} docs, {len(query_ids)} queries, model {encoder.name}")
    print(f"token states: compression {result.compression!r}, {result.bytes_per_token} bytes per token")
    print(result.table())
    held = ", ".join(f"top-{depth} {share:.4f}" for depth, share in result.coverage.items())
    print(f"share of exhaustive SMART's top 10 held by the pooled candidates: {held}")
    print("timings: " + ", ".join(f"{k}={v:.2f}" for k, v in timings.items()))
    if args.json:
        payload = {
            "dataset": dataset.name,
            "split": args.split,
            "model": encoder.name,
            "fingerprint": encoder.fingerprint,
            "compression": result.compression,
            "bytes_per_token": result.bytes_per_token,
            "coverage_at_10": result.coverage,
            "results": result.results,
            "timings": timings,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    if args.plot:
        from ..evaluation.plots import plot_comparison

        plot_comparison(result, dataset.qrels, args.plot, title=f"{dataset.name} ({args.split}), {encoder.name}")
        print(f"wrote {args.plot}")
    return 0


def parse_grid(raw: Sequence[str] | None) -> list[tuple[float, ...]] | None:
    """``--grid 1/0 1/1 0/1/0.5`` as (lambda_pool, lambda_late[, lambda_lex]) tuples; a bad entry is a
    ValueError naming it."""
    if not raw:
        return None
    out = []
    for entry in raw:
        try:
            weights = tuple(float(x) for x in entry.split("/"))
        except ValueError:
            weights = ()
        if len(weights) not in (2, 3):
            raise ValueError(f"--grid entry {entry!r} is not POOL/LATE or POOL/LATE/LEX, e.g. 1/2 or 1/1/0.3")
        out.append(weights)
    return out


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..evaluation import load_beir

    grid = parse_grid(args.grid)  # before a model is loaded
    check_db(args.db)
    dataset = load_beir(args.beir_dir, split=args.split)
    index = open_index(args, then=f"index {args.beir_dir} first")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:  # printed as one line each, not with a source line
        warnings.simplefilter("always", UserWarning)
        result = index.calibrate(
            dataset.queries,
            dataset.qrels,
            grid=grid,
            lex_grid=args.lex_grid,
            folds=args.folds,
            candidates=args.candidates,
            min_gain=args.min_gain,
            seed=args.seed,
            save=args.save,
            show_progress=show_progress(args),
        )
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    took = time.perf_counter() - start
    print(f"{dataset.name} ({args.split}): {result.n_queries} judged queries, index {args.db} ({index.count()} rows)")
    print(result.table())
    print(f"took {took:.1f}s")
    if args.save:
        print(
            f"saved lambda_pool={result.lambda_pool:g}, lambda_late={result.lambda_late:g}, "
            f"lambda_lex={result.lambda_lex:g} in table {args.table!r}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"dataset": dataset.name, "split": args.split, **result.to_dict()}, indent=2)
        )
        print(f"wrote {args.json}")
    return 0
