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
from .validation import corpus_item

DEFAULT_DB = "./smart_db"
_TRAIN_OPTIONS = (
    "dim",
    "epochs",
    "lr",
    "tau",
    "batch_size",
    "hard_negatives",
    "negative_pool",
    "remine",
    "val_split",
    "loss",
    "schedule",
    "max_minutes",
    "seed",
)
"""The ``train`` options that are :class:`~smart_retrievers.training.TrainConfig` fields."""


def _encoder(args: argparse.Namespace, batch_size: int | None = None):
    """The bundled encoder, or the right one (text or vision-language) for ``--model``;
    ``batch_size`` (default ``--batch-size``) inputs per forward pass."""
    from .encoders import default_encoder, load_encoder

    kwargs = _encoder_options(args, batch_size)
    if args.model:
        return load_encoder(args.model, **kwargs)
    return default_encoder(**kwargs)


def _encoder_options(args: argparse.Namespace, batch_size: int | None = None) -> dict[str, Any]:
    """The encoder keyword arguments the options ask for (batch size, adapter, max length)."""
    kwargs: dict[str, Any] = {"batch_size": batch_size or args.batch_size}
    if getattr(args, "adapter", None):
        kwargs["adapter"] = args.adapter
    if getattr(args, "max_length", None):
        kwargs["max_length"] = args.max_length
    return kwargs


def _read_items(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a BEIR corpus (_id/title/text) or {id, text, metadata} JSON lines."""
    from .evaluation.beir import read_jsonl

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
    from .index import SmartIndex

    if args.ray:
        return _index_with_ray(args)
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


def _check_db(db: str) -> None:
    """Stop unless a local ``--db`` directory exists (opening LanceDB there would create it)."""
    if "://" not in db and not Path(db).is_dir():
        raise SystemExit(f"no index at {db}: the directory does not exist (build one with `smart-retrievers index`)")


def _where(raw: str | None) -> Any:
    """``--where`` as a parsed filter; a bad one raises ValueError naming ``--where``."""
    from .filters import parse_filter

    if not raw:
        return None
    try:
        return parse_filter(json.loads(raw))
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"--where {raw!r} is not a valid filter: {exc}") from None


def _stored_table(args: argparse.Namespace) -> Any:
    """The LanceDB table at ``--db`` / ``--table``, opened without loading a model (never created)."""
    import lancedb

    from .store import CODEC_TABLE_SUFFIX

    _check_db(args.db)
    db = lancedb.connect(args.db)
    names = [n for n in db.table_names() if not n.endswith(CODEC_TABLE_SUFFIX)]
    if args.table not in names:
        raise SystemExit(f"no table {args.table!r} at {args.db} (tables there: {', '.join(names) or 'none'})")
    return db.open_table(args.table)


def _index_with_ray(args: argparse.Namespace) -> int:
    """``index --ray``: encode on Ray Data actors, write one commit (smart_retrievers.distributed)."""
    try:
        from .distributed import index_with_ray
    except ImportError as exc:
        raise SystemExit(f"--ray needs Ray Data: pip install 'smart-retrievers[ray]' ({exc})") from None
    start = time.perf_counter()
    index = index_with_ray(
        args.path,
        args.db,
        model=args.model,
        encoder_options=_encoder_options(args),
        actors=args.actors,
        table=args.table,
        compression=args.compression,
    )
    took = time.perf_counter() - start
    print(
        f"indexed with {args.actors} Ray actor(s) into {args.db} (table {args.table!r}) in {took:.1f}s; {index.count()} rows now"
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .index import SmartIndex

    where = _where(args.where)  # before a model is loaded
    _check_db(args.db)
    index = SmartIndex(args.db, encoder=_encoder(args), table=args.table)
    if index.count() == 0:
        raise SystemExit(f"no rows in table {args.table!r} at {args.db}; run `smart-retrievers index` first")
    try:
        index.store.where_sql(where)  # field types are known now: a value of the wrong type is a --where error
    except ValueError as exc:
        raise ValueError(f"--where {args.where!r}: {exc}") from None
    hits = index.search(args.query, k=args.k, where=where, mode=args.mode, candidates=args.candidates)
    explain = getattr(args, "explain", False)
    if args.json:
        rows = [
            {**h.__dict__, **({"evidence": index.explain(args.query, h).to_dict()} if explain else {})} for h in hits
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for rank, hit in enumerate(hits, 1):
        snippet = hit.text if len(hit.text) <= 100 else hit.text[:97] + "..."
        print(
            f"{rank:>2}. {hit.score:.4f} (pooled {hit.pooled_score:.4f}, late {hit.late_score:.4f})  [{hit.id}] {snippet}"
        )
        if explain:
            print("    " + index.explain(args.query, hit).render().replace("\n", "\n    "))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import lancedb

    from ._version import __version__
    from .layout import TableLayout
    from .store import CODEC_KEY, FINGERPRINT_KEY, load_codec, schema_field_types

    table = _stored_table(args)
    meta = table.schema.metadata or {}
    fingerprint = json.loads(meta.get(FINGERPRINT_KEY.encode(), b"null"))
    codec = load_codec(lancedb.connect(args.db), meta.get(CODEC_KEY.encode()))
    fields = schema_field_types(table.schema, TableLayout.from_schema(table.schema))
    folder = Path(args.db) / f"{args.table}.lance"
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else None
    info = {
        "db": args.db,
        "table": args.table,
        "rows": table.count_rows(),
        "table_version": table.version,
        "storage_bytes": size,
        "dim": (fingerprint or {}).get("dim"),
        "token_dim": (fingerprint or {}).get("token_dim", (fingerprint or {}).get("dim")),
        "compression": codec.describe() if codec else "none",
        "metadata_fields": {k: v for k, v in fields.items() if not k.startswith("_llama_index")},
        "encoder": fingerprint,
        "smart_retrievers_version": __version__,
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    for key, value in info.items():
        shown = f"{value / 1e6:.2f} MB ({value} bytes)" if key == "storage_bytes" and value is not None else value
        print(f"{key + ':':<26}{shown}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from .store import FINGERPRINT_KEY, SmartStore

    where = _where(args.where)
    if args.all and (args.ids or args.ref_ids or where is not None):
        raise ValueError("--all deletes every row; it takes no --ids, --ref-ids or --where")
    if not (args.all or args.ids or args.ref_ids or where is not None):
        raise ValueError("delete needs --ids, --ref-ids or --where (or --all to delete every row)")
    table = _stored_table(args)
    fingerprint = json.loads((table.schema.metadata or {})[FINGERPRINT_KEY.encode()])
    store = SmartStore(args.db, args.table, fingerprint)  # the table's own fingerprint: no model is loaded
    if args.all:
        deleted = store.delete_all()
    else:
        try:
            store.where_sql(where)
        except ValueError as exc:
            raise ValueError(f"--where {args.where!r}: {exc}") from None
        deleted = store.delete(ids=args.ids, ref_ids=args.ref_ids, where=where)
    print(f"deleted {deleted} rows from table {args.table!r} at {args.db}; {store.count()} rows left")
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


def cmd_optimize(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from .index import SmartIndex

    if not Path(args.db).exists():
        raise SystemExit(f"no index at {args.db}")
    index = SmartIndex(
        args.db,
        encoder=_encoder(args),
        table=args.table,
        ann_min_rows=args.ann_min_rows,
        ann_index_type=args.index_type,
    )
    if index.count() == 0:
        raise SystemExit(f"no rows in table {args.table!r} at {args.db}")
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
    from .upgrade import upgrade_table

    if "://" not in args.db and not Path(args.db).exists():
        raise SystemExit(f"no LanceDB database at {args.db}")
    report = upgrade_table(
        args.db,
        args.table,
        _encoder(args),
        text_column=args.text_column,
        vector_column=args.vector_column,
        id_column=args.id_column,
        metadata_column=None if args.no_metadata else args.metadata_column,
        ref_id_column=args.ref_id_column,
        compression=args.compression,
        reencode_vectors=args.reencode_vectors,
        batch_size=args.batch_size,
        show_progress=True,
    )
    checked = "" if report.min_cosine is None else f"; vectors checked (lowest cosine {report.min_cosine:.4f})"
    print(
        f"upgraded table {args.table!r} at {args.db}: {report.rows} rows, {report.backfilled} backfilled, "
        f"{report.caught_up} caught up, pooled vectors from {report.vector_column!r}{checked}; "
        f"{report.bytes_per_row:,.0f} bytes added per row; {report.seconds:.1f}s"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import compare, encode_corpus, load_beir

    if getattr(args, "plot", None):  # before anything is encoded
        from .evaluation.plots import require_matplotlib

        try:
            require_matplotlib()
        except ImportError as exc:
            raise SystemExit(str(exc)) from None
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
    if getattr(args, "plot", None):
        from .evaluation.plots import plot_comparison

        plot_comparison(result, dataset.qrels, args.plot, title=f"{dataset.name} ({args.split}), {encoder.name}")
        print(f"wrote {args.plot}")
    return 0


def _grid(raw: Sequence[str] | None) -> list[tuple[float, float]] | None:
    """``--grid 1/0 1/1 0/1`` as (lambda_pool, lambda_late) pairs; a bad entry is a ValueError naming it."""
    if not raw:
        return None
    out = []
    for entry in raw:
        try:
            pool, late = (float(x) for x in entry.split("/"))
        except ValueError:
            raise ValueError(f"--grid entry {entry!r} is not POOL/LATE, e.g. 1/2") from None
        out.append((pool, late))
    return out


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .evaluation import load_beir
    from .index import SmartIndex

    grid = _grid(args.grid)  # before a model is loaded
    _check_db(args.db)
    dataset = load_beir(args.beir_dir, split=args.split)
    index = SmartIndex(args.db, encoder=_encoder(args), table=args.table)
    if index.count() == 0:
        raise SystemExit(f"no rows in table {args.table!r} at {args.db}; index {args.beir_dir}/corpus.jsonl first")
    start = time.perf_counter()
    result = index.calibrate(
        dataset.queries,
        dataset.qrels,
        grid=grid,
        folds=args.folds,
        candidates=args.candidates,
        min_gain=args.min_gain,
        seed=args.seed,
        save=args.save,
        show_progress=True,
    )
    took = time.perf_counter() - start
    print(f"{dataset.name} ({args.split}): {result.n_queries} judged queries, index {args.db} ({index.count()} rows)")
    print(result.table())
    print(f"took {took:.1f}s")
    if args.save:
        print(f"saved lambda_pool={result.lambda_pool:g}, lambda_late={result.lambda_late:g} in table {args.table!r}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"dataset": dataset.name, "split": args.split, **result.to_dict()}, indent=2)
        )
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
    limit = f" (stopped at the {args.max_minutes}-minute limit)" if result.stopped_early else ""
    print(
        f"saved adapter (r={result.adapter.out_dim}, epoch {result.best_epoch}{val}) to {args.out}; trained in {result.seconds:.1f}s{limit}"
    )
    if args.json:
        summary = {
            "out": str(Path(args.out).resolve()),
            "dim": result.adapter.out_dim,
            "best_epoch": result.best_epoch,
            "best_val_ndcg@10": best.get("val_ndcg@10"),
            "train_seconds": result.seconds,
            "train_cpu_seconds": result.cpu_seconds,
            "stopped_early": result.stopped_early,
            "history": result.history,
            "data": result.data,
        }
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


_HELP = {
    "db": "LanceDB directory (or s3://, gs://, az://, db:// URI) holding the index",
    "table": "table name inside the database",
    "batch_size": "inputs per forward pass when encoding",
    "adapter": "a trained SMART adapter directory (default: none)",
    "k": "number of hits",
    "mode": "rerank: pooled candidates then SMART; exhaustive: SMART over every row; pooled: single-vector only",
    "candidates": "pooled candidates re-scored by SMART",
    "json": "output as JSON",
    "split": "qrels split to evaluate on",
    "lambda_pool": "weight of the pooled cosine",
    "lambda_late": "weight of the late-interaction score",
    "epochs": "training epochs",
    "lr": "learning rate",
    "seed": "random seed",
    "path": "JSONL file: a BEIR corpus or {id, text, metadata} lines",
    "query": "the query text",
    "beir_dir": "BEIR-layout dataset directory (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)",
    "index_type": "LanceDB ANN index type on the pooled vectors (cosine)",
    "folds": "cross-validation folds (queries split at random by --seed)",
}
"""Help for the options defined without one (by ``dest``); :func:`_document` fills them in."""


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default (unless the help already states it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            not action.option_strings
            or action.required
            or action.default is argparse.SUPPRESS
            or "default" in text.lower()
        ):
            return text
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        shown = "none" if action.default is None else "%(default)s"
        return f"{text} (default: {shown})"


def _document(parser: argparse.ArgumentParser) -> None:
    """Fill in :data:`_HELP` and the help formatter on ``parser`` and its subcommands."""
    parser.formatter_class = _HelpFormatter
    for action in parser._actions:
        if action.help is None and action.dest in _HELP:
            action.help = _HELP[action.dest]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _document(sub)


def _model_options(parser: argparse.ArgumentParser) -> None:
    """The encoder options every subcommand takes (see :func:`_encoder`)."""
    parser.add_argument("--model", help="model directory or hub id (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument("--max-length", type=int, help="token limit per input (default: the model's)")


def _common(parser: argparse.ArgumentParser) -> None:
    _model_options(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--adapter", help="a trained SMART adapter directory")


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="smart-retrievers", description="SMART late-interaction retrieval on single-vector embedders."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index a JSONL file (BEIR corpus or {id, text, metadata} lines)")
    p.add_argument("path")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--table", default="smart")
    p.add_argument(
        "--compression",
        help=f"token codec of a new table ('none': float16; default: {DEFAULT_COMPRESSION}); an existing table keeps its own",
    )
    p.add_argument("--ray", action="store_true", help="encode on Ray Data actors (extra [ray]); one commit")
    p.add_argument("--actors", type=int, default=1, help="Ray encoder actors with --ray (default: 1)")
    _common(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search an index")
    p.add_argument("query")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--table", default="smart")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--mode", choices=("rerank", "exhaustive", "pooled"), default="rerank")
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--where", help='metadata filter as JSON, e.g. \'{"year": {"$gte": 2020}}\' (default: no filter)')
    p.add_argument("--json", action="store_true", help="print hits as JSON")
    p.add_argument(
        "--explain", action="store_true", help="show each hit's match evidence (query token -> document span)"
    )
    _common(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("info", help="what an index holds: rows, encoder fingerprint, dims, codec, size on disk")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--table", default="smart")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("delete", help="delete rows by id, source-document id or metadata filter (no model is loaded)")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--table", default="smart")
    p.add_argument("--ids", nargs="+", metavar="ID", help="row ids to delete (default: none)")
    p.add_argument(
        "--ref-ids", nargs="+", metavar="REF_ID", help="delete every row of these source documents (default: none)"
    )
    p.add_argument(
        "--where", help="delete the rows matching this metadata filter (JSON, as search --where; default: none)"
    )
    p.add_argument("--all", action="store_true", help="delete every row (the table and its codec stay)")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("compact", help="rewrite a float16 table's token states into a codec, without re-encoding")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--table", default="smart")
    p.add_argument("--compression", default=DEFAULT_COMPRESSION, help=f"codec preset (default: {DEFAULT_COMPRESSION})")
    _common(p)
    p.set_defaults(func=cmd_compact)

    from .store import ANN_INDEX_TYPES, DEFAULT_ANN_INDEX, DEFAULT_ANN_MIN_ROWS

    p = sub.add_parser("optimize", help="compact the table, drop old versions, build or update the pooled ANN index")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--table", default="smart")
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
    _common(p)
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser(
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
    _common(p)
    p.set_defaults(func=cmd_upgrade)

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
    p.add_argument(
        "--plot", metavar="OUT.png", help="draw nDCG@10, per-query gain and recall@k to a PNG (extra [plot])"
    )
    _common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "calibrate",
        help="choose lambda_pool/lambda_late for an index by k-fold cross-validated nDCG@10 on judged queries",
        description="Grid-search the fusion weights (pooled only, late only and ratios between) on a BEIR-layout "
        "split's queries and qrels against an index holding its corpus (row ids = corpus ids), with k-fold "
        "cross-validation; keeps 1/1 unless calibrating wins under cross-validation.",
    )
    p.add_argument("beir_dir", help="BEIR dataset directory (queries.jsonl, qrels/SPLIT.tsv; corpus.jsonl for the ids)")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--table", default="smart")
    p.add_argument("--split", default="test")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--candidates", type=int, default=100, help="pooled candidates re-scored per query")
    p.add_argument(
        "--grid",
        nargs="+",
        metavar="POOL/LATE",
        help="settings to try, e.g. 1/0 1/1 1/2 0/1 (default: 1/0 1/0.25 1/0.5 1/1 1/2 1/4 0/1)",
    )
    p.add_argument("--min-gain", type=float, default=0.0, help="CV nDCG@10 gain over 1/1 needed to move off 1/1")
    p.add_argument("--seed", type=int, default=0, help="fold shuffle seed")
    p.add_argument(
        "--save", action="store_true", help="store the chosen weights in the table (searches default to them)"
    )
    p.add_argument("--json", help="write the calibration report to this JSON file")
    _common(p)
    p.set_defaults(func=cmd_calibrate)

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
        help="mined negatives per query in each batch (0: in-batch only)",
    )
    p.add_argument(
        "--negative-pool",
        type=int,
        default=defaults.negative_pool,
        metavar="N",
        help="mined non-positives kept per query; each epoch draws K of them",
    )
    p.add_argument(
        "--remine",
        action=argparse.BooleanOptionalAction,
        default=defaults.remine,
        help="re-mine the negatives after each epoch from the adapter's own SMART ranking",
    )
    p.add_argument(
        "--val-split", type=float, default=defaults.val_split, help="fraction of queries held out for per-epoch nDCG@10"
    )
    p.add_argument("--loss", choices=("late", "fused"), default=defaults.loss, help="score the InfoNCE loss is on")
    p.add_argument(
        "--schedule", choices=("constant", "cosine"), default=defaults.schedule, help="learning rate after warmup"
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=defaults.max_minutes,
        help="stop training after this many minutes, keeping the best epoch so far (default: no limit)",
    )
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
    _document(parser)
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
