"""smart-retrievers: SMART late-interaction retrieval on the single-vector embedder you already have.

The core (encoder, scoring, store, index) imports no framework; LlamaIndex and LangChain
classes live in :mod:`smart_retrievers.llama_index` and :mod:`smart_retrievers.langchain`.
"""

from .encoder import SmartEncoder, TokenPolicy
from .encoding import Encoding
from .filters import parse_filter, to_sql
from .index import Hit, SmartIndex
from .store import FingerprintMismatchError, SmartStore

__version__ = "0.1.0"

__all__ = [
    "Encoding",
    "FingerprintMismatchError",
    "Hit",
    "SmartEncoder",
    "SmartIndex",
    "SmartStore",
    "TokenPolicy",
    "parse_filter",
    "to_sql",
    "__version__",
]
