"""Token codecs: document token states as a few packed bytes per token, scored asymmetrically.

A codec is a projection (none, or PCA fitted on the table's own document tokens, then a
random rotation for sign codes) followed by a per-dimension code: fp16, 8/4/2-bit uniform
scalar quantisation, or 1-bit signs with a per-dimension scale. Queries stay float: a query
token ``q`` is scored against a document token's code ``c`` as

    q · h_d  ≈  bias + gain · cos(W (q - μ), decode(c))

where ``μ`` is the fitted mean and ``W`` the projection (rotation included). The cosine of
the centred projections ranks better than their raw dot; ``gain`` and ``bias`` are fitted
by least squares on the sample so that late scores stay on the float scale that λ fusion
expects. Presets are named ``"none"`` (fp16 states, no codec) or
``"[pool<F>-][pca<R>-]<code>"`` with code in ``fp16 int8 int4 int2 sign``, e.g. ``"pca128-sign"``
(the default: 16 B per token), ``"pool2-pca256-sign"`` (16 B per original token, documents pooled to half
first by :mod:`.pooling`) or ``"pca64-sign"`` (8 B/token).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import torch

from .pooling import pool_documents

__all__ = ["CODES", "DEFAULT_COMPRESSION", "TokenCodec", "parse_preset"]

CODES: dict[str, int] = {"fp16": 16, "int8": 8, "int4": 4, "int2": 2, "sign": 1}
"""Code name → bits per (projected) dimension."""
DEFAULT_COMPRESSION = "pca128-sign"
"""The preset of new tables: 128 sign bits per token (16 B), every token kept, with the codec's monotone map.

Measured (BENCHMARKS.md "Token storage"): SMART nDCG@10 within 0.0012 of float16 states on SciFact and
flickr8k-captions, and a document scored against its own text at relevance 0.998-0.9995."""
_QUANTILE = 0.002  # per-dimension range of the scalar codes: [q, 1 - q] quantiles of the sample
_ROTATION_SEED = 20260
_PRESET = re.compile(r"^(?:pool(?P<pool>\d+)-)?(?:pca(?P<dim>\d+)-)?(?P<code>fp16|int8|int4|int2|sign)$")


def parse_preset(preset: str) -> tuple[int, int | None, str]:
    """``"pool2-pca256-sign"`` → ``(2, 256, "sign")``; ``"int4"`` → ``(1, None, "int4")``; "none" is not a codec."""
    match = _PRESET.match(preset) if isinstance(preset, str) else None
    if match is None:
        raise ValueError(
            f"unknown compression preset {preset!r}: use 'none' or '[pool<F>-][pca<R>-]<code>' with code one of "
            f"{sorted(CODES)}, e.g. {DEFAULT_COMPRESSION!r}"
        )
    pool, dim = match.group("pool"), match.group("dim")
    if dim is not None and int(dim) < 8:
        raise ValueError(f"compression preset {preset!r}: a PCA projection needs at least 8 dimensions")
    if pool is not None and not 2 <= int(pool) <= 8:
        raise ValueError(f"compression preset {preset!r}: token pooling takes a factor from 2 to 8")
    return (int(pool) if pool else 1), (int(dim) if dim else None), match.group("code")


def _random_rotation(dim: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(_ROTATION_SEED + dim)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).numpy()


@dataclass(frozen=True)
class TokenCodec:
    """A fitted token codec; build one with :meth:`fit`, store it with :meth:`to_json`.

    Attributes:
        preset: the preset name it was fitted for.
        dim: the token-state dimension it takes.
        mean: (dim,) mean subtracted before projecting (zeros without PCA).
        weight: (out_dim, dim) projection (rotation included); identity without PCA or rotation.
        low / step: (out_dim,) range start and step of the scalar codes; for signs, ``step``
            is each dimension's scale (mean |value|); unused for fp16.
        gain / bias: the affine map from the codec's cosine to the float similarity scale.
        knots: (2, K) a monotone map from a query token's best coded similarity (after ``gain``
            and ``bias``) to the float one, applied by :meth:`calibrate`; None for codecs fitted
            before it existed (they score with ``gain`` and ``bias`` alone).
    """

    preset: str
    dim: int
    mean: np.ndarray
    weight: np.ndarray
    low: np.ndarray
    step: np.ndarray
    gain: float = 1.0
    bias: float = 0.0
    knots: np.ndarray | None = None

    # ---- shape ----------------------------------------------------------

    @property
    def code(self) -> str:
        """The per-dimension code: fp16, int8, int4, int2 or sign."""
        return parse_preset(self.preset)[2]

    @property
    def pool(self) -> int:
        """Token-pooling factor applied to each document before coding (1: none)."""
        return parse_preset(self.preset)[0]

    @property
    def bits(self) -> int:
        return CODES[self.code]

    @property
    def out_dim(self) -> int:
        """Dimensions kept after projection."""
        return int(self.weight.shape[0])

    @property
    def bytes_per_token(self) -> int:
        """Stored bytes per kept token state (per original token: divide by about ``pool``)."""
        return -(-self.out_dim * self.bits // 8)

    # ---- fitting and storage --------------------------------------------

    @classmethod
    def fit(cls, preset: str, tokens: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> TokenCodec:
        """Fit ``preset`` on a sample of document token states.

        ``tokens`` is a list of documents' (n_i, dim) states (pooled first when the preset
        pools), or one (T, dim) array of states to fit on as they are. PCA presets need at
        least ``2R`` sample tokens and are fitted on the sample's covariance; sign codes add
        a fixed random rotation, which spreads the variance evenly over the kept dimensions
        before each keeps one bit.
        """
        pool, out_dim, code = parse_preset(preset)
        if not isinstance(tokens, (np.ndarray, torch.Tensor)):
            tokens = pool_documents(tokens, pool).tokens if len(tokens) else np.zeros((0, 0))
        sample = torch.as_tensor(np.asarray(tokens, dtype=np.float32))
        if sample.ndim != 2 or len(sample) == 0:
            raise ValueError(f"need a (T, dim) sample of token states, got shape {tuple(sample.shape)}")
        dim = sample.shape[1]
        if out_dim is not None:
            out_dim = min(out_dim, dim)  # a model narrower than the preset keeps all its dimensions
            if len(sample) < 2 * out_dim:
                raise ValueError(f"a {out_dim}-d PCA needs at least {2 * out_dim} sample tokens, got {len(sample)}")
        mean = torch.zeros(dim, dtype=torch.float64) if out_dim is None else sample.mean(dim=0, dtype=torch.float64)
        centred = sample - mean.float()
        if out_dim is None:
            weight = torch.eye(dim, dtype=torch.float64)
        else:
            # the (dim, dim) covariance by one float32 product (the sample is unit vectors: float32 sums of
            # them lose nothing a 1-bit or 8-bit code keeps), its eigenvectors in float64
            _, vectors = torch.linalg.eigh((centred.T @ centred).double() / len(sample))
            weight = vectors[:, -out_dim:].flip(1).T  # top components first
        if code == "sign":
            weight = torch.from_numpy(_random_rotation(len(weight))) @ weight
        projected = centred @ weight.float().T
        if code == "sign":
            low = torch.zeros(len(weight), dtype=torch.float64)
            step = projected.abs().mean(dim=0, dtype=torch.float64)
        elif code == "fp16":
            low = step = torch.zeros(len(weight), dtype=torch.float64)
        else:
            lo = torch.quantile(projected, _QUANTILE, dim=0) if len(projected) <= 1 << 24 else projected.amin(dim=0)
            hi = torch.quantile(projected, 1 - _QUANTILE, dim=0) if len(projected) <= 1 << 24 else projected.amax(dim=0)
            low, step = lo.double(), (hi - lo).double().clamp_min(1e-6) / (1 << CODES[code])
        as32 = lambda t: t.to(torch.float32).numpy()  # noqa: E731
        codec = cls(preset=preset, dim=dim, mean=as32(mean), weight=as32(weight), low=as32(low), step=as32(step))
        return codec._calibrated(sample.numpy())

    def _calibrated(self, sample: np.ndarray) -> TokenCodec:
        """The codec with the ``gain``, ``bias`` and ``knots`` that put its MaxSim on the float scale.

        Codes are scored by the cosine of the centred, projected states, which ranks better
        than the raw dot of coarse codes but runs on another scale; fusion with the pooled
        cosine (λ) needs the float one. On a split of the sample, pseudo-query tokens are
        scored against chunks of the other tokens, float and coded, and a least-squares line
        maps the coded maxima onto the float ones. Then a monotone (isotonic) map is fitted on
        those pairs plus *self matches*, each chunk token scored against its own chunk, whose
        float maximum is the token itself: so a document scored against its own text gets a
        late score near 1, as with float states, where the line alone gave about 0.95.
        """
        gen = np.random.default_rng(0)
        order = gen.permutation(len(sample))
        queries, docs = sample[order[:256]], sample[order[256 : 256 + 64 * 128]]
        chunks = len(docs) // 128
        if chunks < 2:
            return self
        docs_t = torch.from_numpy(docs[: chunks * 128])
        exact = (torch.from_numpy(queries) @ docs_t.T).reshape(len(queries), chunks, 128).amax(dim=2)
        unit = replace(self, gain=1.0, bias=0.0, knots=None)
        q, _ = unit.query(queries)
        keys = unit.keys(unit.encode(docs_t))
        coded = (q @ keys.T).reshape(len(queries), chunks, 128).amax(dim=2)
        x, y = coded.reshape(-1).double(), exact.reshape(-1).double()
        gain = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum().clamp_min(1e-12))
        if not gain > 0:
            return self
        bias = float(y.mean() - gain * x.mean())
        own_q, _ = unit.query(docs_t)
        by_chunk = lambda t: t.reshape(chunks, 128, -1)  # noqa: E731
        own = (by_chunk(own_q) @ by_chunk(keys).transpose(1, 2)).amax(dim=2).reshape(-1).double()
        own_exact = (by_chunk(docs_t) @ by_chunk(docs_t).transpose(1, 2)).amax(dim=2).reshape(-1).double()
        knots = _monotone_knots(torch.cat([x, own]) * gain + bias, torch.cat([y, own_exact]))
        return replace(self, gain=gain, bias=bias, knots=knots)

    def calibrate(self, best: torch.Tensor) -> torch.Tensor:
        """Best coded similarities (after ``gain`` and ``bias``) → the float scale, through :attr:`knots`.

        The map is monotone, so it may be applied before or after a maximum. Beyond the fitted
        range it continues with slope 1, so the order of the highest matches is kept.
        """
        if self.knots is None:
            return best
        values = best.double().numpy()
        x, y = self.knots[0].astype(np.float64), self.knots[1].astype(np.float64)
        mapped = np.interp(values, x, y) + (values - np.clip(values, x[0], x[-1]))
        return torch.from_numpy(mapped.astype(np.float32))

    def to_json(self) -> str:
        """Everything needed to score identically in another process."""
        return self._json

    @cached_property
    def _json(self) -> str:
        """:meth:`to_json`, written once per codec (a few MB of text: each new table and fingerprint asks for it)."""
        arrays = {name: getattr(self, name).tolist() for name in ("mean", "weight", "low", "step")}
        if self.knots is not None:  # codecs fitted before the monotone map keep their JSON (and fingerprint)
            arrays["knots"] = self.knots.tolist()
        return json.dumps({"preset": self.preset, "dim": self.dim, "gain": self.gain, "bias": self.bias, **arrays})

    @classmethod
    def from_json(cls, raw: str | bytes) -> TokenCodec:
        """The codec :meth:`to_json` wrote."""
        data = json.loads(raw)
        arrays = {name: np.asarray(data[name], dtype=np.float32) for name in ("mean", "weight", "low", "step")}
        knots = np.asarray(data["knots"], dtype=np.float32) if "knots" in data else None
        return cls(
            preset=data["preset"],
            dim=int(data["dim"]),
            gain=float(data["gain"]),
            bias=float(data["bias"]),
            knots=knots,
            **arrays,
        )

    def fingerprint(self) -> str:
        """A short hash of the codec's parameters (part of the table's fingerprint)."""
        return f"{self.preset}:{hashlib.sha256(self.to_json().encode()).hexdigest()[:12]}"

    # ---- encode / decode -------------------------------------------------

    def project(self, tokens: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Token states (T, dim) in the codec's projected space (T, out_dim), float32."""
        t = torch.as_tensor(np.asarray(tokens, dtype=np.float32))
        return (t - torch.from_numpy(self.mean)) @ torch.from_numpy(self.weight).T

    def encode_docs(self, tokens: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Documents' (n_i, dim) states → (their codes concatenated (T', bytes) uint8, tokens kept per document).

        Documents are token-pooled first when the preset pools, so n_i' ≤ n_i.
        """
        if not len(tokens):
            return np.zeros((0, self.bytes_per_token), np.uint8), np.zeros(0, np.int64)
        pooled = pool_documents(tokens, self.pool)
        return self.encode(pooled.tokens), pooled.lengths

    def encode(self, tokens: np.ndarray | torch.Tensor) -> np.ndarray:
        """Token states (T, dim) → packed codes (T, bytes_per_token) uint8, token by token (no pooling)."""
        if tokens.shape[-1] != self.dim:
            raise ValueError(f"token states of dim {tokens.shape[-1]} do not fit this codec (dim {self.dim})")
        projected = self.project(tokens)
        if self.code == "fp16":
            return projected.to(torch.float16).numpy().view(np.uint8).reshape(len(projected), -1)
        if self.code == "sign":
            levels = (projected > 0).to(torch.uint8).numpy()
        else:
            scaled = (projected - torch.from_numpy(self.low)) / torch.from_numpy(self.step)
            levels = scaled.floor().clamp_(0, (1 << self.bits) - 1).to(torch.uint8).numpy()
        return _pack(levels, self.bits)

    def decode(self, codes: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Packed codes (T, bytes_per_token) → their values in the projected space (T, out_dim), float32."""
        raw = np.ascontiguousarray(codes.numpy() if isinstance(codes, torch.Tensor) else codes, dtype=np.uint8)
        if raw.ndim != 2 or raw.shape[1] != self.bytes_per_token:
            raise ValueError(
                f"codes of shape {raw.shape} do not fit this codec ({self.bytes_per_token} bytes per token)"
            )
        if self.code == "fp16":
            return torch.from_numpy(raw.view(np.float16).astype(np.float32))
        levels = torch.from_numpy(_unpack(raw, self.bits, self.out_dim))
        step = torch.from_numpy(self.step)
        if self.code == "sign":
            return (levels.to(torch.float32) * 2 - 1) * step
        return torch.from_numpy(self.low) + (levels.to(torch.float32) + 0.5) * step

    def keys(self, codes: np.ndarray | torch.Tensor) -> torch.Tensor:
        """What a query is scored against: the decoded codes, L2-normalised (T, out_dim)."""
        return torch.nn.functional.normalize(self.decode(codes), dim=-1)

    def similarities(self, codes: np.ndarray | torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        """``keys(codes) @ projected.T``: (T, L) similarities of codes to a query's :meth:`query` projections.

        For sign codes every key has the same norm (each dimension is ± its scale), so the scales
        and the norm fold into the query and the bits are scored as 0/1: ``2·bits @ w.T - Σw``, with
        no per-token scaling or normalising.
        """
        if self.code != "sign":
            return self.keys(codes) @ projected.T
        step = torch.from_numpy(self.step)
        folded = projected * (step / torch.linalg.vector_norm(step))  # (L, out_dim)
        raw = np.ascontiguousarray(codes.numpy() if isinstance(codes, torch.Tensor) else codes, dtype=np.uint8)
        if raw.ndim != 2 or raw.shape[1] != self.bytes_per_token:
            raise ValueError(
                f"codes of shape {raw.shape} do not fit this codec ({self.bytes_per_token} bytes per token)"
            )
        bits = torch.from_numpy(_unpack(raw, 1, self.out_dim)).to(torch.float32)
        return bits @ (2 * folded).T - folded.sum(dim=1)

    def reconstruct(self, codes: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Codes back in the token-state space (T, dim): a lossy inverse of :meth:`encode`."""
        return self.decode(codes) @ torch.from_numpy(self.weight) + torch.from_numpy(self.mean)

    def query(self, tokens: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A float query's tokens (L, dim) → (scaled unit projections (L, out_dim), offsets (L,)).

        ``projections @ keys(codes).T + offsets[:, None]`` approximates ``tokens @ docs.T``:
        ``gain · cos(W(q - μ), decode(c)) + bias``.
        """
        t = torch.as_tensor(np.asarray(tokens, dtype=np.float32))
        projected = torch.nn.functional.normalize(self.project(t), dim=-1)
        return projected * self.gain, torch.full((len(t),), self.bias, dtype=torch.float32)

    def describe(self) -> dict[str, Any]:
        """Preset, dimensions and bytes per token, for reports."""
        return {
            "preset": self.preset,
            "dim": self.dim,
            "out_dim": self.out_dim,
            "pool": self.pool,
            "bytes_per_token": self.bytes_per_token,
        }


def _monotone_knots(x: torch.Tensor, y: torch.Tensor, bins: int = 64) -> np.ndarray:
    """(2, ≤ bins) knots of the isotonic regression of ``y`` on ``x``, over equal-count bins of ``x``."""
    from scipy.optimize import isotonic_regression

    order = torch.argsort(x)
    groups = [g for g in torch.tensor_split(order, bins) if len(g)]
    knots_x = np.array([float(x[g].mean()) for g in groups])
    fitted = isotonic_regression(np.array([float(y[g].mean()) for g in groups]), weights=[len(g) for g in groups]).x
    keep = np.concatenate([[True], np.diff(knots_x) > 0])  # strictly increasing x for interpolation
    return np.stack([knots_x[keep], fitted[keep]]).astype(np.float32)


def _pack(levels: np.ndarray, bits: int) -> np.ndarray:
    """(T, r) small ints of ``bits`` bits → (T, r * bits / 8) bytes, little-endian within each byte."""
    if bits == 8:
        return np.ascontiguousarray(levels, dtype=np.uint8)
    if bits == 1:
        return np.packbits(levels, axis=1, bitorder="little")
    per_byte = 8 // bits
    pad = -levels.shape[1] % per_byte  # the last byte of a row is zero-filled
    levels = np.pad(levels, ((0, 0), (0, pad)))
    grouped = levels.reshape(len(levels), -1, per_byte).astype(np.uint8)
    shifts = (np.arange(per_byte, dtype=np.uint8) * bits)[None, None, :]
    return np.bitwise_or.reduce(grouped << shifts, axis=2).astype(np.uint8)


def _unpack(raw: np.ndarray, bits: int, out_dim: int) -> np.ndarray:
    """Inverse of :func:`_pack`: (T, bytes) → (T, out_dim) uint8 levels."""
    if bits == 8:
        return raw
    if bits == 1:
        return np.unpackbits(raw, axis=1, count=out_dim, bitorder="little")
    per_byte = 8 // bits
    shifts = (np.arange(per_byte, dtype=np.uint8) * bits)[None, None, :]
    levels = (raw[:, :, None] >> shifts) & ((1 << bits) - 1)
    return levels.reshape(len(raw), -1)[:, :out_dim]
