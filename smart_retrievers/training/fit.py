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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..adapter import SmartAdapter
from ..encoders import default_encoder
from ..evaluation.beir import BeirDataset
from ..evaluation.metrics import ndcg_at_k
from ..scoring import PackedTokens, rerank_candidates
from .data import TrainingDataError, load_training_data
from .loss import Batch, adapt_tokens, batch_logits, make_batches
from .states import TokenStates, encode_states

__all__ = ["TrainConfig", "TrainResult", "fit_adapter", "smart_rankings", "train_adapter", "training_loss"]


@dataclass
class TrainConfig:
    """Hyper-parameters of adapter training.

    Attributes:
        dim: adapted token dimension r (None: the model's hidden size H). r < H starts
            from the PCA basis, r == H from the identity.
        epochs: passes over the (query, positive) pairs.
        lr: peak AdamW learning rate.
        tau: InfoNCE temperature.
        batch_size: (query, positive) pairs per step; every document of the batch is a
            candidate for every query.
        hard_negatives: mined negatives per query in each batch (0: in-batch negatives only).
        negative_pool: mined non-positives kept per query (>= hard_negatives); each epoch
            draws ``hard_negatives`` of them at random (equal: always the same ones).
        remine: after each epoch, re-mine every query's pool from the SMART ranking of
            the adapter being trained (ANCE-style) instead of keeping the pooled-score one.
        val_split: fraction of training queries held out for per-epoch nDCG@10
            (0: no validation, the last epoch is kept).
        loss: "late" (InfoNCE on the late score) or "fused" (on pooled cos + late).
        schedule: "constant" learning rate after the warmup, or "cosine" decay to 0.
        warmup: fraction of steps with linear learning-rate warmup.
        weight_decay: AdamW weight decay.
        max_grad_norm: gradient-norm clipping.
        max_minutes: wall-clock limit of the training loop (None: none); when reached,
            the current epoch stops after its step, is validated, and the best epoch so
            far is kept.
        seed: seeds the validation split, the shuffling, the negative draws and torch.
        val_candidates: pooled candidates re-scored by SMART per query, for validation
            and re-mining.
        pca_tokens: token states sampled for the PCA initialisation (r < H).
    """

    dim: int | None = None
    epochs: int = 10
    lr: float = 1e-3
    tau: float = 0.03
    batch_size: int = 32
    hard_negatives: int = 3
    negative_pool: int = 10
    remine: bool = False
    val_split: float = 0.2
    loss: Literal["late", "fused"] = "late"
    schedule: Literal["constant", "cosine"] = "constant"
    warmup: float = 0.0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_minutes: float | None = None
    seed: int = 0
    val_candidates: int = 50
    pca_tokens: int = 200_000

    def __post_init__(self) -> None:
        checks = {
            "epochs >= 1": self.epochs >= 1,
            "lr > 0": self.lr > 0,
            "tau > 0": self.tau > 0,
            "batch_size >= 2": self.batch_size >= 2,
            "hard_negatives >= 0": self.hard_negatives >= 0,
            "negative_pool >= hard_negatives": self.negative_pool >= self.hard_negatives,
            "0 <= val_split < 1": 0 <= self.val_split < 1,
            "loss in ('late', 'fused')": self.loss in ("late", "fused"),
            "schedule in ('constant', 'cosine')": self.schedule in ("constant", "cosine"),
            "0 <= warmup < 1": 0 <= self.warmup < 1,
            "max_grad_norm > 0": self.max_grad_norm > 0,
            "max_minutes is None or max_minutes > 0": self.max_minutes is None or self.max_minutes > 0,
            "val_candidates >= 10": self.val_candidates >= 10,
            "dim is None or dim >= 1": self.dim is None or self.dim >= 1,
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid TrainConfig ({', '.join(failed)}): {self}")


@dataclass
class TrainResult:
    """What :func:`fit_adapter` returns.

    Attributes:
        adapter: the adapter of the best epoch (in eval mode).
        history: one dict per epoch; epoch 0 is the initialisation. Keys: ``epoch``,
            ``steps`` (optimizer steps of the epoch), ``train_loss`` and ``train_accuracy``
            (running means over the epoch's steps), ``val_ndcg@10`` (when validating),
            ``seconds`` and ``cpu_seconds`` (wall and process CPU time since the start).
        best_epoch: the epoch kept (by validation nDCG@10, else the last).
        seconds: training wall time (states already encoded).
        initial: the adapter before training (identity, or PCA for r < H), to compare with.
        data: sizes of what was trained on.
        stopped_early: ``max_minutes`` ended training before the last epoch's last step.
        cpu_seconds: training CPU time of this process (all threads).
    """

    adapter: SmartAdapter
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float
    initial: SmartAdapter
    data: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    cpu_seconds: float = 0.0


# ---- queries, positives and mined negatives, as state rows ----------------------


@dataclass
class _Task:
    """The training queries, their positives and negatives, all as state rows."""

    queries: TokenStates
    docs: TokenStates
    positives: dict[int, set[int]]  # query row -> positive doc rows
    pairs: list[tuple[int, int]]
    negatives: dict[int, list[int]]  # training query row -> its pool of mined negatives, best first


def _positive_rows(
    queries: TokenStates, docs: TokenStates, qrels: Mapping[str, Mapping[str, int]]
) -> dict[int, set[int]]:
    missing_q = [qid for qid in qrels if qid not in queries.row]
    missing_d = sorted({d for judged in qrels.values() for d in judged if d not in docs.row})
    if missing_q or missing_d:
        raise TrainingDataError(
            f"inconsistent qrels: {len(missing_q)} query ids without states (e.g. {missing_q[:5]}) and "
            f"{len(missing_d)} doc ids without states (e.g. {missing_d[:5]})"
        )
    positives = {
        queries.row[qid]: {docs.row[d] for d, rel in judged.items() if rel > 0} for qid, judged in qrels.items()
    }
    positives = {q: rows for q, rows in positives.items() if rows}
    if not positives:
        raise TrainingDataError("qrels hold no positive (relevance > 0) judgement")
    return positives


def _top_pooled(queries: TokenStates, docs: TokenStates, query_rows: Sequence[int], k: int) -> torch.Tensor:
    """Doc rows of each query's top-k pooled cosines (len(query_rows), k)."""
    d_pooled = torch.from_numpy(docs.pooled)
    k = min(k, len(docs))
    out = []
    for start in range(0, len(query_rows), 1024):
        q = torch.from_numpy(queries.pooled[list(query_rows[start : start + 1024])])
        out.append(torch.topk(q @ d_pooled.T, k, dim=1).indices)
    return torch.cat(out) if out else torch.empty(0, k, dtype=torch.long)


def _mine_negatives(
    queries: TokenStates,
    docs: TokenStates,
    positives: Mapping[int, set[int]],
    k: int,
    adapter: SmartAdapter | None = None,
    candidates: int = 50,
) -> dict[int, list[int]]:
    """The top-k non-positive docs of each query: by pooled score, or (``adapter`` given)
    by the SMART ranking through ``adapter`` of the pooled top-``candidates``."""
    if k == 0:
        return {q: [] for q in positives}
    rows = sorted(positives)
    if adapter is None:
        most_positives = max(len(p) for p in positives.values())
        top = _top_pooled(queries, docs, rows, k + most_positives).tolist()
    else:
        query_ids = [queries.ids[q] for q in rows]
        _, ranking = smart_rankings(queries, docs, adapter, query_ids=query_ids, candidates=candidates)
        top = [[docs.row[d] for d in ranking[qid]] for qid in query_ids]
    return {q: [d for d in ranked if d not in positives[q]][:k] for q, ranked in zip(rows, top)}


def _draw_negatives(pools: Mapping[int, list[int]], k: int, rng: np.random.Generator) -> dict[int, list[int]]:
    """``k`` negatives of each query's pool, drawn without replacement (the whole pool when it has <= k)."""
    return {q: [pool[i] for i in np.sort(rng.permutation(len(pool))[:k])] for q, pool in pools.items()}


def _task(
    queries: TokenStates,
    docs: TokenStates,
    qrels: Mapping[str, Mapping[str, int]],
    config: TrainConfig,
    train_rows: Sequence[int],
) -> _Task:
    if queries.dim != docs.dim:
        raise ValueError(f"query states have dim {queries.dim} but doc states {docs.dim}")
    positives = _positive_rows(queries, docs, qrels)
    train_pos = {q: positives[q] for q in train_rows}
    pairs = [(q, d) for q in sorted(train_pos) for d in sorted(train_pos[q])]
    return _Task(queries, docs, positives, pairs, _mine_negatives(queries, docs, train_pos, config.negative_pool))


def _split_queries(
    positives: Mapping[int, set[int]], val_split: float, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    rows = sorted(positives)
    rng.shuffle(rows)
    n_val = max(1, round(val_split * len(rows))) if val_split > 0 else 0
    if len(rows) - n_val < 2:
        raise TrainingDataError(
            f"{len(rows)} queries with a positive judgement leave {len(rows) - n_val} for training "
            f"after a {val_split:.0%} validation split; need at least 2"
        )
    return sorted(rows[n_val:]), sorted(rows[:n_val])


def _batches(task: _Task, negatives: Mapping[int, Sequence[int]], order: Sequence[int], batch_size: int) -> list[Batch]:
    return make_batches(task.pairs, task.positives, negatives, order, batch_size)


def _logits(adapter: SmartAdapter, task: _Task, batch: Batch, config: TrainConfig) -> torch.Tensor:
    return batch_logits(adapter, task.queries, task.docs, batch, tau=config.tau, fused=config.loss == "fused")


# ---- rankings ----------------------------------------------------------------


@torch.no_grad()
def _adapt(tokens: PackedTokens, adapter: SmartAdapter | None) -> PackedTokens:
    """``tokens`` through ``adapter`` as float16, as an index would store them (as they are, when None)."""
    return tokens if adapter is None else adapt_tokens(adapter, tokens, dtype=torch.float16)


def smart_rankings(
    queries: TokenStates,
    docs: TokenStates,
    adapter: SmartAdapter | None = None,
    *,
    query_ids: Sequence[str] | None = None,
    candidates: int = 100,
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
    show_progress: bool = False,
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Single-vector and SMART rankings from cached states, as :class:`SmartIndex` "rerank" ranks.

    Each query's pooled top-``candidates`` documents are re-scored with
    ``lambda_pool * cos(pooled) + lambda_late * late`` on token states passed through
    ``adapter`` (as stored, when None); queries and documents use the same adapter.
    Only the documents some query has among its candidates are adapted.

    Returns:
        (pooled ranking, SMART ranking): query id → the candidate doc ids, best first.
    """
    query_ids = list(queries.ids if query_ids is None else query_ids)
    q_rows = [queries.row[q] for q in query_ids]
    top = _top_pooled(queries, docs, q_rows, candidates).tolist()
    pool = sorted({d for cand in top for d in cand})  # every query's candidates, and so its top-k among these rows
    q_tokens = _adapt(queries.tokens.take(q_rows), adapter)
    _, ranked = rerank_candidates(
        queries.pooled[q_rows],
        [q_tokens.item(i) for i in range(len(q_tokens))],
        docs.pooled[pool],
        _adapt(docs.tokens.take(pool), adapter),
        candidates=candidates,
        lambda_pool=lambda_pool,
        lambda_late=lambda_late,
        show_progress=show_progress,
    )
    single = {qid: [docs.ids[d] for d in cand] for qid, cand in zip(query_ids, top)}
    smart = {qid: [docs.ids[pool[i]] for i in rows] for qid, rows in zip(query_ids, ranked)}
    return single, smart


def _validate(
    adapter: SmartAdapter,
    task: _Task,
    val_rows: Sequence[int],
    qrels: Mapping[str, Mapping[str, int]],
    config: TrainConfig,
) -> float:
    query_ids = [task.queries.ids[q] for q in val_rows]
    _, ranking = smart_rankings(task.queries, task.docs, adapter, query_ids=query_ids, candidates=config.val_candidates)
    return ndcg_at_k(ranking, {q: qrels[q] for q in query_ids}, 10)


# ---- training ----------------------------------------------------------------


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
    task = _task(queries, docs, qrels, config, sorted(_positive_rows(queries, docs, qrels)))
    negatives = {q: pool[: config.hard_negatives] for q, pool in task.negatives.items()}
    total_loss = correct = 0.0
    for batch in _batches(task, negatives, range(len(task.pairs)), config.batch_size):
        logits = _logits(adapter, task, batch, config)
        total_loss += float(F.cross_entropy(logits, batch.target, reduction="sum"))
        correct += float((logits.argmax(dim=1) == batch.target).sum())
    return total_loss / len(task.pairs), correct / len(task.pairs)


def _new_adapter(
    task: _Task, config: TrainConfig, base: Mapping[str, Any] | None, rng: np.random.Generator
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
    positives = _positive_rows(queries, docs, qrels)
    train_rows, val_rows = _split_queries(positives, config.val_split, rng)
    task = _task(queries, docs, qrels, config, train_rows)
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
        history[0]["val_ndcg@10"] = _validate(adapter, task, val_rows, qrels, config)
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
            negatives = _draw_negatives(task.negatives, config.hard_negatives, rng)
            for batch in _batches(task, negatives, rng.permutation(len(task.pairs)).tolist(), config.batch_size):
                logits = _logits(adapter, task, batch, config)
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
                record["val_ndcg@10"] = _validate(adapter, task, val_rows, qrels, config)
                message += f", val nDCG@10 {record['val_ndcg@10']:.4f}"
                if record["val_ndcg@10"] > history[best_epoch]["val_ndcg@10"]:
                    best_epoch, best_state = epoch, {k: v.clone() for k, v in adapter.state_dict().items()}
            else:
                best_epoch, best_state = epoch, {k: v.clone() for k, v in adapter.state_dict().items()}
            if config.remine and epoch < config.epochs and not stopped_early:
                task.negatives = _mine_negatives(
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
