"""Single-vector vs SMART on the same encodings: the numbers behind ``smart-retrievers eval``.

The corpus and queries are encoded once; every method then ranks from those encodings in
memory, so the comparison isolates the scoring (no storage or ANN effects).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..codec import fit_codec
from ..encoding import Encoding
from ..lexical import DEFAULT_LAMBDA_LEX
from ..scoring import PackedTokens, fuse, maxsim_flat, rerank_candidates
from .hybrid import lexical_rankings
from .metrics import evaluate_ranking

__all__ = ["METHODS", "Comparison", "compare"]

METHODS = ("single", "smart-rerank", "smart-exhaustive")
COVERAGE_DEPTHS = (100, 200, 500, 1000)


@dataclass
class Comparison:
    """Metrics per method, timings in seconds, and how the token states were stored.

    ``coverage`` maps a candidate depth to the share of exhaustive SMART's top 10 that the
    pooled top-depth holds (needs no relevance labels); ``compression`` the token codec preset
    ("none": float16), ``bytes_per_token`` what one stored token state costs with it, and
    ``stored_tokens`` how many the corpus keeps (fewer than it has when the preset pools).
    """

    results: dict[str, dict[str, float]]
    timings: dict[str, float] = field(default_factory=dict)
    coverage: dict[int, float] = field(default_factory=dict)
    compression: str = "none"
    bytes_per_token: int = 0
    stored_tokens: int = 0
    rankings: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """Method -> query id -> ranked doc ids (cut at ``depth``): what per-query plots need."""

    def table(self) -> str:
        """A plain-text table with the absolute and relative gain over ``single``."""
        base = self.results["single"]
        metrics = list(base)
        lines = [f"{'method':<18}" + "".join(f"{m:>12}" for m in metrics) + f"{'Δ ndcg@10':>12}{'Δ%':>8}"]
        for method, values in self.results.items():
            gain = values["ndcg@10"] - base["ndcg@10"]
            rel = 100 * gain / base["ndcg@10"] if base["ndcg@10"] else float("nan")
            lines.append(
                f"{method:<18}" + "".join(f"{values[m]:>12.4f}" for m in metrics) + f"{gain:>+12.4f}{rel:>+7.1f}%"
            )
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
    query_batch: int = 32,
    chunk_tokens: int = 1 << 16,
    compression: str = "none",
    fit_docs: int = 1024,
    encoder: Any = None,
    show_progress: bool = True,
    doc_texts: Sequence[str] | None = None,
    query_texts: Sequence[str] | None = None,
    lambda_lex: float = DEFAULT_LAMBDA_LEX,
    text_candidates: int | None = None,
) -> Comparison:
    """Rank with pooled cosine, SMART over the pooled top-``candidates``, and exhaustive SMART.

    Rankings are cut at ``depth``. Exhaustive SMART scores ``query_batch`` queries at a time
    against every document's unpadded tokens (:func:`~smart_retrievers.scoring.maxsim_flat`,
    about ``chunk_tokens`` document tokens per matmul).

    With a ``compression`` preset, documents are scored exactly as an index with it would
    score them: the codec is fitted on the first ``fit_docs`` documents (a new index's first
    write batch; topped up with ``encoder``'s generic sample when they hold too few
    tokens), every document's tokens are coded, and float queries score the codes.

    With ``doc_texts`` and ``query_texts`` (aligned with ``docs`` / ``queries``), the lexical
    methods of :mod:`.hybrid` are added: "bm25", "hybrid-rrf" and "smart-hybrid" (its full-text
    candidates: the BM25 top-``text_candidates``, None: a search's default).
    """
    doc_ids = list(doc_ids)
    depth = min(depth, len(doc_ids))
    d_pooled = torch.from_numpy(np.stack([d.pooled for d in docs]).astype(np.float32))
    q_pooled = torch.from_numpy(np.stack([q.pooled for q in queries]).astype(np.float32))
    d_tokens = PackedTokens.from_list([d.tokens for d in docs])
    codec = None
    if compression != "none":
        codec = fit_codec(compression, [d.tokens for d in docs[:fit_docs]], encoder)
        codes, lengths = codec.encode_docs([d.tokens for d in docs])
        d_tokens = PackedTokens(values=torch.from_numpy(codes), offsets=np.concatenate([[0], np.cumsum(lengths)]))
    q_tokens = [q.tokens for q in queries]
    timings: dict[str, float] = {}
    rankings: dict[str, list[list[int]]] = {}

    start = time.perf_counter()
    pooled = q_pooled @ d_pooled.T
    rankings["single"] = torch.topk(pooled, depth, dim=1).indices.tolist()
    timings["single_s"] = time.perf_counter() - start

    start = time.perf_counter()
    _, ranked = rerank_candidates(
        q_pooled,
        q_tokens,
        d_pooled,
        d_tokens,
        candidates=candidates,
        lambda_pool=lambda_pool,
        lambda_late=lambda_late,
        show_progress=show_progress,
        codec=codec,
    )
    rankings["smart-rerank"] = [rows[:depth] for rows in ranked]
    timings["smart_rerank_s"] = time.perf_counter() - start

    start = time.perf_counter()
    top = []
    for first in tqdm(range(0, len(queries), query_batch), desc="SMART exhaustive", disable=not show_progress):
        group = PackedTokens.from_list(q_tokens[first : first + query_batch])
        late = maxsim_flat(
            group.values,
            d_tokens.values,
            d_tokens.lengths,
            query_lengths=group.lengths,
            chunk_tokens=chunk_tokens,
            codec=codec,
        )
        fused = fuse(pooled[first : first + len(group)], late, lambda_pool, lambda_late)
        top += torch.topk(fused, depth, dim=1).indices.tolist()
    rankings["smart-exhaustive"] = top
    timings["smart_exhaustive_s"] = time.perf_counter() - start

    if doc_texts is not None and query_texts is not None:
        start = time.perf_counter()
        rankings.update(
            lexical_rankings(
                doc_texts,
                query_texts,
                q_pooled,
                q_tokens,
                pooled,
                d_pooled,
                d_tokens,
                candidates=candidates,
                depth=depth,
                lambda_pool=lambda_pool,
                lambda_late=lambda_late,
                lambda_lex=lambda_lex,
                text_candidates=text_candidates,
                codec=codec,
                show_progress=show_progress,
            )
        )
        timings["lexical_s"] = time.perf_counter() - start
    ranked_ids = {
        method: {qid: [doc_ids[i] for i in rows] for qid, rows in zip(query_ids, rankings[method])}
        for method in rankings
    }
    results = {method: evaluate_ranking(ranked_ids[method], qrels) for method in rankings}
    coverage = {}
    for depth_k in sorted({candidates, *COVERAGE_DEPTHS}):
        pools = torch.topk(pooled, min(depth_k, len(doc_ids)), dim=1).indices.tolist()
        coverage[depth_k] = float(np.mean([len(set(c) & set(r[:10])) / len(r[:10]) for c, r in zip(pools, top)]))
    return Comparison(
        results=results,
        timings=timings,
        coverage=coverage,
        compression=compression,
        bytes_per_token=codec.bytes_per_token if codec is not None else 2 * d_tokens.values.shape[1],
        stored_tokens=len(d_tokens.values),
        rankings=ranked_ids,
    )
