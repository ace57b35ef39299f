"""SmartAdapter: a small trained map applied to frozen token states (SMART post-training).

``SmartAdapter`` is ``L2-normalise → LayerNorm(H) → Linear(H, r, bias=False) → L2-normalise``.
It sits on top of a frozen embedder's final hidden states, for queries and documents
alike; the pooled vector is never touched. ``r`` defaults to ``H``; a smaller ``r``
(e.g. 128) also shrinks the stored token states by ``H / r``.

Why the leading L2-normalisation: LayerNorm is scale-invariant only up to its ``eps``.
Normalising first makes the adapter *exactly* scale-invariant, so an adapter trained on
the cached, L2-normalised fp16 token states of the frozen encoder (see
:mod:`smart_retrievers.training`) gives the same output on the encoder's raw float32
hidden states, up to fp16 rounding of the cache.

Initialisation (so that step 0 reproduces inference-only SMART):

* ``r == H``: the projection is the identity. The output is then the LayerNorm'd
  (per-token centred) state, which scores like the raw state (the SciFact nDCG@10 is
  unchanged at step 0), though not bit-for-bit.
* ``r < H``: :meth:`SmartAdapter.init_pca` sets the projection to the top-``r`` principal
  directions of LayerNorm'd token states. Without data the first ``r`` coordinates are kept.

A saved adapter is a directory with ``adapter.safetensors`` (the weights) and
``adapter_config.json`` (dimensions, the base model's fingerprint, training data,
hyper-parameters, metrics and the package version). Loading it onto a different base
model raises :class:`AdapterMismatchError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from ._version import __version__

__all__ = ["AdapterMismatchError", "SmartAdapter", "CONFIG_NAME", "WEIGHTS_NAME"]

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter.safetensors"
FORMAT_VERSION = 1
#: The base-model fingerprint keys an adapter must match ("model" is only a display name).
BASE_KEYS = ("weights", "pooling", "dim")


class AdapterMismatchError(ValueError):
    """The adapter was trained on a different base model than the encoder it is loaded into."""


class SmartAdapter(nn.Module):
    """``L2-norm → LayerNorm(H) → Linear(H, r, bias=False) → L2-norm`` on token states.

    Args:
        hidden_dim: ``H``, the base model's hidden size.
        out_dim: ``r``, the adapted token dimension (defaults to ``H``).
        base: the base encoder's ``base_fingerprint`` (model, weights hash, pooling, dim);
            :meth:`check_base` refuses other models. None skips that check (dimension only).
        info: free-form JSON-serialisable training record (data, hyper-parameters,
            metrics) saved in the config.
        layer_norm_eps: LayerNorm epsilon.

    Input: token states ``(..., H)`` of any float dtype and scale (raw or L2-normalised).
    Output: float32 ``(..., r)``, L2-normalised.
    """

    def __init__(
        self,
        hidden_dim: int,
        out_dim: int | None = None,
        *,
        base: Mapping[str, Any] | None = None,
        info: Mapping[str, Any] | None = None,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        out_dim = hidden_dim if out_dim is None else out_dim
        if hidden_dim < 1 or not 1 <= out_dim <= hidden_dim:
            raise ValueError(f"need 1 <= out_dim <= hidden_dim, got hidden_dim={hidden_dim}, out_dim={out_dim}")
        self.norm = nn.LayerNorm(hidden_dim, eps=layer_norm_eps)
        self.proj = nn.Linear(hidden_dim, out_dim, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(hidden_dim)[:out_dim])
        self.base = dict(base) if base is not None else None
        self.info: dict[str, Any] = dict(info or {})

    @property
    def in_dim(self) -> int:
        """``H``, the input (base model hidden) dimension."""
        return self.proj.in_features

    @property
    def out_dim(self) -> int:
        """``r``, the adapted token dimension."""
        return self.proj.out_features

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Adapt token states ``(..., H)`` to L2-normalised float32 ``(..., r)``."""
        if states.shape[-1] != self.in_dim:
            raise ValueError(f"adapter expects token states of dim {self.in_dim}, got shape {tuple(states.shape)}")
        x = F.normalize(states.float(), dim=-1)
        return F.normalize(self.proj(self.norm(x)), dim=-1)

    @torch.no_grad()
    def init_pca(self, states: torch.Tensor) -> None:
        """Set the projection to the top-``r`` principal directions of LayerNorm'd ``states`` (n, H).

        The directions are the leading eigenvectors of the uncentred second moment
        ``XᵀX / n`` of the LayerNorm'd states: the rank-``r`` projection that keeps the
        most of their dot products (the Linear has no bias, so no centring).
        """
        if states.ndim != 2 or states.shape[1] != self.in_dim or len(states) == 0:
            raise ValueError(f"init_pca needs a non-empty (n, {self.in_dim}) matrix, got shape {tuple(states.shape)}")
        x = self.norm(F.normalize(states.float(), dim=-1)).double()
        _, vectors = torch.linalg.eigh(x.T @ x / len(x))  # ascending eigenvalues
        top = vectors[:, -self.out_dim :].flip(1).T  # (r, H), largest first
        self.proj.weight.copy_(top.to(self.proj.weight.dtype))

    # ---- identity ------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The JSON config saved next to the weights."""
        return {
            "format_version": FORMAT_VERSION,
            "type": "SmartAdapter",
            "hidden_dim": self.in_dim,
            "out_dim": self.out_dim,
            "layers": 1,
            "layer_norm_eps": self.norm.eps,
            "base": self.base,
            "training": self.info,
            "package_version": __version__,
        }

    def fingerprint(self) -> str:
        """A short id of these exact weights and dimensions, e.g. ``"384x128-3f2a..."``.

        It goes into the encoder (and so the store) fingerprint, so a table encoded with
        one adapter refuses an encoder with another one, or with none.
        """
        digest = hashlib.sha256(f"{self.in_dim}x{self.out_dim}:{self.norm.eps}".encode())
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return f"{self.in_dim}x{self.out_dim}-{digest.hexdigest()[:16]}"

    def check_base(self, base_fingerprint: Mapping[str, Any], *, state_dim: int | None = None) -> None:
        """Raise :class:`AdapterMismatchError` unless ``base_fingerprint`` is the model this adapter was trained on.

        Args:
            base_fingerprint: the encoder's ``base_fingerprint``, compared with the one the
                adapter was trained on (when it records one).
            state_dim: the size of the encoder's token states before any adapter (its hidden
                size), which must be the adapter's input size; None skips that check. It is
                not the fingerprint's ``dim``, the pooled size, which a sentence-transformers
                Dense head can change.
        """
        if state_dim is not None and state_dim != self.in_dim:
            raise AdapterMismatchError(
                f"adapter expects token states of hidden size {self.in_dim} but the encoder "
                f"{base_fingerprint.get('model')!r} has token states of size {state_dim}"
            )
        if self.base is None:
            return
        diffs = [
            f"{k}: adapter={self.base.get(k)!r} encoder={base_fingerprint.get(k)!r}"
            for k in BASE_KEYS
            if self.base.get(k) != base_fingerprint.get(k)
        ]
        if diffs:
            raise AdapterMismatchError(
                f"adapter was trained on base model {self.base.get('model')!r}, not on the encoder's "
                f"{base_fingerprint.get('model')!r} ({'; '.join(diffs)}). Train an adapter for this model."
            )

    # ---- persistence ---------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write ``adapter.safetensors`` and ``adapter_config.json`` into directory ``path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}
        tmp_weights, tmp_config = folder / f".{WEIGHTS_NAME}.tmp", folder / f".{CONFIG_NAME}.tmp"
        save_file(tensors, str(tmp_weights), metadata={"fingerprint": self.fingerprint()})
        tmp_config.write_text(json.dumps(self.config(), indent=2, sort_keys=True, default=_json_default))
        os.replace(tmp_weights, folder / WEIGHTS_NAME)
        os.replace(tmp_config, folder / CONFIG_NAME)
        return folder

    @classmethod
    def load(cls, path: str | Path) -> SmartAdapter:
        """Load an adapter directory written by :meth:`save`."""
        folder = Path(path)
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        if not config_path.is_file() or not weights_path.is_file():
            raise FileNotFoundError(
                f"{folder} is not a SMART adapter directory (needs {CONFIG_NAME} and {WEIGHTS_NAME})"
            )
        config = json.loads(config_path.read_text())
        if config.get("type") != "SmartAdapter" or config.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{config_path}: unsupported adapter config (type {config.get('type')!r}, format_version {config.get('format_version')!r})"
            )
        if config.get("layers", 1) != 1:
            raise ValueError(
                f"{config_path}: adapters over {config['layers']} layers are not supported; only the final layer (layers=1)"
            )
        adapter = cls(
            config["hidden_dim"],
            config["out_dim"],
            base=config.get("base"),
            info=config.get("training"),
            layer_norm_eps=config.get("layer_norm_eps", 1e-5),
        )
        try:
            adapter.load_state_dict(load_file(str(weights_path)))
        except RuntimeError as exc:
            raise ValueError(f"{weights_path}: weights do not fit the config ({exc})") from exc
        return adapter.eval()

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}"


def _json_default(value: Any) -> Any:
    """Make numpy scalars and paths JSON-serialisable in the saved config."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
