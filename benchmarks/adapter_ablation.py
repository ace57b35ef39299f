"""Adapter recipe ablation on SciFact (issue 13): one training run per configuration.

Each run is :class:`~smart_retrievers.training.TrainConfig` with ``key=value`` overrides,
trained on ``qrels/train.tsv`` from the cached frozen states, and reported with:

* test nDCG@10 of the adapter kept (SMART over the pooled top-100, as ``adapter_scifact``);
* test nDCG@10 after every epoch (through ``fit_adapter(on_epoch=...)``; reported only,
  never used to choose anything), next to the validation nDCG@10 of that epoch;
* the training wall time and CPU time (``time.process_time``, all threads).

Runs are appended as JSON lines to ``--jsonl`` so several invocations build one table.

Usage::

    python benchmarks/adapter_ablation.py --threads 1 --jsonl /tmp/ablation.jsonl \\
        --run package --run b32:batch_size=32 --run plain:batch_size=32,schedule=constant,warmup=0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch
from adapter_scifact import DEFAULT_DATA, _evaluate, load_states, parse_run

from smart_retrievers import SmartEncoder
from smart_retrievers.training import TrainConfig, fit_adapter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="SciFact BEIR directory")
    parser.add_argument(
        "--run", action="append", required=True, help="NAME[:key=value,...] TrainConfig overrides (repeatable)"
    )
    parser.add_argument("--dim", type=int, default=128, help="adapter dimension r (unless a run sets dim)")
    parser.add_argument("--candidates", type=int, default=100, help="pooled candidates re-scored by SMART at test time")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--cache-dir", help="token-state cache (default: smart_retrievers.training.default_cache_dir())"
    )
    parser.add_argument("--save-adapters", help="write each run's adapter under this directory (one folder per run)")
    parser.add_argument("--jsonl", required=True, help="append one JSON line per run to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    encoder = SmartEncoder.default()
    train, test, docs, train_q, test_q = load_states(encoder, args.data, args.cache_dir)
    for spec in args.run:
        name, overrides = parse_run(spec)
        config = TrainConfig(**{"dim": args.dim, **overrides})
        test_by_epoch: dict[int, float] = {}

        def record_test(epoch: int, adapter, test_by_epoch=test_by_epoch) -> None:
            test_by_epoch[epoch] = _evaluate(test_q, docs, test.qrels, adapter.eval(), args.candidates)[1]["ndcg@10"]
            adapter.train()

        started = time.perf_counter()
        result = fit_adapter(
            train_q, docs, train.qrels, config, base=encoder.base_fingerprint, show_progress=False, on_epoch=record_test
        )
        _, metrics = _evaluate(test_q, docs, test.qrels, result.adapter, args.candidates)
        row = {
            "name": name,
            "overrides": overrides,
            "dim": result.adapter.out_dim,
            "test_ndcg@10": metrics["ndcg@10"],
            "best_epoch": result.best_epoch,
            "train_seconds": result.seconds,
            "train_cpu_seconds": result.cpu_seconds,
            "stopped_early": result.stopped_early,
            "epochs": [
                {**h, "test_ndcg@10": test_by_epoch.get(int(h["epoch"]))} for h in result.history if h["epoch"] > 0
            ],
            "val_ndcg@10_init": result.history[0].get("val_ndcg@10"),
            "run_seconds": time.perf_counter() - started,
            "threads": args.threads,
            "config": {f.name: getattr(config, f.name) for f in fields(config)},
        }
        with open(args.jsonl, "a") as out:
            out.write(json.dumps(row) + "\n")
        curve = " ".join(
            f"{e['epoch']}:{e['test_ndcg@10']:.4f}" + (f"/v{e['val_ndcg@10']:.3f}" if "val_ndcg@10" in e else "")
            for e in row["epochs"]
        )
        print(
            f"{name}: r={row['dim']} test nDCG@10 {metrics['ndcg@10']:.4f} (epoch {result.best_epoch}), "
            f"{result.seconds:.0f}s wall, {result.cpu_seconds:.0f}s CPU | {curve}",
            file=sys.stderr,
            flush=True,
        )
        if args.save_adapters:
            result.adapter.save(Path(args.save_adapters) / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
