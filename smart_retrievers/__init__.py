"""smart-retrievers: SMART late-interaction retrieval on the single-vector embedder you already have.

The core (encoders, scoring, store, index) imports no framework; LlamaIndex and LangChain
classes live in :mod:`smart_retrievers.llama_index` and :mod:`smart_retrievers.langchain`.
Public names load on first use, so ``import smart_retrievers`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS = {
    "Encoding": "encoding",
    "TokenPolicy": "encoding",
    "SmartEncoder": "encoders.text",
    "load_encoder": "encoders",
    "FingerprintMismatchError": "store",
    "SmartStore": "store",
    "Hit": "index",
    "SmartIndex": "index",
    "SearchOptions": "options",
    "TokenCodec": "codec",
    "parse_filter": "filters",
    "to_sql": "filters",
}

__all__ = [
    "Encoding",
    "FingerprintMismatchError",
    "Hit",
    "SearchOptions",
    "SmartEncoder",
    "SmartIndex",
    "SmartStore",
    "TokenCodec",
    "TokenPolicy",
    "__version__",
    "load_encoder",
    "parse_filter",
    "to_sql",
]

if TYPE_CHECKING:
    from .codec import TokenCodec
    from .encoders import load_encoder
    from .encoders.text import SmartEncoder
    from .encoding import Encoding, TokenPolicy
    from .filters import parse_filter, to_sql
    from .index import Hit, SmartIndex
    from .options import SearchOptions
    from .store import FingerprintMismatchError, SmartStore


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
