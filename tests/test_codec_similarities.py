"""TokenCodec.similarities: what scoring and coded evidence maximise, equal to the decoded keys' products."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smart_retrievers.codec import TokenCodec


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32) + 0.3
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("preset", ["pca16-sign", "sign", "pca16-int4", "pca16-int8", "pca16-fp16", "pool2-pca16-sign"])
def test_similarities_equal_the_keys_products(preset):
    rng = np.random.default_rng(3)
    codec = TokenCodec.fit(preset, [_unit(rng, 40, 32) for _ in range(20)])
    codes = codec.encode(_unit(rng, 57, 32))
    projected, _ = codec.query(_unit(rng, 6, 32))
    got = codec.similarities(codes, projected)
    want = codec.keys(codes) @ projected.T
    assert got.shape == (57, 6)
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6)
    assert float(want.std()) > 0.01  # not a degenerate case


def test_similarities_refuse_codes_of_another_width():
    rng = np.random.default_rng(0)
    codec = TokenCodec.fit("pca16-sign", [_unit(rng, 40, 32) for _ in range(20)])
    projected, _ = codec.query(_unit(rng, 2, 32))
    with pytest.raises(ValueError, match="do not fit this codec"):
        codec.similarities(np.zeros((3, codec.bytes_per_token + 1), np.uint8), projected)
