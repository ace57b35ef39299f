"""SciFact figures for the SMART adapter (issue 6).

Trains adapters on ``qrels/train.tsv`` and evaluates on ``qrels/test.tsv`` (nDCG@10,
Recall@100, MRR@10) for:

* single-vector (pooled cosine);
* SMART inference-only (pooled top-``candidates``, then ``cos + late``, as
  ``SmartIndex.search`` ranks by default);
* SMART with a trained adapter at each ``--dims`` (default 384 and 128);
* SMART with each run's untrained starting point (identity for r=384, the PCA
  projection for r<384: storage compression without training).

The corpus and the queries are encoded once by the frozen bundled all-MiniLM-L6-v2 and
cached on disk (:func:`smart_retrievers.training.encode_states`); adapters are applied
to the cached L2-normalised states, which equals applying them inside the encoder (the
adapter normalises its input first; only fp16 rounding differs). Also reported: training
wall time per r, and token storage (fp16 values) per document for each r.

Usage::

    python benchmarks/adapter_scifact.py --threads 1 --json /tmp/adapter_scifact.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import typing
from pathlib import Path
from typing import Any, Literal

import torch

from smart_retrievers import SmartEncoder, __version__
from smart_retrievers.adapter import SmartAdapter
from smart_retrievers.evaluation import BeirDataset, evaluate_ranking, load_beir
from smart_retrievers.training import (
    TokenStates,
    TrainConfig,
    encode_states,
    fit_adapter,
    load_training_data,
    smart_rankings,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "scifact"


def _evaluate(
    queries: TokenStates, docs: TokenStates, qrels: dict, adapter: SmartAdapter | None, candidates: int
) -> tuple[dict, dict]:
    """(single-vector metrics, SMART metrics) on the test queries."""
    single, smart = smart_rankings(queries, docs, adapter, candidates=candidates)
    return evaluate_ranking(single, qrels), evaluate_ranking(smart, qrels)


def _value_type(hint: Any) -> type:
    """The type a TrainConfig field's value is parsed as: ``int | None`` → int, a Literal → str."""
    if typing.get_origin(hint) is Literal:
        return str
    options = [a for a in typing.get_args(hint) if a is not type(None)]
    return _value_type(options[0]) if options else hint


def parse_run(spec: str) -> tuple[str, dict]:
    """``name[:key=value,...]`` → (name, TrainConfig overrides), each value parsed as its field's type."""
    name, _, settings = spec.partition(":")
    hints = typing.get_type_hints(TrainConfig)
    overrides: dict = {}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        if key not in hints:
            raise SystemExit(f"unknown TrainConfig field {key!r} in {spec!r}")
        kind = _value_type(hints[key])
        if value == "None":
            overrides[key] = None
        elif kind is bool:
            overrides[key] = value.lower() in ("1", "true", "yes")
        else:
            overrides[key] = kind(value)
    return name, overrides


def load_states(
    encoder: SmartEncoder, data: str | Path, cache_dir: str | None = None
) -> tuple[BeirDataset, BeirDataset, TokenStates, TokenStates, TokenStates]:
    """(train split, test split, doc states, train query states, test query states), encoded once and cached."""
    train = load_training_data(data, "train")
    test = load_beir(data, "test")

    def states(ids: list[str], texts: list[str], kind: str) -> TokenStates:
        return encode_states(encoder, ids, texts, kind=kind, cache_dir=cache_dir)

    docs = states(list(train.corpus), [train.doc_text(d) for d in train.corpus], "document")
    train_q = states(list(train.queries), list(train.queries.values()), "query")
    test_q = states(list(test.queries), list(test.queries.values()), "query")
    return train, test, docs, train_q, test_q


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="SciFact BEIR directory")
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 128], help="adapter dimensions r to train")
    parser.add_argument(
        "--set",
        default="",
        metavar="KEY=VALUE,...",
        help="TrainConfig overrides (default: the package defaults), e.g. epochs=3,val_split=0",
    )
    parser.add_argument("--candidates", type=int, default=100, help="pooled candidates re-scored by SMART at test time")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--cache-dir", help="token-state cache (default: smart_retrievers.training.default_cache_dir())"
    )
    parser.add_argument("--save-adapters", help="write each trained adapter under this directory (r384/, r128/)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    encoder = SmartEncoder.default()
    t0 = time.perf_counter()
    train, test, docs, train_q, test_q = load_states(encoder, args.data, args.cache_dir)
    encode_s = time.perf_counter() - t0
    tokens_per_doc = float(docs.offsets[-1]) / len(docs)
    print(
        f"states ready in {encode_s:.1f}s: {len(docs)} docs ({tokens_per_doc:.1f} tokens/doc), {len(train_q)} train / {len(test_q)} test queries",
        file=sys.stderr,
    )

    results: dict[str, dict] = {}
    single, smart = _evaluate(test_q, docs, test.qrels, None, args.candidates)
    results["single-vector"] = single
    results["smart (inference-only)"] = {
        **smart,
        "token_dim": docs.dim,
        "token_bytes_per_doc": tokens_per_doc * docs.dim * 2,
    }
    print(f"single {single['ndcg@10']:.4f}  smart {smart['ndcg@10']:.4f}", file=sys.stderr)

    for dim in args.dims:
        config = TrainConfig(**{"dim": dim, **parse_run(f"run:{args.set}")[1]})
        trained = fit_adapter(train_q, docs, train.qrels, config, base=encoder.base_fingerprint)
        _, metrics = _evaluate(test_q, docs, test.qrels, trained.adapter, args.candidates)
        results[f"smart + adapter r={dim}"] = {
            **metrics,
            "token_dim": dim,
            "token_bytes_per_doc": tokens_per_doc * dim * 2,
            "train_seconds": trained.seconds,
            "train_cpu_seconds": trained.cpu_seconds,
            "best_epoch": trained.best_epoch,
            "history": trained.history,
        }
        print(
            f"adapter r={dim} {metrics['ndcg@10']:.4f} (epoch {trained.best_epoch}, {trained.seconds:.0f}s wall, {trained.cpu_seconds:.0f}s CPU)",
            file=sys.stderr,
        )
        # the starting point alone (identity for r=H; for r<H the PCA projection: compression without training)
        start = "identity" if dim == docs.dim else "pca"
        _, metrics = _evaluate(test_q, docs, test.qrels, trained.initial, args.candidates)
        results[f"smart + {start} r={dim} (untrained)"] = {
            **metrics,
            "token_dim": dim,
            "token_bytes_per_doc": tokens_per_doc * dim * 2,
        }
        print(f"{start} r={dim} (untrained) {metrics['ndcg@10']:.4f}", file=sys.stderr)
        if args.save_adapters:
            trained.adapter.save(Path(args.save_adapters) / f"r{dim}")

    payload = {
        "dataset": "scifact",
        "train": {"queries": len(train_q), "pairs": sum(1 for j in train.qrels.values() for r in j.values() if r > 0)},
        "test_queries": len(test_q),
        "docs": len(docs),
        "tokens_per_doc": tokens_per_doc,
        "model": encoder.name,
        "candidates": args.candidates,
        "config": {k: v for k, v in vars(args).items() if k not in ("json", "save_adapters", "cache_dir")},
        "results": results,
        "encode_or_load_states_seconds": encode_s,
        "total_seconds": time.perf_counter() - started,
        "machine": {
            "cpus_used": args.threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "package": __version__,
        },
    }
    text = json.dumps(payload, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
