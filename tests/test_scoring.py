"""Tests for smart_retrievers.scoring against a plain-loop numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smart_retrievers.scoring import Scores, fuse, maxsim, pad_tokens, smart_scores

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


@pytest.mark.parametrize("seed,q_lengths,d_lengths,dim", CASES)
def test_smart_scores_match_loop_reference(seed, q_lengths, d_lengths, dim):
    qp, qt, dp, dt = _case(seed, q_lengths, d_lengths, dim)
    scores = smart_scores(qp, qt, dp, dt, lambda_pool=0.3, lambda_late=0.7)
    assert isinstance(scores, Scores)
    assert scores.fused.shape == (len(qp), len(dp))
    assert scores.fused.dtype == torch.float32
    expected_pooled = qp.astype(np.float64) @ dp.astype(np.float64).T
    np.testing.assert_allclose(scores.pooled.numpy(), expected_pooled, atol=TOL)
    np.testing.assert_allclose(scores.late.numpy(), _ref_scores(qp, qt, dp, dt, 0.0, 1.0), atol=TOL)
    np.testing.assert_allclose(scores.fused.numpy(), _ref_scores(qp, qt, dp, dt, 0.3, 0.7), atol=TOL)


@pytest.mark.parametrize("seed,q_lengths,d_lengths,dim", CASES)
def test_maxsim_matches_loop_reference(seed, q_lengths, d_lengths, dim):
    qp, qt, dp, dt = _case(seed, q_lengths, d_lengths, dim)
    q_block, q_mask = pad_tokens(qt, qp)
    d_block, d_mask = pad_tokens(dt, dp)
    late = maxsim(q_block, q_mask, d_block, d_mask)
    np.testing.assert_allclose(late.numpy(), _ref_scores(qp, qt, dp, dt, 0.0, 1.0), atol=TOL)


def test_single_query_returns_1d():
    qp, qt, dp, dt = _case(5, [4], [2, 3, 1], 8)
    scores = smart_scores(qp[0], qt[0], dp, dt)
    for tensor in (scores.fused, scores.pooled, scores.late):
        assert tensor.shape == (3,)
    np.testing.assert_allclose(scores.fused.numpy(), _ref_scores(qp, qt, dp, dt)[0], atol=TOL)


def test_multi_query_equals_stacked_single_queries():
    qp, qt, dp, dt = _case(6, [3, 1, 6], [4, 2, 8, 1, 5], 16)
    multi = smart_scores(qp, qt, dp, dt, lambda_pool=0.5, lambda_late=2.0)
    singles = [smart_scores(qp[i], qt[i], dp, dt, lambda_pool=0.5, lambda_late=2.0) for i in range(len(qp))]
    for field in ("fused", "pooled", "late"):
        stacked = torch.stack([getattr(s, field) for s in singles])
        torch.testing.assert_close(getattr(multi, field), stacked, atol=1e-6, rtol=0)


def test_padded_doc_tuple_equals_ragged_docs():
    qp, qt, dp, dt = _case(7, [3], [4, 0, 2], 8)
    ragged = smart_scores(qp[0], qt[0], dp, dt)
    padded = smart_scores(qp[0], qt[0], dp, pad_tokens(dt, dp))
    torch.testing.assert_close(padded.fused, ragged.fused, atol=0, rtol=0)


@pytest.mark.parametrize("chunk_size", [1, 3, 1024])
def test_chunking_does_not_change_results(chunk_size):
    qp, qt, dp, dt = _case(8, [3, 5], [2, 7, 1, 4, 9, 3, 6, 5, 1, 2], 8)
    baseline = smart_scores(qp, qt, dp, dt, chunk_size=1024)
    chunked = smart_scores(qp, qt, dp, dt, chunk_size=chunk_size)
    torch.testing.assert_close(chunked.late, baseline.late, atol=1e-6, rtol=0)
    np.testing.assert_allclose(chunked.late.numpy(), _ref_scores(qp, qt, dp, dt, 0.0, 1.0), atol=TOL)


def test_chunks_bound_the_docs_per_einsum(monkeypatch):
    qp, qt, dp, dt = _case(17, [2], [3] * 10, 8)
    chunk_docs = []
    real_einsum = torch.einsum

    def spy(equation, *operands):
        chunk_docs.append(operands[1].shape[0])
        return real_einsum(equation, *operands)

    monkeypatch.setattr(torch, "einsum", spy)
    smart_scores(qp[0], qt[0], dp, dt, chunk_size=3)
    assert chunk_docs == [3, 3, 3, 1]


def test_masks_are_respected_even_with_garbage_padding():
    qp, qt, dp, dt = _case(18, [2, 5], [3, 1, 4], 8)
    q_block, q_mask = pad_tokens(qt, qp)
    d_block, d_mask = pad_tokens(dt, dp)
    q_block[~q_mask] = 10.0  # huge values in masked slots would dominate max and mean if used
    d_block[~d_mask] = 10.0
    late = maxsim(q_block, q_mask, d_block, d_mask)
    np.testing.assert_allclose(late.numpy(), _ref_scores(qp, qt, dp, dt, 0.0, 1.0), atol=TOL)


def test_padding_never_wins_the_max():
    # Every doc token points away from the query, so every real similarity is negative;
    # the zero padding (dot 0) of the short doc must not be picked as the max.
    dim = 4
    query = np.eye(dim, dtype=np.float32)[:1]  # (1, dim), e_0
    long_doc = -np.eye(dim, dtype=np.float32)[[0, 0, 0]]  # 3 tokens, dot -1
    short_doc = np.array([[-0.6, 0.8, 0.0, 0.0]], dtype=np.float32)  # 1 token, dot -0.6, padded to 3
    scores = smart_scores(query[0], query, np.stack([-query[0], short_doc[0]]), [long_doc, short_doc])
    np.testing.assert_allclose(scores.late.numpy(), [-1.0, -0.6], atol=TOL)


def test_padded_query_positions_do_not_count_in_mean():
    qp, qt, dp, dt = _case(9, [1, 6], [3, 2], 8)
    q_block, q_mask = pad_tokens(qt, qp)
    late = maxsim(q_block, q_mask, *pad_tokens(dt, dp))
    alone = maxsim(*pad_tokens(qt[:1], qp[:1]), *pad_tokens(dt, dp))
    torch.testing.assert_close(late[0], alone[0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(late.numpy(), _ref_scores(qp, qt, dp, dt, 0.0, 1.0), atol=TOL)


def test_float16_close_to_float32():
    qp, qt, dp, dt = _case(10, [4, 7], [5, 1, 8, 3, 0], 32)
    full = smart_scores(qp, qt, dp, dt)
    half = smart_scores(qp, [t.astype(np.float16) for t in qt], dp, [t.astype(np.float16) for t in dt])
    assert half.fused.dtype == torch.float32
    np.testing.assert_allclose(half.fused.numpy(), full.fused.numpy(), atol=1e-3)


def test_torch_and_readonly_inputs_match_numpy():
    qp, qt, dp, dt = _case(11, [3], [2, 4], 8)
    expected = smart_scores(qp[0], qt[0], dp, dt)
    as_torch = smart_scores(
        torch.from_numpy(qp[0]), torch.from_numpy(qt[0]), torch.from_numpy(dp), [torch.from_numpy(t) for t in dt]
    )
    torch.testing.assert_close(as_torch.fused, expected.fused, atol=0, rtol=0)
    for arr in (qp, dp, *dt):
        arr.flags.writeable = False
    readonly = smart_scores(qp[0], qt[0], dp, dt)
    torch.testing.assert_close(readonly.fused, expected.fused, atol=0, rtol=0)


def test_lambda_late_zero_gives_pooled_exactly():
    qp, qt, dp, dt = _case(12, [3, 2], [4, 1, 6], 8)
    scores = smart_scores(qp, qt, dp, dt, lambda_late=0.0)
    assert torch.equal(scores.fused, scores.pooled)
    assert not torch.equal(scores.late, torch.zeros_like(scores.late))  # late is still computed
    assert torch.equal(smart_scores(qp, qt, dp, dt, lambda_pool=0.5, lambda_late=0.0).fused, 0.5 * scores.pooled)


def test_lambda_pool_zero_gives_late():
    qp, qt, dp, dt = _case(13, [3, 2], [4, 1, 6], 8)
    scores = smart_scores(qp, qt, dp, dt, lambda_pool=0.0)
    assert torch.equal(scores.fused, scores.late)


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


def test_pad_tokens_shapes_and_fallback():
    rng = np.random.default_rng(14)
    pooled = _unit(rng, 3, 4)
    tokens = [_unit(rng, 2, 4).astype(np.float16), np.zeros((0, 4), np.float16), _unit(rng, 5, 4)]
    block, mask = pad_tokens(tokens, pooled)
    assert block.shape == (3, 5, 4) and block.dtype == torch.float32
    assert mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [2, 1, 5]
    torch.testing.assert_close(block[1, 0], torch.from_numpy(pooled[1]))
    assert torch.count_nonzero(block[~mask]) == 0


def test_pad_tokens_all_empty_has_length_one():
    pooled = np.eye(3, dtype=np.float32)[:2]
    block, mask = pad_tokens([np.zeros((0, 3), np.float32)] * 2, pooled)
    assert block.shape == (2, 1, 3)
    assert mask.all()


def test_empty_tokens_without_pooled_raise():
    with pytest.raises(ValueError, match="empty"):
        pad_tokens([np.ones((2, 4), np.float32), np.zeros((0, 4), np.float32)])


def test_dim_mismatch_raises():
    qp, qt, dp, dt = _case(15, [3], [2, 4], 8)
    with pytest.raises(ValueError, match="dim"):
        smart_scores(qp[0][:4], qt[0], dp, dt)
    with pytest.raises(ValueError, match="dim"):
        smart_scores(qp[0], qt[0][:, :4], dp, dt)
    with pytest.raises(ValueError, match="dim"):
        smart_scores(qp[0], qt[0], dp, [dt[0], dt[1][:, :4]])
    with pytest.raises(ValueError, match="dim"):
        mask = torch.ones(1, 2, dtype=torch.bool)
        maxsim(torch.zeros(1, 2, 8), mask, torch.zeros(1, 2, 4), mask)


def test_doc_count_mismatch_raises():
    qp, qt, dp, dt = _case(16, [3], [2, 4, 1], 8)
    with pytest.raises(ValueError, match="doc_tokens has 2 entries but doc_pooled has 3 rows"):
        smart_scores(qp[0], qt[0], dp, dt[:2])
    block, mask = pad_tokens(dt, dp)
    with pytest.raises(ValueError, match="do not match doc_pooled"):
        smart_scores(qp[0], qt[0], dp[:2], (block, mask))


def test_maxsim_rejects_fully_masked_rows_and_bad_chunk():
    tokens = torch.zeros(2, 3, 4)
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="unmasked"):
        maxsim(tokens, mask, tokens, torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="chunk_size"):
        maxsim(tokens, mask, tokens, mask, chunk_size=0)


def test_maxsim_flat_equals_padded_maxsim():
    from smart_retrievers.scoring import maxsim_flat

    rng = np.random.default_rng(7)
    lengths = [1, 5, 3, 9, 2]
    docs = [rng.standard_normal((n, 8)).astype(np.float32) for n in lengths]
    docs = [d / np.linalg.norm(d, axis=1, keepdims=True) for d in docs]
    query = rng.standard_normal((4, 8)).astype(np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    block, mask = pad_tokens(docs)
    expected = maxsim(torch.from_numpy(query)[None], torch.ones(1, 4, dtype=torch.bool), block, mask)[0]
    got = maxsim_flat(query, np.concatenate(docs), lengths)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="lengths"):
        maxsim_flat(query, np.concatenate(docs), [1, 5, 3, 9, 3])
    with pytest.raises(ValueError, match="lengths"):
        maxsim_flat(query, np.concatenate(docs)[:1], [0, 1])
