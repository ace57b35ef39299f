"""The training task as state rows: each query's positives, its mined and drawn negatives, the held-out split
and the batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..adapter import SmartAdapter
from .config import TrainConfig
from .data import TrainingDataError
from .loss import Batch, batch_logits, make_batches
from .rankings import smart_rankings, top_pooled
from .states import TokenStates

__all__ = [
    "Task",
    "batch_scores",
    "batches",
    "build_task",
    "draw_negatives",
    "mine_negatives",
    "positive_rows",
    "split_queries",
]


@dataclass
class Task:
    """The training queries, their positives and negatives, all as state rows."""

    queries: TokenStates
    docs: TokenStates
    positives: dict[int, set[int]]  # query row -> positive doc rows
    pairs: list[tuple[int, int]]
    negatives: dict[int, list[int]]  # training query row -> its pool of mined negatives, best first


def positive_rows(
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


def mine_negatives(
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
        top = top_pooled(queries, docs, rows, k + most_positives).tolist()
    else:
        query_ids = [queries.ids[q] for q in rows]
        _, ranking = smart_rankings(queries, docs, adapter, query_ids=query_ids, candidates=candidates)
        top = [[docs.row[d] for d in ranking[qid]] for qid in query_ids]
    return {q: [d for d in ranked if d not in positives[q]][:k] for q, ranked in zip(rows, top)}


def draw_negatives(pools: Mapping[int, list[int]], k: int, rng: np.random.Generator) -> dict[int, list[int]]:
    """``k`` negatives of each query's pool, drawn without replacement (the whole pool when it has <= k)."""
    return {q: [pool[i] for i in np.sort(rng.permutation(len(pool))[:k])] for q, pool in pools.items()}


def build_task(
    queries: TokenStates,
    docs: TokenStates,
    qrels: Mapping[str, Mapping[str, int]],
    config: TrainConfig,
    train_rows: Sequence[int],
) -> Task:
    if queries.dim != docs.dim:
        raise ValueError(f"query states have dim {queries.dim} but doc states {docs.dim}")
    positives = positive_rows(queries, docs, qrels)
    train_pos = {q: positives[q] for q in train_rows}
    pairs = [(q, d) for q in sorted(train_pos) for d in sorted(train_pos[q])]
    return Task(queries, docs, positives, pairs, mine_negatives(queries, docs, train_pos, config.negative_pool))


def split_queries(
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


def batches(task: Task, negatives: Mapping[int, Sequence[int]], order: Sequence[int], batch_size: int) -> list[Batch]:
    return make_batches(task.pairs, task.positives, negatives, order, batch_size)


def batch_scores(adapter: SmartAdapter, task: Task, batch: Batch, config: TrainConfig) -> torch.Tensor:
    return batch_logits(adapter, task.queries, task.docs, batch, tau=config.tau, fused=config.loss == "fused")
