"""The training settings (:class:`TrainConfig`) and what a run gives back (:class:`TrainResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..adapter import SmartAdapter

__all__ = ["TrainConfig", "TrainResult"]


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
