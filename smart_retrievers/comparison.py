"""Single-vector vs SMART on the same encodings: the numbers behind ``smart-retrievers eval``.

The corpus and queries are encoded once; every method then ranks from those encodings in
memory, so the comparison isolates the scoring (no storage or ANN effects).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .encoding import Encoding
from .evaluation import evaluate_ranking
from .scoring import fuse, maxsim, pad_tokens

METHODS = ("single", "smart-rerank", "smart-exhaustive")


@dataclass
class Comparison:
    """Metrics per method, plus timings in seconds."""

    results: dict[str, dict[str, float]]
    timings: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        """A plain-text table with the absolute and relative gain over ``single``."""
        base = self.results["single"]
        metrics = list(base)
        lines = [f"{'method':<18}" + "".join(f"{m:>12}" for m in metrics) + f"{'Δ ndcg@10':>12}{'Δ%':>8}"]
        for method, values in self.results.items():
            gain = values["ndcg@10"] - base["ndcg@10"]
            rel = 100 * gain / base["ndcg@10"] if base["ndcg@10"] else float("nan")
            lines.append(f"{method:<18}" + "".join(f"{values[m]:>12.4f}" for m in metrics) + f"{gain:>+12.4f}{rel:>+7.1f}%")
        return "\n".join(lines)


def compare(
    query_ids: Sequence[str],
    queries: Sequence[Encoding],
    doc_ids: Sequence[str],
    docs: Sequence[Encoding],
    qrels: dict[str, dict[str, int]],
    *,
    candidates: int = 100,
    depth: int = 100,
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
    chunk_size: int = 128,
    query_batch: int = 16,
    show_progress: bool = True,
) -> Comparison:
    """Rank with pooled cosine, SMART over the pooled top-``candidates``, and exhaustive SMART."""
    timings: dict[str, float] = {}
    doc_ids = list(doc_ids)
    depth = min(depth, len(doc_ids))
    d_pooled = torch.from_numpy(np.stack([d.pooled for d in docs]).astype(np.float32))
    q_pooled = torch.from_numpy(np.stack([q.pooled for q in queries]).astype(np.float32))

    start = time.perf_counter()
    pooled = q_pooled @ d_pooled.T
    timings["single_s"] = time.perf_counter() - start

    d_block, d_mask = pad_tokens([d.tokens for d in docs])
    q_blocks = [pad_tokens([q.tokens]) for q in queries]
    q_groups = [(start, pad_tokens([q.tokens for q in queries[start : start + query_batch]])) for start in range(0, len(queries), query_batch)]

    start = time.perf_counter()
    n_cand = min(candidates, len(doc_ids))
    cand = torch.topk(pooled, n_cand, dim=1).indices
    rerank = torch.full_like(pooled, float("-inf"))
    for qi, (qb, qm) in enumerate(tqdm(q_blocks, desc="SMART rerank", disable=not show_progress)):
        idx = cand[qi]
        late = maxsim(qb, qm, d_block[idx], d_mask[idx])[0]
        rerank[qi, idx] = fuse(pooled[qi, idx], late, lambda_pool, lambda_late)
    timings["smart_rerank_s"] = time.perf_counter() - start

    start = time.perf_counter()
    exhaustive = torch.empty_like(pooled)
    for start, (qb, qm) in tqdm(q_groups, desc="SMART exhaustive", disable=not show_progress):
        rows = slice(start, start + len(qb))
        exhaustive[rows] = fuse(pooled[rows], maxsim(qb, qm, d_block, d_mask, chunk_size=chunk_size), lambda_pool, lambda_late)
    timings["smart_exhaustive_s"] = time.perf_counter() - start

    results = {}
    for method, scores in zip(METHODS, (pooled, rerank, exhaustive)):
        top = torch.topk(scores, depth, dim=1).indices.tolist()
        ranking = {qid: [doc_ids[i] for i in row] for qid, row in zip(query_ids, top)}
        results[method] = evaluate_ranking(ranking, qrels)
    return Comparison(results=results, timings=timings)
