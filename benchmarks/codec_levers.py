"""Codec levers on cached float states (``compression.py --levers``): what each costs in bytes and buys in nDCG.

Each lever is a variant of the default codec (token pooling to half, PCA-256, sign bits after a
random rotation, gain and bias to the float scale), fitted on the first 1,024 documents and scored
as an index would score it (float queries against the codes, λ = 1), on states encoded once:

* pooling: ``ward`` (the former Ward clustering), ``runs`` (the package's: cut the weakest neighbour
  links), ``words`` (runs that never cross a word boundary), ``none``; ``min_tokens`` keeps
  documents shorter than it whole;
* code: ``lead`` leading PCA components at ``lead_bits`` bits, the rest sign bits;
* calibration: ``linear`` (the package's), ``isotonic`` (a monotone map of each query token's best
  coded cosine, fitted on the same sample), ``isotonic+self`` (the same, its sample holding tokens
  scored against their own documents, whose float maximum is 1).

Per variant: nDCG@10 (SciFact: SMART over the pooled top-100, equal to exhaustive there in every
row of the preset table; flickr8k-captions: exhaustive), bytes per original token, and the
relevance ``(pooled + late) / 2`` of 200 documents scored against their own text (1.0 with float16).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import isotonic_regression

from smart_retrievers.codec import pool_documents
from smart_retrievers.codec.token_codec import _random_rotation
from smart_retrievers.evaluation.metrics import ndcg_at_k


def ward_pool(tokens: np.ndarray, factor: int) -> np.ndarray:
    """The former pooling (Ward clustering to ⌈L / factor⌉), kept here as the reference it is measured against."""
    from scipy.cluster.hierarchy import fcluster, linkage

    x = np.asarray(tokens, dtype=np.float32)
    keep = -(-len(x) // factor)
    if len(x) <= 2 or keep >= len(x):
        return x
    gram = x.astype(np.float64) @ x.T.astype(np.float64)
    distances = np.sqrt(np.clip(2.0 - 2.0 * gram[np.triu_indices(len(x), k=1)], 0.0, None))
    labels = fcluster(linkage(distances, method="ward"), t=keep, criterion="maxclust") - 1
    sums = np.zeros((labels.max() + 1, x.shape[1]), np.float32)
    np.add.at(sums, labels, x)
    return sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-12)


def word_pool(tokens: np.ndarray, starts: Sequence[bool], factor: int) -> np.ndarray:
    """Runs that never cross a word boundary: ``starts[j]`` says token j begins a word; within words the
    weakest links are cut until ⌈L / factor⌉ remain (or one token per word, when words are more)."""
    x = np.asarray(tokens, dtype=np.float32)
    if len(x) < 3:
        return x
    links = np.einsum("ij,ij->i", x[:-1], x[1:])
    inside = ~np.asarray(starts[1:], dtype=bool)
    merges = max(0, len(x) - max(-(-len(x) // factor), int(np.sum(~inside)) + 1))
    order = np.argsort(np.where(inside, -links, np.inf), kind="stable")  # strongest inner links first
    merge = np.zeros(len(links), bool)
    merge[order[:merges]] = True
    group = np.concatenate([[0], np.cumsum(~merge)])
    sums = np.zeros((group[-1] + 1, x.shape[1]), np.float32)
    np.add.at(sums, group, x)
    return sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-12)


def _segment_max(keys: torch.Tensor, lengths: Sequence[int], q: torch.Tensor) -> torch.Tensor:
    sims = keys @ q.T
    owner = torch.repeat_interleave(torch.arange(len(lengths)), torch.as_tensor(lengths))[:, None].expand_as(sims)
    return torch.full((len(lengths), len(q)), -1e9).scatter_reduce(0, owner, sims, "amax")


@dataclass
class Lever:
    """One codec variant (see the module docstring)."""

    name: str
    pool: str = "runs"
    dim: int = 256
    lead: int = 0
    lead_bits: int = 4
    min_tokens: int = 3
    calibration: str = "linear"
    float16: bool = False

    def pooled(self, docs: Sequence[np.ndarray], word_starts: Sequence[Sequence[bool]] | None) -> list[np.ndarray]:
        if self.float16 or self.pool == "none":
            return list(docs)
        if self.pool == "ward":
            return [ward_pool(d, 2) if len(d) >= self.min_tokens else d for d in docs]
        if self.pool == "words":
            return [word_pool(d, s, 2) for d, s in zip(docs, word_starts)]
        p = pool_documents(docs, 2, min_tokens=self.min_tokens)
        return np.split(p.tokens, np.cumsum(p.lengths)[:-1])

    def bytes_per_token(self) -> float:
        return 768.0 if self.float16 else (self.lead * self.lead_bits + self.dim - self.lead) / 8

    def fit(self, docs: Sequence[np.ndarray], starts: Sequence[Sequence[bool]] | None) -> Lever:
        if self.float16:
            self.calibrate = lambda best: best
            return self
        sample = torch.from_numpy(np.concatenate(self.pooled(docs, starts))).double()
        self.mean = sample.mean(0)
        _, vectors = torch.linalg.eigh((sample - self.mean).T @ (sample - self.mean) / len(sample))
        basis = vectors[:, -self.dim :].flip(1).T
        rotation = torch.from_numpy(_random_rotation(self.dim - self.lead))
        self.weight = torch.cat([basis[: self.lead], rotation @ basis[self.lead :]]).float()
        self.mean = self.mean.float()
        projected = (sample.float() - self.mean) @ self.weight.T
        self.scale = projected[:, self.lead :].abs().mean(0)
        if self.lead:
            low = torch.quantile(projected[:, : self.lead], 0.002, dim=0)
            high = torch.quantile(projected[:, : self.lead], 0.998, dim=0)
            self.low, self.step = low, (high - low) / (1 << self.lead_bits)
        self.calibrate = self._calibration(docs, starts)
        return self

    def keys(self, docs: Sequence[np.ndarray], starts) -> tuple[torch.Tensor, list[int]]:
        kept = self.pooled(docs, starts)
        x = torch.from_numpy(np.concatenate(kept).astype(np.float32))
        if self.float16:
            return x, [len(k) for k in kept]
        projected = (x - self.mean) @ self.weight.T
        codes = torch.sign(projected[:, self.lead :]) * self.scale
        if self.lead:
            levels = ((projected[:, : self.lead] - self.low) / self.step).floor().clamp(0, (1 << self.lead_bits) - 1)
            codes = torch.cat([self.low + (levels + 0.5) * self.step, codes], 1)
        return torch.nn.functional.normalize(codes, dim=1), [len(k) for k in kept]

    def query(self, q: torch.Tensor) -> torch.Tensor:
        return q if self.float16 else torch.nn.functional.normalize((q - self.mean) @ self.weight.T, dim=1)

    def _calibration(self, docs, starts) -> Callable[[torch.Tensor], torch.Tensor]:
        """Pairs (coded best, float best over the original tokens): held-out tokens against 360 documents,
        plus (isotonic+self) each token of 200 documents against its own document."""
        gen = np.random.default_rng(0)
        order = gen.permutation(len(docs))[:400]
        held = np.concatenate([docs[i] for i in order[:40]])
        queries = torch.from_numpy(held[gen.permutation(len(held))[:256]].astype(np.float32))
        targets = [docs[i] for i in order[40:]]
        target_starts = [starts[i] for i in order[40:]] if starts is not None else None
        keys, lengths = self.keys(targets, target_starts)
        xs = [_segment_max(keys, lengths, self.query(queries)).reshape(-1)]
        exact = torch.from_numpy(np.concatenate(targets).astype(np.float32))
        ys = [_segment_max(exact, [len(t) for t in targets], queries).reshape(-1)]
        if self.calibration == "isotonic+self":
            for j, doc in enumerate(targets[:200]):
                k, n = self.keys([doc], [target_starts[j]] if target_starts else None)
                xs.append(_segment_max(k, n, self.query(torch.from_numpy(doc.astype(np.float32)))).reshape(-1))
                ys.append(torch.ones(len(doc)))
        x, y = torch.cat(xs).double().numpy(), torch.cat(ys).double().numpy()
        if self.calibration == "linear":
            gain = np.cov(x, y)[0, 1] / np.var(x, ddof=1)
            bias = y.mean() - gain * x.mean()
            return lambda best: best * gain + bias
        bins = np.array_split(np.argsort(x), 64)
        knots_x = np.array([x[b].mean() for b in bins])
        knots_y = isotonic_regression(np.array([y[b].mean() for b in bins]), weights=[len(b) for b in bins]).x
        return lambda best: torch.from_numpy(np.interp(best.double().numpy(), knots_x, knots_y)).float()


LEVERS = [
    Lever("float16", float16=True),
    Lever("pool2-pca256-sign, Ward pooling (before)", pool="ward"),
    Lever("pool2-pca256-sign (default: neighbour runs)"),
    Lever("  + isotonic calibration", calibration="isotonic"),
    Lever("  + isotonic calibration with self matches", calibration="isotonic+self"),
    Lever("  pooling never across words", pool="words"),
    Lever("  no pooling under 16 tokens", min_tokens=16),
    Lever("  leading 32 of 256 dims at 4 bits", lead=32),
    Lever("pca128-sign (no pooling)", pool="none", dim=128),
    Lever("pca128-sign + isotonic with self matches", pool="none", dim=128, calibration="isotonic+self"),
    Lever("pca128, leading 16 dims at 4 bits", pool="none", dim=128, lead=16),
]


def evaluate(lever: Lever, data, doc_ids, docs, starts, q_ids, queries, d_pooled, q_pooled, exhaustive: bool) -> dict:
    """nDCG@10, bytes per original token and the self-duplicate relevance of one fitted lever."""
    keys, lengths = lever.keys(docs, starts)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    pooled = q_pooled @ d_pooled.T
    run = {}
    for i, qid in enumerate(q_ids):
        q = lever.query(torch.from_numpy(queries[i].astype(np.float32)))
        if exhaustive:
            candidates, best = np.arange(len(docs)), _segment_max(keys, lengths, q)
        else:
            candidates = torch.topk(pooled[i], 100).indices.numpy()
            rows = np.concatenate([np.arange(offsets[c], offsets[c + 1]) for c in candidates])
            best = _segment_max(keys[rows], [lengths[c] for c in candidates], q)
        fused = pooled[i, candidates] + lever.calibrate(best).mean(1)
        run[qid] = [doc_ids[candidates[t]] for t in torch.topk(fused, 10).indices.numpy()]
    relevance = []
    for j in np.random.default_rng(1).permutation(len(docs))[:200]:
        k, n = lever.keys([docs[j]], [starts[j]] if starts is not None else None)
        late = lever.calibrate(_segment_max(k, n, lever.query(torch.from_numpy(docs[j].astype(np.float32))))).mean()
        relevance.append(min(1.0, (1.0 + float(late)) / 2))
    return {
        "ndcg@10": round(ndcg_at_k(run, data.qrels, 10), 4),
        "bytes_per_original_token": round(lever.bytes_per_token() * offsets[-1] / sum(len(d) for d in docs), 2),
        "duplicate_relevance_mean": round(float(np.mean(relevance)), 4),
        "duplicate_relevance_min": round(min(relevance), 4),
    }


def word_starts(encoder, texts: Sequence[str]) -> list[list[bool]]:
    """Per document, whether each kept token begins a word (its span does not touch the previous token's)."""
    out = []
    for text in texts:
        spans, _ = encoder.token_spans(text, query=False)
        out.append([j == 0 or spans[j][0] != spans[j - 1][1] for j in range(len(spans))])
    return out


def pooling_cost(encoder, texts: Sequence[str]) -> dict:
    """Process CPU time per document of the forward pass, the neighbour-run pooling and Ward, on the same batch."""
    import os
    import time

    encoder.encode_documents(texts[:4], show_progress=False)  # warm
    load_before = os.getloadavg()[0]
    start = time.process_time()
    tokens = [d.tokens for d in encoder.encode_documents(texts, show_progress=False)]
    forward = time.process_time() - start
    start = time.process_time()
    for _ in range(5):
        pool_documents(tokens, 2)
    runs = (time.process_time() - start) / 5
    start = time.process_time()
    for t in tokens:
        ward_pool(t, 2)
    ward = time.process_time() - start
    n = len(texts)
    return {
        "docs": n,
        "tokens_per_doc": round(float(np.mean([len(t) for t in tokens])), 1),
        "forward_ms_per_doc": round(forward / n * 1e3, 2),
        "runs_ms_per_doc": round(runs / n * 1e3, 3),
        "ward_ms_per_doc": round(ward / n * 1e3, 2),
        "runs_share_of_forward": round(runs / forward, 4),
        "ward_share_of_forward": round(ward / forward, 4),
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
