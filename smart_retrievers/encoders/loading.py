"""Where a model comes from and where it runs: device and dtype defaults, a model's files, the weights
fingerprint, SMART adapter loading and a quiet load (what :class:`~smart_retrievers.encoders.base.BaseEncoder`
does before, around and after a subclass loads its model family).

No transformers import at module level: :func:`resolve_file` and :func:`quiet_loading` load it on first use.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ..adapter import SmartAdapter

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_SAMPLE_BYTES = 1 << 20


def auto_device() -> str:
    """The first available of "cuda", "mps" and "cpu"."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def default_dtype(device: str) -> torch.dtype:
    """bfloat16 on CUDA devices that support it, float32 elsewhere."""
    return torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


_quiet_lock = threading.Lock()
_quiet_depth = 0
_outer_hook: Any = None


@contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' own progress bars ("Loading weights", "Loading checkpoint shards") hidden while a model loads.

    Scoped to the load: transformers' tqdm hook (``transformers.utils.logging.set_tqdm_hook``) is
    set on entry and the caller's hook (if any) put back on exit, so bars the user's own code
    asks transformers for are untouched. Nested and concurrent loads share one installation.
    huggingface_hub's download bars are left alone (a first download of a large model says how
    far it got), and so are transformers' warnings. On transformers releases without
    ``set_tqdm_hook`` (before 5, which drew no per-load bar for one-file models) nothing changes.
    """
    global _quiet_depth, _outer_hook
    from transformers.utils import logging as hf_logging

    set_hook = getattr(hf_logging, "set_tqdm_hook", None)
    if set_hook is None:
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            _outer_hook = set_hook(_hidden_bar)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                set_hook(_outer_hook)
                _outer_hook = None


def _hidden_bar(factory: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The bar transformers asked for, created disabled (through the caller's own hook, if one was set)."""
    kwargs = {**kwargs, "disable": True}
    return _outer_hook(factory, args, kwargs) if _outer_hook is not None else factory(*args, **kwargs)


def resolve_file(model_name_or_path: str, filename: str, local_files_only: bool) -> Path | None:
    """A file of a model (local directory or hub cache/download), or None if it has none."""
    from transformers.utils import cached_file

    try:
        resolved = cached_file(
            model_name_or_path,
            filename,
            local_files_only=local_files_only,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except OSError:
        return None
    return None if resolved is None else Path(resolved)


def fingerprint_weights(model_name_or_path: str, local_files_only: bool = True, *, subfolder: str = "") -> str:
    """A short, fast hash of a model's (or one of its ``subfolder`` modules') config and weight files.

    Hashes config.json plus each weight file's name, size and first/last MiB, so it
    changes with the weights without reading gigabytes.
    """
    config = resolve_file(
        model_name_or_path, f"{subfolder}/config.json" if subfolder else "config.json", local_files_only
    )
    digest = hashlib.sha256()
    if config is None:
        digest.update(model_name_or_path.encode())
        return digest.hexdigest()[:16]
    digest.update(config.read_bytes())
    for weights in sorted(p for p in config.parent.iterdir() if p.suffix in _WEIGHT_SUFFIXES):
        size = weights.stat().st_size
        digest.update(f"{weights.name}:{size}".encode())
        with weights.open("rb") as fh:
            digest.update(fh.read(_SAMPLE_BYTES))
            fh.seek(max(0, size - _SAMPLE_BYTES))
            digest.update(fh.read(_SAMPLE_BYTES))
    return digest.hexdigest()[:16]


def load_adapter(
    adapter: Any, base_fingerprint: dict[str, Any], device: str, *, state_dim: int | None = None
) -> SmartAdapter | None:
    """Load (if given as a path) a SMART adapter, check it was trained on this base model, move it to ``device``.

    ``state_dim`` is the encoder's token-state size before any adapter (its hidden size,
    not the pooled ``dim``), which must be the adapter's input size (None: not checked).
    """
    if adapter is None:
        return None
    from ..adapter import SmartAdapter

    if not isinstance(adapter, SmartAdapter):
        adapter = SmartAdapter.load(adapter)
    adapter.check_base(base_fingerprint, state_dim=state_dim)
    return adapter.to(device).eval()
