"""Train a :class:`~smart_retrievers.adapter.SmartAdapter` on frozen token states, on a CPU.

The backbone is frozen, so queries and documents are encoded once
(:func:`encode_states`) and their L2-normalised fp16 token states are cached on disk.
Training then runs only the adapter:

* loss: InfoNCE (temperature ``tau``, default 0.03) on the SMART late score
  ``mean_q max_d cos`` (or on the fused score ``cos(pooled) + late``) of each query
  against every document in the batch: its positive, the other queries' positives
  (in-batch negatives) and ``hard_negatives`` mined per query (the top pooled-score
  non-positives of the corpus). Other positives of the same query are masked out.
* the late score of a whole batch is one padded block: one einsum, chunked over
  documents for memory, with a sparse backward through the max (only the arg-max
  document token of each (query token, document) pair gets a gradient).
* AdamW, linear warmup then cosine decay, gradient clipping, a fixed seed.
* after each epoch, nDCG@10 of held-out training queries (SMART over their pooled
  top candidates); the best epoch is kept, and epoch 0 (the initialisation, which
  reproduces inference-only SMART) competes too.

Since the adapter L2-normalises its input first, training on the cached normalised
states is the same as applying the adapter to the encoder's raw hidden states.

Python API: :func:`train_adapter` (BEIR directory → adapter) and :func:`fit_adapter`
(cached states → adapter). CLI: ``smart-retrievers train BEIR_DIR --out ADAPTER_DIR``
(:func:`add_train_parser`, :func:`run_train`).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .adapter import AdapterMismatchError, SmartAdapter
from .encoder import SmartEncoder
from .evaluation import BeirDataset, load_beir, ndcg_at_k
from .scoring import maxsim, pad_tokens

__all__ = [
    "TrainingDataError",
    "TokenStates",
    "TrainConfig",
    "TrainResult",
    "default_cache_dir",
    "encode_states",
    "load_training_data",
    "late_maxsim",
    "fit_adapter",
    "training_loss",
    "smart_rankings",
    "train_adapter",
    "add_train_parser",
    "run_train",
]

_CACHE_FORMAT = 1


class TrainingDataError(ValueError):
    """The training data cannot be used: empty, inconsistent or too small qrels."""


# ---- cached frozen states ----------------------------------------------------


@dataclass
class TokenStates:
    """Frozen encodings of N texts, with the token states stored flat.

    Attributes:
        ids: the N item ids, in row order.
        pooled: (N, H) float32 pooled embeddings, L2-normalised.
        tokens: (T, H) float16 token states, L2-normalised (possibly a read-only memmap).
        offsets: (N + 1,) int64; item ``i``'s tokens are ``tokens[offsets[i]:offsets[i + 1]]``.
    """

    ids: list[str]
    pooled: np.ndarray
    tokens: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_encodings(cls, ids: Sequence[str], encodings: Sequence[Any]) -> TokenStates:
        """Pack :class:`~smart_retrievers.encoding.Encoding` objects."""
        if len(ids) != len(encodings):
            raise ValueError(f"got {len(ids)} ids but {len(encodings)} encodings")
        if not encodings:
            raise ValueError("no encodings to pack")
        lengths = [len(e.tokens) for e in encodings]
        return cls(
            ids=list(ids),
            pooled=np.stack([e.pooled for e in encodings]).astype(np.float32),
            tokens=np.concatenate([e.tokens for e in encodings]).astype(np.float16),
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        """H, the token (and pooled) dimension."""
        return int(self.tokens.shape[1])

    @cached_property
    def row(self) -> dict[str, int]:
        """Item id → row."""
        return {item_id: i for i, item_id in enumerate(self.ids)}

    def packed(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Float32 token states of ``rows`` concatenated (t, H), and each row's length (n,)."""
        parts = [self.tokens[self.offsets[r] : self.offsets[r + 1]] for r in rows]
        lengths = torch.tensor([len(p) for p in parts], dtype=torch.long)
        return torch.from_numpy(np.concatenate(parts).astype(np.float32)), lengths

    def save(self, folder: Path) -> None:
        """Write the arrays and ids into ``folder`` (created)."""
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "pooled.npy", self.pooled)
        np.save(folder / "tokens.npy", self.tokens)
        np.save(folder / "offsets.npy", self.offsets)
        (folder / "ids.json").write_text(json.dumps(self.ids))

    @classmethod
    def load(cls, folder: Path) -> TokenStates:
        """Read states written by :meth:`save`; the token states are memory-mapped."""
        return cls(
            ids=json.loads((folder / "ids.json").read_text()),
            pooled=np.load(folder / "pooled.npy"),
            tokens=np.load(folder / "tokens.npy", mmap_mode="r"),
            offsets=np.load(folder / "offsets.npy"),
        )


def default_cache_dir() -> Path:
    """``$SMART_RETRIEVERS_CACHE``, else ``$XDG_CACHE_HOME/smart-retrievers``, else ``~/.cache/smart-retrievers``."""
    if os.environ.get("SMART_RETRIEVERS_CACHE"):
        return Path(os.environ["SMART_RETRIEVERS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "smart-retrievers"


def encode_states(
    encoder: SmartEncoder,
    ids: Sequence[str],
    texts: Sequence[str],
    *,
    kind: Literal["query", "document"],
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    show_progress: bool = True,
) -> TokenStates:
    """Encode texts with a frozen encoder (no adapter), cached on disk.

    The cache entry is keyed by the encoder fingerprint, its prompts and max_length,
    ``kind`` and every (id, text), so a changed corpus or model re-encodes.

    Args:
        encoder: a :class:`SmartEncoder` without adapter.
        ids / texts: aligned item ids and texts.
        kind: "query" (``encode_queries``) or "document" (``encode_documents``).
        cache_dir: cache root (default :func:`default_cache_dir`).
        use_cache: False encodes in memory only.
        show_progress: show the encoder's progress bar.
    """
    if encoder.adapter is not None:
        raise ValueError("token states for adapter training come from the frozen encoder; pass one without adapter")
    if kind not in ("query", "document"):
        raise ValueError(f"kind must be 'query' or 'document', got {kind!r}")
    if len(ids) != len(texts):
        raise ValueError(f"got {len(ids)} ids but {len(texts)} texts")
    digest = hashlib.sha256(
        json.dumps(
            {
                "format": _CACHE_FORMAT,
                "kind": kind,
                "fingerprint": encoder.fingerprint,
                "query_prompt": encoder.query_prompt,
                "max_length": encoder.max_length,
            },
            sort_keys=True,
        ).encode()
    )
    for item_id, text in zip(ids, texts):
        digest.update(f"{len(item_id)}:{item_id}{len(text)}:{text}".encode())
    folder = Path(cache_dir or default_cache_dir()) / f"{kind}-{digest.hexdigest()[:24]}"
    if use_cache and (folder / "ids.json").is_file():
        return TokenStates.load(folder)
    encode = encoder.encode_queries if kind == "query" else encoder.encode_documents
    states = TokenStates.from_encodings(ids, encode(list(texts), show_progress=show_progress))
    if use_cache:
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        states.save(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process cached the same states meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    return states


# ---- data --------------------------------------------------------------------


def load_training_data(beir_dir: str | Path, split: str = "train", *, skip_unknown: bool = False) -> BeirDataset:
    """Load a BEIR split for training, refusing empty or inconsistent qrels.

    Raises:
        FileNotFoundError: missing directory, file or split.
        TrainingDataError: malformed qrels, no positive judgement, judgements on unknown
            query/doc ids (unless ``skip_unknown``), or judged queries with empty text.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = load_beir(beir_dir, split)
        except ValueError as exc:
            dropped = "; ".join(str(w.message) for w in caught if "dropped" in str(w.message))
            reason = f"inconsistent qrels: {dropped}, and {exc}" if dropped else str(exc)
            raise TrainingDataError(f"cannot train on split {split!r}: {reason}") from exc
    for warning in caught:
        if "dropped" not in str(warning.message):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        elif not skip_unknown:
            raise TrainingDataError(
                f"inconsistent qrels: {warning.message}. Fix the qrels, or skip those judgements "
                "(skip_unknown=True, --skip-unknown)."
            )
        else:
            warnings.warn(str(warning.message), stacklevel=2)
    if not any(rel > 0 for judged in dataset.qrels.values() for rel in judged.values()):
        raise TrainingDataError(f"split {split!r} of {beir_dir} has no positive (relevance > 0) judgement")
    empty = [qid for qid in dataset.queries if not dataset.queries[qid].strip()]
    if empty:
        raise TrainingDataError(f"{len(empty)} judged queries have empty text, e.g. {empty[:5]}")
    return dataset


# ---- the differentiable late score -------------------------------------------


class _LateMaxSim(torch.autograd.Function):
    """max over document tokens of query-token · document-token, with a sparse backward."""

    @staticmethod
    def forward(ctx: Any, queries: torch.Tensor, docs: torch.Tensor, doc_mask: torch.Tensor, chunk_size: int) -> torch.Tensor:
        n_docs, length, _ = docs.shape
        best = queries.new_empty(len(queries), n_docs)
        where = torch.empty(len(queries), n_docs, dtype=torch.long)
        for start in range(0, n_docs, chunk_size):
            stop = min(start + chunk_size, n_docs)
            sims = torch.einsum("tr,nlr->tnl", queries, docs[start:stop])
            sims.masked_fill_(~doc_mask[None, start:stop], float("-inf"))
            best[:, start:stop], where[:, start:stop] = sims.max(dim=2)
        ctx.save_for_backward(queries, docs, where)
        return best

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        queries, docs, where = ctx.saved_tensors
        n_docs, length, dim = docs.shape
        n_tokens = len(queries)
        # S[(n, where[t, n]), t] = grad[t, n]: the only document token that won each max
        flat = (torch.arange(n_docs) * length)[None, :] + where  # (Tq, N) into the (N*L) rows
        cols = torch.arange(n_tokens).repeat_interleave(n_docs)
        select = torch.sparse_coo_tensor(torch.stack([flat.reshape(-1), cols]), grad.reshape(-1), (n_docs * length, n_tokens), check_invariants=False)
        grad_queries = grad_docs = None
        if ctx.needs_input_grad[0]:
            grad_queries = torch.sparse.mm(select.t(), docs.reshape(n_docs * length, dim))
        if ctx.needs_input_grad[1]:
            grad_docs = torch.sparse.mm(select, queries).reshape(n_docs, length, dim)
        return grad_queries, grad_docs, None, None


def late_maxsim(
    query_tokens: torch.Tensor,
    query_lengths: torch.Tensor,
    doc_tokens: torch.Tensor,
    doc_mask: torch.Tensor,
    *,
    max_elements: int = 1 << 25,
) -> torch.Tensor:
    """Differentiable SMART late scores (Q, N) of packed queries against a padded doc block.

    Args:
        query_tokens: (Tq, r) every query's tokens, concatenated.
        query_lengths: (Q,) tokens per query (each >= 1).
        doc_tokens: (N, L, r) zero-padded document tokens.
        doc_mask: (N, L) bool, True on real tokens (each row has one at least).
        max_elements: similarity entries computed at once (memory bound).

    Same values as :func:`smart_retrievers.scoring.maxsim`; the gradient of each max
    flows to its arg-max document token only.
    """
    if int(query_lengths.sum()) != len(query_tokens) or bool((query_lengths < 1).any()):
        raise ValueError("query_lengths must be >= 1 and sum to the number of query tokens")
    chunk = max(1, max_elements // max(1, len(query_tokens) * doc_tokens.shape[1]))
    best = _LateMaxSim.apply(query_tokens, doc_tokens, doc_mask, chunk)  # (Tq, N)
    segment = torch.repeat_interleave(torch.arange(len(query_lengths)), query_lengths)
    total = best.new_zeros(len(query_lengths), best.shape[1]).index_add(0, segment, best)
    return total / query_lengths[:, None].to(best.dtype)


def _pad_packed(flat: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter packed (t, r) rows into a zero-padded (n, L, r) block and its mask (autograd-safe)."""
    mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    block = flat.new_zeros(*mask.shape, flat.shape[1])
    block = block.index_put((mask.nonzero(as_tuple=True)), flat)
    return block, mask


# ---- configuration and batches -------------------------------------------------


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
        hard_negatives: mined negatives per query (0: in-batch negatives only).
        val_split: fraction of training queries held out for per-epoch nDCG@10
            (0: no validation, the last epoch is kept).
        loss: "late" (InfoNCE on the late score) or "fused" (on pooled cos + late).
        warmup: fraction of steps with linear learning-rate warmup.
        weight_decay: AdamW weight decay.
        max_grad_norm: gradient-norm clipping.
        seed: seeds the validation split, the shuffling and torch.
        val_candidates: pooled candidates re-scored per validation query.
        pca_tokens: token states sampled for the PCA initialisation (r < H).
    """

    dim: int | None = None
    epochs: int = 3
    lr: float = 1e-3
    tau: float = 0.03
    batch_size: int = 64
    hard_negatives: int = 3
    val_split: float = 0.05
    loss: Literal["late", "fused"] = "late"
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
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
            "0 <= val_split < 1": 0 <= self.val_split < 1,
            "loss in ('late', 'fused')": self.loss in ("late", "fused"),
            "0 <= warmup < 1": 0 <= self.warmup < 1,
            "max_grad_norm > 0": self.max_grad_norm > 0,
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
            ``train_loss`` and ``train_accuracy`` (running means over the epoch's steps),
            ``val_ndcg@10`` (when validating) and ``seconds``.
        best_epoch: the epoch kept (by validation nDCG@10, else the last).
        seconds: training wall time (states already encoded).
        initial: the adapter before training (identity, or PCA for r < H), to compare with.
        data: sizes of what was trained on.
    """

    adapter: SmartAdapter
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float
    initial: SmartAdapter
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Batch:
    query_rows: list[int]
    doc_rows: list[int]
    target: torch.Tensor  # (B,) column of each query's positive
    blocked: torch.Tensor  # (B, D) True where the doc is another positive of the query


@dataclass
class _Task:
    """The training queries, their positives and negatives, all as state rows."""

    queries: TokenStates
    docs: TokenStates
    positives: dict[int, set[int]]  # query row -> positive doc rows
    pairs: list[tuple[int, int]]
    negatives: dict[int, list[int]]


def _positive_rows(queries: TokenStates, docs: TokenStates, qrels: Mapping[str, Mapping[str, int]]) -> dict[int, set[int]]:
    missing_q = [qid for qid in qrels if qid not in queries.row]
    missing_d = sorted({d for judged in qrels.values() for d in judged if d not in docs.row})
    if missing_q or missing_d:
        raise TrainingDataError(
            f"inconsistent qrels: {len(missing_q)} query ids without states (e.g. {missing_q[:5]}) and "
            f"{len(missing_d)} doc ids without states (e.g. {missing_d[:5]})"
        )
    positives = {queries.row[qid]: {docs.row[d] for d, rel in judged.items() if rel > 0} for qid, judged in qrels.items()}
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


def _mine_negatives(queries: TokenStates, docs: TokenStates, positives: Mapping[int, set[int]], k: int) -> dict[int, list[int]]:
    """The top-k pooled-score non-positive docs of each query."""
    if k == 0:
        return {q: [] for q in positives}
    rows = sorted(positives)
    most_positives = max(len(p) for p in positives.values())
    top = _top_pooled(queries, docs, rows, k + most_positives).tolist()
    return {q: [d for d in ranked if d not in positives[q]][:k] for q, ranked in zip(rows, top)}


def _batches(task: _Task, order: Sequence[int], batch_size: int) -> list[_Batch]:
    """Group pairs (in ``order``) into batches sharing every doc as a candidate."""
    batches = []
    for start in range(0, len(order), batch_size):
        pairs = [task.pairs[i] for i in order[start : start + batch_size]]
        doc_rows: dict[int, int] = {}
        for q, pos in pairs:
            doc_rows.setdefault(pos, len(doc_rows))
        for q, _ in pairs:
            for neg in task.negatives[q]:
                doc_rows.setdefault(neg, len(doc_rows))
        columns = list(doc_rows)
        target = torch.tensor([doc_rows[pos] for _, pos in pairs])
        blocked = torch.tensor([[d in task.positives[q] and d != pos for d in columns] for q, pos in pairs], dtype=torch.bool)
        batches.append(_Batch([q for q, _ in pairs], columns, target, blocked))
    return batches


def _logits(adapter: SmartAdapter, task: _Task, batch: _Batch, config: TrainConfig) -> torch.Tensor:
    """InfoNCE logits (B, D) of a batch: late (or fused) scores over tau, blocked entries -inf."""
    q_flat, q_lengths = task.queries.packed(batch.query_rows)
    d_flat, d_lengths = task.docs.packed(batch.doc_rows)
    d_block, d_mask = _pad_packed(adapter(d_flat), d_lengths)
    scores = late_maxsim(adapter(q_flat), q_lengths, d_block, d_mask)
    if config.loss == "fused":
        q_pooled = torch.from_numpy(task.queries.pooled[batch.query_rows])
        scores = scores + q_pooled @ torch.from_numpy(task.docs.pooled[batch.doc_rows]).T
    return (scores / config.tau).masked_fill(batch.blocked, float("-inf"))


def _lr_lambda(total: int, warmup: float):
    warm = max(1, int(round(warmup * total))) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


# ---- rankings ----------------------------------------------------------------


@torch.no_grad()
def _adapted_tokens(docs: TokenStates, rows: Sequence[int], adapter: SmartAdapter | None, batch_tokens: int = 65536) -> dict[int, torch.Tensor]:
    """Row → its (adapted) float16 token states, adapting about ``batch_tokens`` tokens at a time."""
    out: dict[int, torch.Tensor] = {}
    start = 0
    rows = list(rows)
    while start < len(rows):
        stop, count = start, 0
        while stop < len(rows) and (count == 0 or count + docs.offsets[rows[stop] + 1] - docs.offsets[rows[stop]] <= batch_tokens):
            count += int(docs.offsets[rows[stop] + 1] - docs.offsets[rows[stop]])
            stop += 1
        flat, lengths = docs.packed(rows[start:stop])
        adapted = (adapter(flat) if adapter is not None else flat).half()
        out.update(zip(rows[start:stop], torch.split(adapted, lengths.tolist())))
        start = stop
    return out


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

    Returns:
        (pooled ranking, SMART ranking): query id → the candidate doc ids, best first.
    """
    query_ids = list(queries.ids if query_ids is None else query_ids)
    q_rows = [queries.row[q] for q in query_ids]
    top = _top_pooled(queries, docs, q_rows, candidates)
    doc_tokens = _adapted_tokens(docs, sorted(set(top.reshape(-1).tolist())), adapter)
    query_tokens = _adapted_tokens(queries, q_rows, adapter)
    d_pooled = torch.from_numpy(docs.pooled)
    single: dict[str, list[str]] = {}
    smart: dict[str, list[str]] = {}
    for qid, q_row, cand in zip(tqdm(query_ids, desc="SMART rerank", disable=not show_progress), q_rows, top.tolist()):
        pooled = d_pooled[cand] @ torch.from_numpy(queries.pooled[q_row])
        q_block, q_mask = pad_tokens([query_tokens[q_row]])
        d_block, d_mask = pad_tokens([doc_tokens[d] for d in cand])
        fused = lambda_pool * pooled + lambda_late * maxsim(q_block, q_mask, d_block, d_mask)[0]
        order = torch.sort(fused, descending=True, stable=True).indices.tolist()
        single[qid] = [docs.ids[d] for d in cand]
        smart[qid] = [docs.ids[cand[i]] for i in order]
    return single, smart


# ---- training ----------------------------------------------------------------


def _split_queries(positives: Mapping[int, set[int]], val_split: float, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    rows = sorted(positives)
    rng.shuffle(rows)
    n_val = max(1, int(round(val_split * len(rows)))) if val_split > 0 else 0
    if len(rows) - n_val < 2:
        raise TrainingDataError(
            f"{len(rows)} queries with a positive judgement leave {len(rows) - n_val} for training "
            f"after a {val_split:.0%} validation split; need at least 2"
        )
    return sorted(rows[n_val:]), sorted(rows[:n_val])


def _new_adapter(task: _Task, config: TrainConfig, base: Mapping[str, Any] | None, rng: np.random.Generator) -> SmartAdapter:
    dim = config.dim or task.docs.dim
    if dim > task.docs.dim:
        raise ValueError(f"adapter dim {dim} exceeds the model's hidden size {task.docs.dim}")
    adapter = SmartAdapter(task.docs.dim, dim, base=base)
    if dim < task.docs.dim:
        rows = sorted({d for _, d in task.pairs} | {d for negs in task.negatives.values() for d in negs})
        flat, _ = task.docs.packed(rows)
        if len(flat) > config.pca_tokens:
            flat = flat[torch.from_numpy(rng.choice(len(flat), config.pca_tokens, replace=False))]
        adapter.init_pca(flat)
    return adapter


def _validate(adapter: SmartAdapter, task: _Task, val_rows: Sequence[int], qrels: Mapping[str, Mapping[str, int]], config: TrainConfig) -> float:
    query_ids = [task.queries.ids[q] for q in val_rows]
    _, ranking = smart_rankings(task.queries, task.docs, adapter, query_ids=query_ids, candidates=config.val_candidates)
    return ndcg_at_k(ranking, {q: qrels[q] for q in query_ids}, 10)


@torch.no_grad()
def training_loss(
    adapter: SmartAdapter,
    queries: TokenStates,
    docs: TokenStates,
    qrels: Mapping[str, Mapping[str, int]],
    config: TrainConfig | None = None,
) -> tuple[float, float]:
    """Mean InfoNCE loss and top-1 accuracy of ``adapter`` over every (query, positive) pair.

    Batches are formed exactly as in training (in pair order, same negatives), so the
    numbers before and after :func:`fit_adapter` are comparable.
    """
    config = config or TrainConfig()
    task = _task(queries, docs, qrels, config, sorted(_positive_rows(queries, docs, qrels)))
    total_loss = correct = 0.0
    for batch in _batches(task, range(len(task.pairs)), config.batch_size):
        logits = _logits(adapter, task, batch, config)
        total_loss += float(F.cross_entropy(logits, batch.target, reduction="sum"))
        correct += float((logits.argmax(dim=1) == batch.target).sum())
    return total_loss / len(task.pairs), correct / len(task.pairs)


def _task(queries: TokenStates, docs: TokenStates, qrels: Mapping[str, Mapping[str, int]], config: TrainConfig, train_rows: Sequence[int]) -> _Task:
    if queries.dim != docs.dim:
        raise ValueError(f"query states have dim {queries.dim} but doc states {docs.dim}")
    positives = _positive_rows(queries, docs, qrels)
    train_pos = {q: positives[q] for q in train_rows}
    pairs = [(q, d) for q in sorted(train_pos) for d in sorted(train_pos[q])]
    return _Task(queries, docs, positives, pairs, _mine_negatives(queries, docs, train_pos, config.hard_negatives))


def fit_adapter(
    queries: TokenStates,
    docs: TokenStates,
    qrels: Mapping[str, Mapping[str, int]],
    config: TrainConfig | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train a :class:`SmartAdapter` on cached frozen states.

    Args:
        queries / docs: frozen states (see :func:`encode_states`); every query and doc
            id in ``qrels`` must be there.
        qrels: query id → {doc id: relevance}; relevance > 0 marks a positive.
        config: hyper-parameters (:class:`TrainConfig`).
        base: the encoder's ``base_fingerprint``, recorded in the adapter.
        show_progress: a tqdm bar with the running loss, and one line per epoch.

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
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(steps_per_epoch * config.epochs, config.warmup))

    start = time.perf_counter()
    history: list[dict[str, float]] = [{"epoch": 0, "seconds": 0.0}]
    if val_rows:
        history[0]["val_ndcg@10"] = _validate(adapter, task, val_rows, qrels, config)
    best_epoch, best_state = 0, {k: v.clone() for k, v in adapter.state_dict().items()}
    log = tqdm.write if show_progress else (lambda _msg: None)
    if val_rows:
        log(f"epoch 0 (init): val nDCG@10 {history[0]['val_ndcg@10']:.4f} on {len(val_rows)} held-out queries")
    with tqdm(total=steps_per_epoch * config.epochs, desc="Training adapter", unit="step", disable=not show_progress) as bar:
        for epoch in range(1, config.epochs + 1):
            total_loss, seen, correct = 0.0, 0, 0
            for batch in _batches(task, rng.permutation(len(task.pairs)).tolist(), config.batch_size):
                logits = _logits(adapter, task, batch, config)
                loss = F.cross_entropy(logits, batch.target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(adapter.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                total_loss += loss.item() * len(batch.target)
                seen += len(batch.target)
                correct += int((logits.detach().argmax(dim=1) == batch.target).sum())
                bar.set_postfix(epoch=epoch, loss=f"{total_loss / seen:.4f}")
                bar.update()
            record = {
                "epoch": epoch,
                "train_loss": total_loss / seen,
                "train_accuracy": correct / len(task.pairs),
                "seconds": time.perf_counter() - start,
            }
            message = f"epoch {epoch}: train loss {record['train_loss']:.4f}, train accuracy {record['train_accuracy']:.3f}"
            if val_rows:
                record["val_ndcg@10"] = _validate(adapter, task, val_rows, qrels, config)
                message += f", val nDCG@10 {record['val_ndcg@10']:.4f}"
                if record["val_ndcg@10"] > history[best_epoch]["val_ndcg@10"]:
                    best_epoch, best_state = epoch, {k: v.clone() for k, v in adapter.state_dict().items()}
            else:
                best_epoch, best_state = epoch, {k: v.clone() for k, v in adapter.state_dict().items()}
            history.append(record)
            log(message)
    adapter.load_state_dict(best_state)
    seconds = time.perf_counter() - start
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
    }
    return TrainResult(adapter=adapter.eval(), history=history, best_epoch=best_epoch, seconds=seconds, initial=initial, data=data)


def train_adapter(
    data: str | Path | BeirDataset,
    out_dir: str | Path | None = None,
    *,
    split: str = "train",
    config: TrainConfig | None = None,
    encoder: SmartEncoder | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    skip_unknown: bool = False,
    show_progress: bool = True,
) -> TrainResult:
    """Train an adapter on a BEIR-layout split and save it to ``out_dir`` (when given).

    The corpus and the split's queries are encoded once by the frozen ``encoder``
    (the bundled all-MiniLM-L6-v2 by default) and cached under ``cache_dir``; then
    :func:`fit_adapter` trains. Load the result with ``SmartEncoder(..., adapter=out_dir)``.

    Args:
        data: a BEIR dataset directory (loaded with :func:`load_training_data`, using
            ``split`` and ``skip_unknown``) or an already loaded :class:`BeirDataset`.
        out_dir: where to save the adapter (None: only return it).
        split: the qrels split to train on (recorded in the adapter's config).
        config: hyper-parameters (:class:`TrainConfig`).
        encoder: a frozen :class:`SmartEncoder` without adapter.
        cache_dir / use_cache: the token-state cache (see :func:`encode_states`).
        skip_unknown: drop judgements on unknown ids instead of raising.
        show_progress: progress bars and per-epoch lines.

    Raises:
        FileNotFoundError: missing dataset files or split.
        TrainingDataError: empty or inconsistent qrels.
    """
    dataset = data if isinstance(data, BeirDataset) else load_training_data(data, split, skip_unknown=skip_unknown)
    encoder = encoder or SmartEncoder.default()
    doc_ids = list(dataset.corpus)
    start = time.perf_counter()
    docs = encode_states(encoder, doc_ids, [dataset.doc_text(d) for d in doc_ids], kind="document", cache_dir=cache_dir, use_cache=use_cache, show_progress=show_progress)
    query_ids = list(dataset.queries)
    queries = encode_states(encoder, query_ids, [dataset.queries[q] for q in query_ids], kind="query", cache_dir=cache_dir, use_cache=use_cache, show_progress=show_progress)
    encode_seconds = time.perf_counter() - start
    result = fit_adapter(queries, docs, dataset.qrels, config, base=encoder.base_fingerprint, show_progress=show_progress)
    result.data.update({"dataset": dataset.name, "split": split, "encode_seconds": encode_seconds})
    result.adapter.info["data"] = result.data
    if out_dir is not None:
        result.adapter.save(out_dir)
    return result


# ---- CLI ---------------------------------------------------------------------


def add_train_parser(subparsers: Any) -> None:
    """Add the ``train`` subcommand to an argparse subparsers object (``parser.add_subparsers()``)."""
    defaults = TrainConfig()
    p = subparsers.add_parser(
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
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="(query, positive) pairs per training step")
    p.add_argument("--hard-negatives", type=int, default=defaults.hard_negatives, metavar="K", help="mined negatives per query (0: in-batch only)")
    p.add_argument("--val-split", type=float, default=defaults.val_split, help="fraction of queries held out for per-epoch nDCG@10")
    p.add_argument("--loss", choices=("late", "fused"), default=defaults.loss, help="score the InfoNCE loss is on")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--model", help="model directory or hub id (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--max-length", type=int, help="token limit per input (default: the model's)")
    p.add_argument("--encode-batch-size", type=int, default=32, help="inputs per forward pass when encoding")
    p.add_argument("--cache-dir", help=f"where frozen token states are cached (default: {default_cache_dir()})")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the token-state cache")
    p.add_argument("--skip-unknown", action="store_true", help="drop judgements on unknown query/doc ids instead of stopping")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", help="also write the training summary to this JSON file")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Run ``smart-retrievers train``; returns the exit status (2 on unusable input)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = TrainConfig(
            dim=args.dim,
            epochs=args.epochs,
            lr=args.lr,
            tau=args.tau,
            batch_size=args.batch_size,
            hard_negatives=args.hard_negatives,
            val_split=args.val_split,
            loss=args.loss,
            seed=args.seed,
        )
        dataset = load_training_data(args.beir_dir, args.split, skip_unknown=args.skip_unknown)
        kwargs: dict[str, Any] = {"batch_size": args.encode_batch_size}
        if args.max_length:
            kwargs["max_length"] = args.max_length
        encoder = SmartEncoder(args.model, **kwargs) if args.model else SmartEncoder.default(**kwargs)
        result = train_adapter(
            dataset,
            args.out,
            split=args.split,
            config=config,
            encoder=encoder,
            cache_dir=args.cache_dir,
            use_cache=not args.no_cache,
        )
    except (TrainingDataError, AdapterMismatchError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    best = result.history[result.best_epoch]
    summary = {
        "out": str(Path(args.out).resolve()),
        "dim": result.adapter.out_dim,
        "best_epoch": result.best_epoch,
        "best_val_ndcg@10": best.get("val_ndcg@10"),
        "train_seconds": result.seconds,
        "history": result.history,
        "data": result.data,
    }
    val = f", val nDCG@10 {best['val_ndcg@10']:.4f}" if "val_ndcg@10" in best else ""
    print(f"saved adapter (r={result.adapter.out_dim}, epoch {result.best_epoch}{val}) to {args.out}; trained in {result.seconds:.1f}s")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0
