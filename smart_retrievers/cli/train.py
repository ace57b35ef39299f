"""``smart-retrievers train``: a SMART adapter on a BEIR-layout split (frozen backbone, cached states)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import load_model, model_options, progress_options, show_progress

TRAIN_OPTIONS = (
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


def register(commands: argparse._SubParsersAction) -> None:
    from ..training import TrainConfig, default_cache_dir

    defaults = TrainConfig()
    p = commands.add_parser(
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
    model_options(p)
    p.add_argument("--encode-batch-size", type=int, default=32, help="inputs per forward pass when encoding")
    p.add_argument("--cache-dir", help=f"where frozen token states are cached (default: {default_cache_dir()})")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the token-state cache")
    p.add_argument(
        "--skip-unknown", action="store_true", help="drop judgements on unknown query/doc ids instead of stopping"
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", help="also write the training summary to this JSON file")
    progress_options(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..training import TrainConfig, load_training_data, train_adapter

    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(**{name: getattr(args, name) for name in TRAIN_OPTIONS})
    dataset = load_training_data(args.beir_dir, args.split, skip_unknown=args.skip_unknown)
    encoder = load_model(args, batch_size=args.encode_batch_size)
    result = train_adapter(
        dataset,
        args.out,
        split=args.split,
        config=config,
        encoder=encoder,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        show_progress=show_progress(args),
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
