"""Codec levers on cached float states (``compression.py --levers``): what each costs in bytes and buys in nDCG.

Each lever is a variant of the default codec (token pooling to half, PCA-256, sign bits after a
random rotation, gain and bias to the float scale), fitted on the first 1,024 documents and scored
as an index would score it (float queries against the codes, λ = 1), on states encoded once:

* pooling: ``ward`` (the Ward clustering of old), ``cut`` (the neighbour runs in between: cut the
  weakest neighbour links), ``runs`` (the package's: runs of 1-3 neighbours with the least squared
  error), ``words`` (runs that never cross a word boundary), ``none``; ``min_tokens`` keeps
  documents shorter than it whole;
* code: ``lead`` leading PCA components at ``lead_bits`` bits, the rest sign bits;
* calibration: ``linear`` (the package's), ``isotonic`` (a monotone map of each query token's best
  coded cosine, fitted on the same sample), ``isotonic+self`` (the same, its sample holding tokens
  scored against their own documents, whose float maximum is 1).

Per variant: nDCG@10 (SciFact: SMART over the pooled top-100, equal to exhaustive there in every
row of the preset table; flickr8k-captions: exhaustive), bytes per original token, and the
relevance ``(pooled + late) / 2`` of 200 documents scored against their own text (1.0 with float16).

Run as a script, it scores pooling variants of the default codec through the package's own codec and
scoring (``TokenCodec`` fitted on the first 1,024 pooled documents, ``rerank_candidates``, exhaustive
``maxsim_flat``), on the states ``compression.py`` caches:

    python codec_levers.py --sets scifact flickr8k-captions --variants float16 cut default dp4-ward worddp-1

Variants: ``float16``, ``default`` (the package's pooling), ``cut`` (the weakest-link cut before it),
``ward``, ``capped<N>`` (strongest links first, runs of at most N), ``dp<N>[-ward][-slack<B>]`` (the
dynamic programme over runs of 1 to N, summed-cosine or least-squares gain, balance within ±B),
``worddp-<bonus>`` and ``wordruns-<bonus>`` (merges inside one word favoured).
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
        if self.pool == "cut":
            p = weakest_links_cut(docs, 2, min_tokens=self.min_tokens)
            return np.split(p.tokens, np.cumsum(p.lengths)[:-1])
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
    Lever("pool2-pca256-sign, weakest links cut (before)", pool="cut"),
    Lever("pool2-pca256-sign (default: least-squares runs of 1-3)"),
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
    """Process CPU time per document of the forward pass, the package's pooling (the whole batch at once and in
    write batches of 32), the weakest-link cut before it and Ward, on the same batch."""
    import os
    import time

    encoder.encode_documents(texts[:4], show_progress=False)  # warm
    load_before = os.getloadavg()[0]
    start = time.process_time()
    tokens = [d.tokens for d in encoder.encode_documents(texts, show_progress=False)]
    forward = time.process_time() - start

    def per_call(pool, batch: int) -> float:
        start = time.process_time()
        for _ in range(5):
            for first in range(0, len(tokens), batch):
                pool(tokens[first : first + batch], 2)
        return (time.process_time() - start) / 5

    runs, runs32, cut = (
        per_call(pool_documents, len(tokens)),
        per_call(pool_documents, 32),
        per_call(weakest_links_cut, 32),
    )
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
        "runs_batches_of_32_ms_per_doc": round(runs32 / n * 1e3, 3),
        "cut_batches_of_32_ms_per_doc": round(cut / n * 1e3, 3),
        "ward_ms_per_doc": round(ward / n * 1e3, 2),
        "runs_share_of_forward": round(runs / forward, 4),
        "runs_batches_of_32_share_of_forward": round(runs32 / forward, 4),
        "cut_batches_of_32_share_of_forward": round(cut / forward, 4),
        "ward_share_of_forward": round(ward / forward, 4),
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


# ---- pooling variants, scored as an index scores them (issue: pooling within 0.002 of float16) -------------


def _pooled_from_starts(x: np.ndarray, lengths: np.ndarray, first: np.ndarray):
    """A :class:`Pooled` from a flat mask ``first`` (True where a run begins; every document's first token is made one)."""
    from smart_retrievers.codec.pooling import pooled_runs

    doc_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    first = first.copy()
    first[doc_start[lengths > 0]] = True
    return pooled_runs(np.ascontiguousarray(x, dtype=np.float32), lengths, first)


def dp_pool(docs, factor: int = 2, *, longest: int = 3, slack: int = 2, gain: str = "cos", word=None, bonus=0.0):
    """Runs of 1..``longest`` tokens, exactly ⌈L / factor⌉ per document, that maximise the summed gain of the runs
    (``cos``: the norm of the run's sum, i.e. its members' summed cosine to their unit mean; ``ward``: minus the
    run's squared error around its mean). Linear-time DP over (position, balance), the balance
    ``factor · runs - position`` kept within ±``slack``; all documents in lockstep. ``word``: per document, whether
    each token begins a word; runs inside one word gain ``bonus`` per merged link."""
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    x = np.ascontiguousarray(np.concatenate(docs), dtype=np.float32)
    n, top = len(docs), int(lengths.max())
    doc_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    owner = np.repeat(np.arange(n), lengths)
    pos = np.arange(len(x)) - doc_start[owner]
    begins = np.concatenate([np.asarray(w, bool) for w in word]) if word is not None else None
    # gains[s - 1][i, p]: the run of s tokens starting at position p of document i (-inf past its end)
    gains = np.full((longest, n, top), -1e9)
    running = x.astype(np.float64).copy()
    sq = np.ones(len(x))
    inword = np.ones(len(x), bool)
    for s in range(1, longest + 1):
        if s > 1:
            nxt = np.zeros_like(x, dtype=np.float64)
            nxt[: len(x) - s + 1] = x[s - 1 :]
            sq = sq + 2 * np.einsum("ij,ij->i", running, nxt) + 1
            running = running + nxt
            if begins is not None:
                b = np.zeros(len(x), bool)
                b[: len(x) - s + 1] = begins[s - 1 :]
                inword = inword & ~b
        valid = pos + s <= lengths[owner]
        g = np.sqrt(np.clip(sq, 0, None)) if gain == "cos" else sq / s - s
        if begins is not None:
            g = g + bonus * (s - 1) * inword
        gains[s - 1, owner[valid], pos[valid]] = g[valid]
    width = 2 * slack + 1
    value = np.full((top + 1, n, width), -1e18)
    value[0, :, slack] = 0.0
    choice = np.zeros((top + 1, n, width), np.int8)
    for p in range(1, top + 1):
        best = np.full((n, width), -1e18)
        for s in range(1, min(longest, p) + 1):
            shift = factor - s  # balance change of a run of s tokens
            prev = np.full((n, width), -1e18)
            if shift >= 0:
                prev[:, shift:] = value[p - s][:, : width - shift]
            else:
                prev[:, :shift] = value[p - s][:, -shift:]
            cand = prev + gains[s - 1][:, p - s][:, None]
            better = cand > best
            best = np.where(better, cand, best)
            choice[p][better] = s
        value[p] = best
    keep = np.where(lengths < 3, lengths, -(-lengths // factor))
    first = np.zeros(len(x), bool)
    p = lengths.copy()
    b = factor * keep - lengths + slack
    at = np.arange(n)
    whole = lengths < 3
    first[doc_start[whole & (lengths > 0)]] = True
    if whole.any():
        for i in np.flatnonzero(whole):
            first[doc_start[i] : doc_start[i] + lengths[i]] = True
    active = ~whole & (p > 0)
    while active.any():
        i = at[active]
        s = choice[p[i], i, b[i]].astype(np.int64)
        assert (s > 0).all(), "infeasible balance"
        p[i] -= s
        b[i] -= factor - s
        first[doc_start[i] + p[i]] = True
        active = p > 0
        active &= ~whole
    return _pooled_from_starts(x, lengths, first)


def bonus_runs(docs, factor: int = 2, *, word=None, bonus: float = 1.0):
    """The package's neighbour runs with links inside one word made ``bonus`` stronger (sub-words merge first)."""
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    x = np.ascontiguousarray(np.concatenate(docs), dtype=np.float32)
    owner = np.repeat(np.arange(len(docs)), lengths)
    keep = np.where(lengths < 3, lengths, -(-lengths // factor))
    inside = owner[1:] == owner[:-1]
    sim = np.einsum("ij,ij->i", x[:-1], x[1:]).astype(np.float64)
    if word is not None:
        sim = sim + bonus * ~np.concatenate([np.asarray(w, bool) for w in word])[1:]
    order = np.lexsort((sim, ~inside, owner[:-1]))
    rank = np.empty(len(order), np.int64)
    first_link = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rank[order] = np.arange(len(order)) - first_link[owner[:-1][order]]
    cut = ~inside | (rank < keep[owner[:-1]] - 1)
    return _pooled_from_starts(x, lengths, np.concatenate([[True], cut]))


def weakest_links_cut(docs, factor: int = 2, *, min_tokens: int = 3):
    """The pooling before this one: cut each document's ⌈L / factor⌉ - 1 weakest neighbour links, whatever the
    length of the runs between the cuts (kept here as the reference it is measured against)."""
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    x = np.ascontiguousarray(np.concatenate(docs), dtype=np.float32)
    keep = np.where(lengths < max(min_tokens, 2), lengths, -(-lengths // factor))
    owner = np.repeat(np.arange(len(docs)), lengths)
    inside = owner[1:] == owner[:-1]
    similarity = np.einsum("ij,ij->i", x[:-1], x[1:])
    order = np.lexsort((similarity, ~inside, owner[:-1]))
    rank = np.empty(len(order), dtype=np.int64)
    first_link = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rank[order] = np.arange(len(order)) - first_link[owner[:-1][order]]
    cut = ~inside | (rank < keep[owner[:-1]] - 1)
    return _pooled_from_starts(x, lengths, np.concatenate([[True], cut]))


def capped_runs(docs, factor: int = 2, *, longest: int = 3):
    """Strongest links merged first, skipping any that would make a run longer than ``longest`` (reference, per doc)."""
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    x = np.ascontiguousarray(np.concatenate(docs), dtype=np.float32)
    first = np.ones(len(x), bool)
    at = 0
    for d in docs:
        m = len(d)
        if m >= 3:
            sim = np.einsum("ij,ij->i", d[:-1], d[1:])
            need = m - -(-m // factor)
            left = list(range(m))  # run start of each token
            size = {j: 1 for j in range(m)}
            merged = np.zeros(m - 1, bool)
            for link in np.argsort(-sim, kind="stable"):
                if need == 0:
                    break
                a, b = left[link], left[link + 1]
                if size[a] + size[b] > longest:
                    continue
                for j in range(b, b + size[b]):
                    left[j] = a
                size[a] += size.pop(b)
                merged[link] = True
                need -= 1
            if need:  # no capped merge left: the weakest cuts that remain are dropped in order of strength
                for link in np.argsort(-sim, kind="stable"):
                    if need == 0:
                        break
                    if not merged[link]:
                        merged[link] = True
                        need -= 1
            first[at + 1 : at + m] = ~merged
        at += m
    return _pooled_from_starts(x, lengths, first)


def ward_pooled(docs, factor: int = 2):
    """The former Ward pooling as a :class:`Pooled` (runs are not contiguous: ``starts`` is meaningless)."""
    from smart_retrievers.codec import Pooled

    kept = [ward_pool(d, factor) if len(d) >= 3 else d for d in docs]
    return Pooled(np.concatenate(kept).astype(np.float32), np.array([len(k) for k in kept]), np.zeros(0, np.int64))


def score_pooling(name: str, pool, preset: str, data, doc_ids, docs, q_ids, q_pooled, q_tokens, d_pooled, exhaustive):
    """nDCG@10 of SMART rerank (pooled top-100) and optionally exhaustive with the codec fitted on the first 1,024
    documents pooled by ``pool`` (``pool(docs) -> Pooled``; None: float16), as ``compare`` scores; bytes/orig token."""
    import time

    from smart_retrievers.codec import TokenCodec
    from smart_retrievers.evaluation.metrics import ndcg_at_k as _ndcg
    from smart_retrievers.scoring import PackedTokens, fuse, maxsim_flat, rerank_candidates

    original = sum(len(d) for d in docs)
    start = time.process_time()
    if pool is None:
        codec, d_tokens, stored, bytes_per = None, PackedTokens.from_list(docs), original, 768
    else:
        codec = TokenCodec.fit(preset, pool(docs[:1024]).tokens)
        p = pool(docs)
        codes = codec.encode(p.tokens)
        d_tokens = PackedTokens(values=torch.from_numpy(codes), offsets=np.concatenate([[0], np.cumsum(p.lengths)]))
        stored, bytes_per = len(codes), codec.bytes_per_token
    pooled, ranked = rerank_candidates(q_pooled, q_tokens, d_pooled, d_tokens, codec=codec)
    row = {
        "set": name,
        "variant": pool.__name__ if hasattr(pool, "__name__") else str(pool),
        "bytes_per_original_token": round(bytes_per * stored / original, 2),
        "rerank": round(_ndcg({q: [doc_ids[i] for i in r[:10]] for q, r in zip(q_ids, ranked)}, data.qrels, 10), 4),
    }
    if exhaustive:
        top = []
        for first in range(0, len(q_tokens), 32):
            group = PackedTokens.from_list(q_tokens[first : first + 32])
            late = maxsim_flat(
                group.values, d_tokens.values, d_tokens.lengths, query_lengths=group.lengths, codec=codec
            )
            top += torch.topk(fuse(pooled[first : first + len(group)], late), 10, dim=1).indices.tolist()
        row["exhaustive"] = round(_ndcg({q: [doc_ids[i] for i in r] for q, r in zip(q_ids, top)}, data.qrels, 10), 4)
    # an exact duplicate: 200 documents scored against their own text, (pooled + late) / 2 with pooled = 1
    own = []
    for j in np.random.default_rng(1).permutation(len(docs))[:200]:
        rows = slice(int(d_tokens.offsets[j]), int(d_tokens.offsets[j + 1]))
        late = maxsim_flat(docs[j], d_tokens.values[rows], [rows.stop - rows.start], codec=codec)
        own.append(min(1.0, (1.0 + float(late[0])) / 2))
    row["duplicate_mean"], row["duplicate_min"] = round(float(np.mean(own)), 4), round(min(own), 4)
    row["cpu_s"] = round(time.process_time() - start, 1)
    return row


def load_set(name: str, encoder):
    """A set's cached states, as ``compression.py`` encodes them (all of the split's queries, all documents)."""
    from _data import require

    from smart_retrievers.evaluation import load_beir
    from smart_retrievers.training import encode_states

    data = load_beir(require(name))
    doc_ids, q_ids = list(data.corpus), list(data.queries)
    texts = [data.doc_text(d) for d in doc_ids]
    d_states = encode_states(encoder, doc_ids, texts, kind="document")
    q_states = encode_states(encoder, q_ids, [data.queries[q] for q in q_ids], kind="query")
    docs = [np.asarray(d_states.tokens.item(i), dtype=np.float32) for i in range(len(doc_ids))]
    q_tokens = [np.asarray(q_states.tokens.item(i), dtype=np.float32) for i in range(len(q_ids))]
    return data, doc_ids, docs, texts, q_ids, q_states.pooled, q_tokens, d_states.pooled


if __name__ == "__main__":
    import argparse
    import functools
    import json

    from smart_retrievers.codec import DEFAULT_COMPRESSION
    from smart_retrievers.encoders import default_encoder

    parser = argparse.ArgumentParser(description="pooling variants of the default codec on cached states")
    parser.add_argument("--sets", nargs="+", default=["scifact", "flickr8k-captions"])
    parser.add_argument("--variants", nargs="+", default=["float16", "cut", "default"])
    parser.add_argument("--exhaustive", action="store_true", help="exhaustive SMART too (flickr always)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encoder = default_encoder(device="cpu")
    for set_name in args.sets:
        data, doc_ids, docs, texts, q_ids, q_pooled, q_tokens, d_pooled = load_set(set_name, encoder)
        starts = None
        for variant in args.variants:
            if ("word" in variant) and starts is None:
                starts = word_starts(encoder, texts)
            pools = {
                "float16": None,
                "default": lambda d: pool_documents(d, 2),
                "cut": weakest_links_cut,
                "ward": ward_pooled,
                "capped3": capped_runs,
                "capped2": functools.partial(capped_runs, longest=2),
                "capped4": functools.partial(capped_runs, longest=4),
            }
            if variant.startswith("dp"):  # dp<longest>[-ward][-slack<B>]
                parts = variant[2:].split("-")
                slack = [int(x[5:]) for x in parts if x.startswith("slack")]
                pools[variant] = functools.partial(
                    dp_pool, longest=int(parts[0]), gain="ward" if "ward" in parts else "cos", slack=(slack or [2])[0]
                )
            if variant.startswith("wordruns"):
                bonus = float(variant.split("-")[1]) if "-" in variant else 1.0
                index = {id(d): j for j, d in enumerate(docs)}
                pools[variant] = lambda d, b=bonus, w=starts, at=index: bonus_runs(
                    d, word=[w[at[id(t)]] for t in d], bonus=b
                )
            if variant.startswith("worddp"):
                bonus = float(variant.split("-")[1]) if "-" in variant else 1.0
                index = {id(d): j for j, d in enumerate(docs)}
                pools[variant] = lambda d, b=bonus, w=starts, at=index: dp_pool(
                    d, word=[w[at[id(t)]] for t in d], bonus=b, gain="ward"
                )
            row = score_pooling(
                set_name, pools[variant], DEFAULT_COMPRESSION, data, doc_ids, docs, q_ids, q_pooled, q_tokens,
                d_pooled, args.exhaustive or len(docs) <= 2000,
            )  # fmt: skip
            row["variant"] = variant
            print(json.dumps(row), flush=True)
