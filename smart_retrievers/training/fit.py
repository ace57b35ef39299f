"""The training loop: fit a :class:`~smart_retrievers.adapter.SmartAdapter` on cached frozen states.

* loss: InfoNCE (temperature ``tau``, default 0.03) on the SMART late score
  ``mean_q max_d cos`` (or on the fused score ``cos(pooled) + late``) of each query
  against every document in the batch (:mod:`.loss`): its positive, the other queries'
  positives and ``hard_negatives`` per query, drawn afresh each epoch from the query's
  ``negative_pool`` mined non-positives (the top pooled-score ones; with ``remine``,
  re-mined after each epoch from the current adapter's SMART ranking, ANCE-style).
  Other positives of the same query are masked out.
* AdamW, a constant rate (or cosine decay) after an optional linear warmup, gradient
  clipping, a fixed seed; ``max_minutes`` stops early, keeping the best epoch so far.
* after each epoch, nDCG@10 of held-out training queries (SMART over their pooled top
  candidates, :func:`smart_rankings`); the best epoch is kept, and epoch 0 (the
  initialisation, which reproduces inference-only SMART) competes too.

Since the adapter L2-normalises its input first, training on the cached normalised
states is the same as applying the adapter to the encoder's raw hidden states.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..adapter import SmartAdapter
from ..encoders import default_encoder
from ..evaluation.beir import BeirDataset
from .config import TrainConfig, TrainResult
from .data import load_training_data
from .rankings import validation_ndcg
from .states import TokenStates, encode_states
from .task import Task, batch_scores, batches, build_task, draw_negatives, mine_negatives, positive_rows, split_queries

__all__ = ["fit_adapter", "train_adapter", "training_loss"]


@torch.no_grad()
def training_loss(
    adapter: SmartAdapter,
    queries: TokenStates,
    docs: TokenStates,
    qrels: Mapping[str, Mapping[str, int]],
    config: TrainConfig | None = None,
) -> tuple[float, float]:
    """Mean InfoNCE loss and top-1 accuracy of ``adapter`` over every (query, positive) pair.

    Batches are formed as in training, but in pair order and with each query's top
    ``hard_negatives`` pooled-score negatives (no random draw), so the numbers before and
    after :func:`fit_adapter` are comparable.
    """
    config = config or TrainConfig()
    task = build_task(queries, docs, qrels, config, sorted(positive_rows(queries, docs, qrels)))
    negatives = {q: pool[: config.hard_negatives] for q, pool in task.negatives.items()}
    total_loss = correct = 0.0
    for batch in batches(task, negatives, range(len(task.pairs)), config.batch_size):
        logits = batch_scores(adapter, task, batch, config)
        total_loss += float(F.cross_entropy(logits, batch.target, reduction="sum"))
        correct += float((logits.argmax(dim=1) == batch.target).sum())
    return total_loss / len(task.pairs), correct / len(task.pairs)


def _new_adapter(
    task: Task, config: TrainConfig, base: Mapping[str, Any] | None, rng: np.random.Generator
) -> SmartAdapter:
    dim = config.dim or task.docs.dim
    if dim > task.docs.dim:
        raise ValueError(f"adapter dim {dim} exceeds the model's hidden size {task.docs.dim}")
    adapter = SmartAdapter(task.docs.dim, dim, base=base)
    if dim < task.docs.dim:
        rows = sorted({d for _, d in task.pairs} | {d for negs in task.negatives.values() for d in negs})
        flat = torch.from_numpy(np.asarray(task.docs.tokens.take(rows).values, dtype=np.float32))
        if len(flat) > config.pca_tokens:
            flat = flat[torch.from_numpy(rng.choice(len(flat), config.pca_tokens, replace=False))]
        adapter.init_pca(flat)
    return adapter


def _lr_lambda(total: int, warmup: float, schedule: str):
    warm = max(1, round(warmup * total)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def fit_adapter(
    queries: TokenStates,
    docs: TokenStates,
    qrels: Mapping[str, Mapping[str, int]],
    config: TrainConfig | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    show_progress: bool = True,
    on_epoch: Callable[[int, SmartAdapter], Any] | None = None,
) -> TrainResult:
    """Train a :class:`SmartAdapter` on cached frozen states.

    Args:
        queries / docs: frozen states (see :func:`encode_states`); every query and doc
            id in ``qrels`` must be there.
        qrels: query id → {doc id: relevance}; relevance > 0 marks a positive.
        config: hyper-parameters (:class:`TrainConfig`).
        base: the encoder's ``base_fingerprint``, recorded in the adapter.
        show_progress: a tqdm bar with the running loss, and one line per epoch.
        on_epoch: called after each epoch with its number and the adapter as trained so
            far (e.g. to log a metric; it must not change the adapter). Its time is not
            counted as training time.

    Raises:
        TrainingDataError: no positives, ids without states, too few queries.
    """
    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    positives = positive_rows(queries, docs, qrels)
    train_rows, val_rows = split_queries(positives, config.val_split, rng)
    task = build_task(queries, docs, qrels, config, train_rows)
    adapter = _new_adapter(task, config, base, rng)
    initial = copy.deepcopy(adapter).eval()
    adapter.train()
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(task.pairs) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(steps_per_epoch * config.epochs, config.warmup, config.schedule)
    )
    train_positives = {q: task.positives[q] for q in task.negatives}

    start, cpu_start, hook_seconds, hook_cpu = time.perf_counter(), time.process_time(), 0.0, 0.0
    deadline = None if config.max_minutes is None else start + 60 * config.max_minutes
    history: list[dict[str, float]] = [{"epoch": 0, "seconds": 0.0, "cpu_seconds": 0.0}]
    if val_rows:
        history[0]["val_ndcg@10"] = validation_ndcg(
            adapter, task.queries, task.docs, [task.queries.ids[q] for q in val_rows], qrels, config.val_candidates
        )
    best_epoch, best_state = 0, {k: v.clone() for k, v in adapter.state_dict().items()}
    log = tqdm.write if show_progress else (lambda _msg: None)
    if val_rows:
        log(f"epoch 0 (init): val nDCG@10 {history[0]['val_ndcg@10']:.4f} on {len(val_rows)} held-out queries")
    stopped_early = False
    with tqdm(
        total=steps_per_epoch * config.epochs, desc="Training adapter", unit="step", disable=not show_progress
    ) as bar:
        for epoch in range(1, config.epochs + 1):
            total_loss, seen, correct, steps = 0.0, 0, 0, 0
            negatives = draw_negatives(task.negatives, config.hard_negatives, rng)
            for batch in batches(task, negatives, rng.permutation(len(task.pairs)).tolist(), config.batch_size):
                logits = batch_scores(adapter, task, batch, config)
                loss = F.cross_entropy(logits, batch.target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(adapter.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                total_loss += loss.item() * len(batch.target)
                seen += len(batch.target)
                steps += 1
                correct += int((logits.detach().argmax(dim=1) == batch.target).sum())
                bar.set_postfix(epoch=epoch, loss=f"{total_loss / seen:.4f}")
                bar.update()
                if deadline is not None and time.perf_counter() - hook_seconds > deadline:
                    stopped_early = epoch < config.epochs or steps < steps_per_epoch
                    break
            record = {"epoch": epoch, "steps": steps, "train_loss": total_loss / seen, "train_accuracy": correct / seen}
            message = (
                f"epoch {epoch}: train loss {record['train_loss']:.4f}, train accuracy {record['train_accuracy']:.3f}"
            )
            if stopped_early:
                message += f" ({steps} of {steps_per_epoch} steps: stopped at the {config.max_minutes} minute limit)"
            if val_rows:
                record["val_ndcg@10"] = validation_ndcg(
                    adapter,
                    task.queries,
                    task.docs,
                    [task.queries.ids[q] for q in val_rows],
                    qrels,
                    config.val_candidates,
                )
                message += f", val nDCG@10 {record['val_ndcg@10']:.4f}"
                if record["val_ndcg@10"] > history[best_epoch]["val_ndcg@10"]:
                    best_epoch, best_state = epoch, {k: v.clone() for k, v in adapter.state_dict().items()}
            else:
                best_epoch, best_state = epoch, {k: v.clone() for k, v in adapter.state_dict().items()}
            if config.remine and epoch < config.epochs and not stopped_early:
                task.negatives = mine_negatives(
                    queries, docs, train_positives, config.negative_pool, adapter, config.val_candidates
                )
            record["seconds"] = time.perf_counter() - start - hook_seconds
            record["cpu_seconds"] = time.process_time() - cpu_start - hook_cpu
            history.append(record)
            log(message)
            if on_epoch is not None:
                hook_start, hook_cpu_start = time.perf_counter(), time.process_time()
                on_epoch(epoch, adapter)
                hook_seconds += time.perf_counter() - hook_start
                hook_cpu += time.process_time() - hook_cpu_start
            if stopped_early:
                break
    adapter.load_state_dict(best_state)
    seconds = time.perf_counter() - start - hook_seconds
    cpu_seconds = time.process_time() - cpu_start - hook_cpu
    data = {
        "train_queries": len(train_rows),
        "val_queries": len(val_rows),
        "pairs": len(task.pairs),
        "docs": len(docs),
    }
    adapter.info = {
        "hyperparameters": asdict(config),
        "data": data,
        "history": history,
        "best_epoch": best_epoch,
        "train_seconds": seconds,
        "stopped_early": stopped_early,
    }
    return TrainResult(
        adapter=adapter.eval(),
        history=history,
        best_epoch=best_epoch,
        seconds=seconds,
        initial=initial,
        data=data,
        stopped_early=stopped_early,
        cpu_seconds=cpu_seconds,
    )


def train_adapter(
    data: str | Path | BeirDataset,
    out_dir: str | Path | None = None,
    *,
    split: str = "train",
    config: TrainConfig | None = None,
    encoder: Any = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    skip_unknown: bool = False,
    show_progress: bool = True,
) -> TrainResult:
    """Train an adapter on a BEIR-layout split and save it to ``out_dir`` (when given).

    The corpus and the split's queries are encoded once by the frozen ``encoder``
    (the bundled all-MiniLM-L6-v2 by default) and cached under ``cache_dir``; then
    :func:`fit_adapter` trains. Load the result with ``load_encoder(..., adapter=out_dir)``.

    Args:
        data: a BEIR dataset directory (loaded with :func:`load_training_data`, using
            ``split`` and ``skip_unknown``) or an already loaded :class:`BeirDataset`.
        out_dir: where to save the adapter (None: only return it).
        split: the qrels split to train on (recorded in the adapter's config).
        config: hyper-parameters (:class:`TrainConfig`).
        encoder: a frozen encoder without adapter (:func:`smart_retrievers.encoders.load_encoder`).
        cache_dir / use_cache: the token-state cache (see :func:`encode_states`).
        skip_unknown: drop judgements on unknown ids instead of raising.
        show_progress: progress bars and per-epoch lines.

    Raises:
        FileNotFoundError: missing dataset files or split.
        TrainingDataError: empty or inconsistent qrels.
    """
    dataset = data if isinstance(data, BeirDataset) else load_training_data(data, split, skip_unknown=skip_unknown)
    encoder = encoder or default_encoder()
    doc_ids = list(dataset.corpus)
    start = time.perf_counter()
    docs = encode_states(
        encoder,
        doc_ids,
        [dataset.doc_text(d) for d in doc_ids],
        kind="document",
        cache_dir=cache_dir,
        use_cache=use_cache,
        show_progress=show_progress,
    )
    query_ids = list(dataset.queries)
    queries = encode_states(
        encoder,
        query_ids,
        [dataset.queries[q] for q in query_ids],
        kind="query",
        cache_dir=cache_dir,
        use_cache=use_cache,
        show_progress=show_progress,
    )
    encode_seconds = time.perf_counter() - start
    result = fit_adapter(
        queries, docs, dataset.qrels, config, base=encoder.base_fingerprint, show_progress=show_progress
    )
    result.data.update({"dataset": dataset.name, "split": split, "encode_seconds": encode_seconds})
    result.adapter.info["data"] = result.data
    if out_dir is not None:
        result.adapter.save(out_dir)
    return result
