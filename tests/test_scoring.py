"""Tests for smart_retrievers.scoring: the production path (maxsim_flat, rank, fuse, PackedTokens) against a
plain-loop numpy reference and the padded oracle of tests/oracles.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracles import pad_tokens, smart_scores

from smart_retrievers.scoring import PackedTokens, fuse, maxsim_flat, rank

TOL = 1e-5


def _unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _ragged(rng: np.random.Generator, lengths: list[int], dim: int) -> list[np.ndarray]:
    return [_unit(rng, n, dim) if n else np.zeros((0, dim), np.float32) for n in lengths]


def _ref_late(q_tokens: np.ndarray, q_pooled: np.ndarray, d_tokens: np.ndarray, d_pooled: np.ndarray) -> float:
    """Mean over query tokens of the max dot over doc tokens; empty token sets use the pooled vector."""
    q = q_tokens if len(q_tokens) else q_pooled[None]
    d = d_tokens if len(d_tokens) else d_pooled[None]
    total = 0.0
    for qi in q.astype(np.float64):
        total += max(float(np.dot(qi, dj)) for dj in d.astype(np.float64))
    return total / len(q)


def _ref_scores(q_pooled, q_tokens, d_pooled, d_tokens, lambda_pool=1.0, lambda_late=1.0) -> np.ndarray:
    """(Q, N) fused reference scores."""
    out = np.zeros((len(q_pooled), len(d_pooled)))
    for a, (qp, qt) in enumerate(zip(q_pooled, q_tokens)):
        for b, (dp, dt) in enumerate(zip(d_pooled, d_tokens)):
            pooled = float(np.dot(qp.astype(np.float64), dp.astype(np.float64)))
            out[a, b] = lambda_pool * pooled + lambda_late * _ref_late(qt, qp, dt, dp)
    return out


def _case(seed: int, q_lengths: list[int], d_lengths: list[int], dim: int):
    rng = np.random.default_rng(seed)
    return (
        _unit(rng, len(q_lengths), dim),
        _ragged(rng, q_lengths, dim),
        _unit(rng, len(d_lengths), dim),
        _ragged(rng, d_lengths, dim),
    )


CASES = [
    pytest.param(0, [5], [3, 1, 7, 2], 8, id="single-query"),
    pytest.param(1, [1, 4, 9], [1, 1, 1], 16, id="one-token-docs"),
    pytest.param(2, [1], [6, 2, 11, 1, 4], 4, id="one-token-query"),
    pytest.param(3, [0, 3], [0, 5, 0, 2], 8, id="empty-falls-back-to-pooled"),
    pytest.param(4, [7, 2, 5, 1], [13, 4, 1, 9, 3, 6, 2], 32, id="many"),
]


def _filled(tokens: list[np.ndarray], pooled: np.ndarray) -> list[np.ndarray]:
    """Empty token sets replaced by the pooled vector (production items always hold a token)."""
    return [t if len(t) else pooled[i][None] for i, t in enumerate(tokens)]


@pytest.mark.parametrize("seed,q_lengths,d_lengths,dim", CASES)
def test_the_oracle_matches_the_loop_reference(seed, q_lengths, d_lengths, dim):
    qp, qt, dp, dt = _case(seed, q_lengths, d_lengths, dim)
    scores = smart_scores(qp, qt, dp, dt, lambda_pool=0.3, lambda_late=0.7)
    np.testing.assert_allclose(scores.pooled.numpy(), qp.astype(np.float64) @ dp.astype(np.float64).T, atol=TOL)
    np.testing.assert_allclose(scores.late.numpy(), _ref_scores(qp, qt, dp, dt, 0.0, 1.0), atol=TOL)
    np.testing.assert_allclose(scores.fused.numpy(), _ref_scores(qp, qt, dp, dt, 0.3, 0.7), atol=TOL)


@pytest.mark.parametrize("seed,q_lengths,d_lengths,dim", CASES)
def test_maxsim_flat_matches_the_loop_reference(seed, q_lengths, d_lengths, dim):
    qp, qt, dp, dt = _case(seed, q_lengths, d_lengths, dim)
    queries, docs = PackedTokens.from_list(_filled(qt, qp)), PackedTokens.from_list(_filled(dt, dp))
    late = maxsim_flat(queries.values, docs.values, docs.lengths, query_lengths=queries.lengths)
    assert late.shape == (len(qp), len(dp)) and late.dtype == torch.float32
    np.testing.assert_allclose(late.numpy(), _ref_scores(qp, qt, dp, dt, 0.0, 1.0), atol=TOL)
    one = maxsim_flat(queries.item(0), docs.values, docs.lengths)  # one query: (N,)
    np.testing.assert_allclose(one.numpy(), late[0].numpy(), atol=1e-6)


@pytest.mark.parametrize("seed,q_lengths,d_lengths,dim", CASES)
def test_rank_equals_the_padded_oracle(seed, q_lengths, d_lengths, dim):
    qp, qt, dp, dt = _case(seed, q_lengths, d_lengths, dim)
    docs = PackedTokens.from_list(_filled(dt, dp))
    for i in range(len(qp)):
        query = _filled(qt, qp)[i]
        got = rank(qp[i], query, dp, docs, lambda_pool=0.3, lambda_late=0.7, k=2)
        expected = smart_scores(qp[i], query, dp, dt, lambda_pool=0.3, lambda_late=0.7)
        for field in ("fused", "pooled", "late"):
            torch.testing.assert_close(getattr(got, field), getattr(expected, field), atol=TOL, rtol=0)
        assert got.order == torch.sort(got.fused, descending=True, stable=True).indices[:2].tolist()


@pytest.mark.parametrize("chunk_tokens", [1, 3, 7, 1 << 16])
def test_chunking_does_not_change_results(chunk_tokens):
    qp, qt, dp, dt = _case(8, [3, 5], [2, 7, 1, 4, 9, 3, 6, 5, 1, 2], 8)
    queries, docs = PackedTokens.from_list(qt), PackedTokens.from_list(dt)
    late = maxsim_flat(
        queries.values, docs.values, docs.lengths, query_lengths=queries.lengths, chunk_tokens=chunk_tokens
    )
    np.testing.assert_allclose(late.numpy(), _ref_scores(qp, qt, dp, dt, 0.0, 1.0), atol=TOL)


def test_negative_similarities_are_kept():
    """Every doc token points away from the query: the max is the least negative dot, never 0."""
    dim = 4
    query = np.eye(dim, dtype=np.float32)[:1]  # (1, dim), e_0
    long_doc = -np.eye(dim, dtype=np.float32)[[0, 0, 0]]  # 3 tokens, dot -1
    short_doc = np.array([[-0.6, 0.8, 0.0, 0.0]], dtype=np.float32)  # 1 token, dot -0.6
    late = maxsim_flat(query, np.concatenate([long_doc, short_doc]), [3, 1], chunk_tokens=1)
    np.testing.assert_allclose(late.numpy(), [-1.0, -0.6], atol=TOL)


def test_float16_close_to_float32():
    qp, qt, dp, dt = _case(10, [4], [5, 1, 8, 3, 2], 32)
    full = PackedTokens.from_list(dt)
    half = PackedTokens.from_list([t.astype(np.float16) for t in dt])
    exact = rank(qp[0], qt[0], dp, full)
    coarse = rank(qp[0], qt[0].astype(np.float16), dp.astype(np.float16), half)
    assert coarse.fused.dtype == torch.float32
    np.testing.assert_allclose(coarse.fused.numpy(), exact.fused.numpy(), atol=1e-3)


def test_torch_and_readonly_inputs_match_numpy():
    qp, qt, dp, dt = _case(11, [3], [2, 4], 8)
    expected = rank(qp[0], qt[0], dp, PackedTokens.from_list(dt))
    as_torch = rank(
        torch.from_numpy(qp[0]),
        torch.from_numpy(qt[0]),
        torch.from_numpy(dp),
        PackedTokens.from_list([torch.from_numpy(t) for t in dt]),
    )
    torch.testing.assert_close(as_torch.fused, expected.fused, atol=0, rtol=0)
    for arr in (qp, dp, *dt):
        arr.flags.writeable = False
    readonly = rank(qp[0], qt[0], dp, PackedTokens.from_list(dt))
    torch.testing.assert_close(readonly.fused, expected.fused, atol=0, rtol=0)


def test_lambda_late_zero_gives_pooled_exactly_without_tokens():
    qp, qt, dp, dt = _case(12, [3], [4, 1, 6], 8)
    ranking = rank(qp[0], qt[0], dp, None, lambda_late=0.0)
    assert torch.equal(ranking.fused, ranking.pooled)
    assert torch.equal(ranking.late, torch.zeros(3))  # skipped, reported as 0
    assert torch.equal(rank(qp[0], qt[0], dp, None, lambda_pool=0.5, lambda_late=0.0).fused, 0.5 * ranking.pooled)
    with pytest.raises(ValueError, match="doc_tokens are needed"):
        rank(qp[0], qt[0], dp, None)


def test_lambda_pool_zero_gives_late():
    qp, qt, dp, dt = _case(13, [3], [4, 1, 6], 8)
    ranking = rank(qp[0], qt[0], dp, PackedTokens.from_list(dt), lambda_pool=0.0)
    assert torch.equal(ranking.fused, ranking.late)


def test_rank_checks_the_candidate_count():
    qp, qt, dp, dt = _case(16, [3], [2, 4, 1], 8)
    with pytest.raises(ValueError, match="2 token entries for 3 pooled vectors"):
        rank(qp[0], qt[0], dp, PackedTokens.from_list(dt[:2]))


def test_fuse_weights_and_shape_check():
    pooled = torch.tensor([0.5, -0.25])
    late = torch.tensor([0.1, 0.3])
    torch.testing.assert_close(fuse(pooled, late, 2.0, 3.0), torch.tensor([1.3, 0.4]))
    with pytest.raises(ValueError, match="shape"):
        fuse(pooled, late[:1])


def test_fuse_zero_weight_drops_term_even_if_non_finite():
    finite = torch.tensor([0.5, -0.25])
    bad = torch.tensor([float("inf"), float("nan")])
    assert torch.equal(fuse(finite, bad, lambda_late=0.0), finite)
    assert torch.equal(fuse(bad, finite, lambda_pool=0.0), finite)


def test_packed_tokens_padded_equals_the_oracles_padding():
    """``PackedTokens.padded`` (the training loss's document block) pads as the oracle does."""
    rng = np.random.default_rng(14)
    tokens = [_unit(rng, 2, 4).astype(np.float16), _unit(rng, 1, 4), _unit(rng, 5, 4)]
    block, mask = PackedTokens.from_list([t.astype(np.float32) for t in tokens]).padded()
    expected_block, expected_mask = pad_tokens(tokens)
    assert block.dtype == torch.float32 and mask.dtype == torch.bool
    assert torch.equal(mask, expected_mask) and mask.sum(dim=1).tolist() == [2, 1, 5]
    torch.testing.assert_close(block, expected_block)
    assert torch.count_nonzero(block[~mask]) == 0


def test_maxsim_flat_checks_its_inputs():
    rng = np.random.default_rng(7)
    docs = np.concatenate(_ragged(rng, [1, 5, 3, 9, 2], 8))
    query = _unit(rng, 4, 8)
    with pytest.raises(ValueError, match="lengths"):
        maxsim_flat(query, docs, [1, 5, 3, 9, 3])
    with pytest.raises(ValueError, match="lengths"):
        maxsim_flat(query, docs[:1], [0, 1])
    with pytest.raises(ValueError, match="one dim"):
        maxsim_flat(query[:, :4], docs, [1, 5, 3, 9, 2])
    with pytest.raises(ValueError, match="query lengths"):
        maxsim_flat(query, docs, [1, 5, 3, 9, 2], query_lengths=[2, 3])
