"""The ``smart-retrievers`` command line: index, search, eval and train."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .codec import DEFAULT_COMPRESSION

DEFAULT_DB = "./smart_db"
_TRAIN_OPTIONS = ("dim", "epochs", "lr", "tau", "batch_size", "hard_negatives", "val_split", "loss", "seed")
"""The ``train`` options that are :class:`~smart_retrievers.training.TrainConfig` fields."""


def _encoder(args: argparse.Namespace, batch_size: int | None = None):
    """The bundled encoder, or the right one (text or vision-language) for ``--model``;
    ``batch_size`` (default ``--batch-size``) inputs per forward pass."""
    from .encoders import default_encoder, load_encoder

    kwargs: dict[str, Any] = {"batch_size": batch_size or args.batch_size}
    if getattr(args, "adapter", None):
        kwargs["adapter"] = args.adapter
    if getattr(args, "max_length", None):
        kwargs["max_length"] = args.max_length
    if args.model:
        return load_encoder(args.model, **kwargs)
    return default_encoder(**kwargs)


def _read_items(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a BEIR corpus (_id/title/text) or {id, text, metadata} JSON lines."""
    from .evaluation.beir import read_jsonl

    seen: dict[str, int] = {}
    try:
        for line_no, row in read_jsonl(path):
            try:
                item = _item(row)
            except (TypeError, ValueError) as exc:  # a line of the wrong shape: path:line, no traceback
                raise SystemExit(f"{path}:{line_no}: {exc}") from None
            if item["id"] in seen:
                raise SystemExit(f"{path}:{line_no}: duplicate id {item['id']!r} (first on line {seen[item['id']]})")
            seen[item["id"]] = line_no
            yield item
    except ValueError as exc:  # malformed line
        raise SystemExit(str(exc)) from None


def _item(row: dict[str, Any]) -> dict[str, Any]:
    """One JSONL object as ``{id, text, metadata}``; TypeError/ValueError name the field at fault."""
    from .validation import check_metadata, check_text

    row_id = row.get("id", row.get("_id"))
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)) or row_id == "":
        raise ValueError(f"each line needs an id (or _id) that is a non-empty string or an integer, got {row_id!r}")
    parts = []
    for name in ("title", "text"):
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            raise TypeError(f'"{name}" must be a string, got {type(value).__name__} {value!r}')
        parts.append(check_text(value or "", what=f'"{name}"'))
    text = " ".join(p for p in parts if p).strip()
    if not text:
        raise ValueError("each line needs an id (or _id) and a non-empty text")
    return {"id": str(row_id), "text": text, "metadata": check_metadata(row.get("metadata"))}


def cmd_index(args: argparse.Namespace) -> int:
    from .index import SmartIndex

    items = list(_read_items(Path(args.path)))
    index = SmartIndex(args.db, encoder=_encoder(args), table=args.table, compression=args.compression)
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


def cmd_search(args: argparse.Namespace) -> int:
    from .index import SmartIndex

    index = SmartIndex(args.db, encoder=_encoder(args), table=args.table)
    if index.count() == 0:
        raise SystemExit(f"no rows in table {args.table!r} at {args.db}; run `smart-retrievers index` first")
    where = json.loads(args.where) if args.where else None
    hits = index.search(args.query, k=args.k, where=where, mode=args.mode, candidates=args.candidates)
    if args.json:
        print(json.dumps([h.__dict__ for h in hits], indent=2))
        return 0
    for rank, hit in enumerate(hits, 1):
        snippet = hit.text if len(hit.text) <= 100 else hit.text[:97] + "..."
        print(
            f"{rank:>2}. {hit.score:.4f} (pooled {hit.pooled_score:.4f}, late {hit.late_score:.4f})  [{hit.id}] {snippet}"
        )
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    from .index import SmartIndex

    if not Path(args.db).exists():
        raise SystemExit(f"no index at {args.db}")
    index = SmartIndex(args.db, encoder=_encoder(args), table=args.table)
    if index.count() == 0:
        raise SystemExit(f"no rows in table {args.table!r} at {args.db}")
    start = time.perf_counter()
    rows = index.recompress(args.compression, show_progress=True)
    codec = index.codec.describe()
    print(
        f"compressed {rows} rows of table {args.table!r} at {args.db} to {codec['preset']!r} "
        f"({codec['bytes_per_token']} bytes per stored token) in {time.perf_counter() - start:.1f}s"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import compare, encode_corpus, load_beir

    dataset = load_beir(args.beir_dir, split=args.split)
    encoder = _encoder(args)
    query_ids = list(dataset.queries)
    start = time.perf_counter()
    doc_ids, docs = encode_corpus(dataset, encoder, show_progress=True)  # image rows through the vision encoder
    encode_docs_s = time.perf_counter() - start
    start = time.perf_counter()
    queries = encoder.encode_queries([dataset.queries[q] for q in query_ids], show_progress=True)
    encode_queries_s = time.perf_counter() - start
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
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .training import TrainConfig, load_training_data, train_adapter

    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(**{name: getattr(args, name) for name in _TRAIN_OPTIONS})
    dataset = load_training_data(args.beir_dir, args.split, skip_unknown=args.skip_unknown)
    encoder = _encoder(args, batch_size=args.encode_batch_size)
    result = train_adapter(
        dataset,
        args.out,
        split=args.split,
        config=config,
        encoder=encoder,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
    )
    best = result.history[result.best_epoch]
    val = f", val nDCG@10 {best['val_ndcg@10']:.4f}" if "val_ndcg@10" in best else ""
    print(
        f"saved adapter (r={result.adapter.out_dim}, epoch {result.best_epoch}{val}) to {args.out}; trained in {result.seconds:.1f}s"
    )
    if args.json:
        summary = {
            "out": str(Path(args.out).resolve()),
            "dim": result.adapter.out_dim,
            "best_epoch": result.best_epoch,
            "best_val_ndcg@10": best.get("val_ndcg@10"),
            "train_seconds": result.seconds,
            "history": result.history,
            "data": result.data,
        }
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


def _model_options(parser: argparse.ArgumentParser) -> None:
    """The encoder options every subcommand takes (see :func:`_encoder`)."""
    parser.add_argument("--model", help="model directory or hub id (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument("--max-length", type=int, help="token limit per input (default: the model's)")


def _common(parser: argparse.ArgumentParser) -> None:
    _model_options(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--adapter", help="a trained SMART adapter directory")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smart-retrievers", description="SMART late-interaction retrieval on single-vector embedders."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index a JSONL file (BEIR corpus or {id, text, metadata} lines)")
    p.add_argument("path")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--table", default="smart")
    p.add_argument(
        "--compression",
        help=f"token codec of a new table ('none': float16; default: {DEFAULT_COMPRESSION}); an existing table keeps its own",
    )
    _common(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search an index")
    p.add_argument("query")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--table", default="smart")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--mode", choices=("rerank", "exhaustive", "pooled"), default="rerank")
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--where", help='metadata filter as JSON, e.g. \'{"year": {"$gte": 2020}}\'')
    p.add_argument("--json", action="store_true", help="print hits as JSON")
    _common(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("compact", help="rewrite a float16 table's token states into a codec, without re-encoding")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--table", default="smart")
    p.add_argument("--compression", default=DEFAULT_COMPRESSION, help=f"codec preset (default: {DEFAULT_COMPRESSION})")
    _common(p)
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser(
        "eval", help="single-vector vs SMART on a BEIR-layout dataset (corpus rows may carry an `image`)"
    )
    p.add_argument("beir_dir")
    p.add_argument("--split", default="test")
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--lambda-pool", type=float, default=1.0)
    p.add_argument("--lambda-late", type=float, default=1.0)
    p.add_argument(
        "--compression",
        default=DEFAULT_COMPRESSION,
        help=f"token codec preset, scored as an index with it would ('none': float16; default: {DEFAULT_COMPRESSION})",
    )
    p.add_argument("--json", help="write results to this JSON file")
    _common(p)
    p.set_defaults(func=cmd_eval)

    from .training import TrainConfig, default_cache_dir

    defaults = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train a SMART adapter on a BEIR-layout split (frozen backbone, cached states)",
        description="Train a SMART adapter (LayerNorm + Linear on frozen token states) with InfoNCE on a BEIR-layout split.",
    )
    p.add_argument("beir_dir", help="BEIR dataset directory (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)")
    p.add_argument("--out", required=True, help="directory to write the adapter to")
    p.add_argument("--split", default="train", help="qrels split to train on (default: train)")
    p.add_argument("--dim", type=int, help="adapted token dimension r (default: the model's hidden size)")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--tau", type=float, default=defaults.tau, help="InfoNCE temperature")
    p.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="(query, positive) pairs per training step"
    )
    p.add_argument(
        "--hard-negatives",
        type=int,
        default=defaults.hard_negatives,
        metavar="K",
        help="mined negatives per query (0: in-batch only)",
    )
    p.add_argument(
        "--val-split", type=float, default=defaults.val_split, help="fraction of queries held out for per-epoch nDCG@10"
    )
    p.add_argument("--loss", choices=("late", "fused"), default=defaults.loss, help="score the InfoNCE loss is on")
    p.add_argument("--seed", type=int, default=defaults.seed)
    _model_options(p)
    p.add_argument("--encode-batch-size", type=int, default=32, help="inputs per forward pass when encoding")
    p.add_argument("--cache-dir", help=f"where frozen token states are cached (default: {default_cache_dir()})")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the token-state cache")
    p.add_argument(
        "--skip-unknown", action="store_true", help="drop judgements on unknown query/doc ids instead of stopping"
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", help="also write the training summary to this JSON file")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``smart-retrievers`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:  # bad input: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
