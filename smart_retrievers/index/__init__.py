"""SmartIndex and what hangs off it.

``smart_index`` (the verbs), ``options`` (IndexOptions), ``ingest`` (the write doors' checks and
commit), ``search`` (one function per search mode), ``vectors`` (search by vector, MMR),
``upkeep`` (codec fitting, recompress, reindex_tokens), ``hits`` (Hit and stored rows).
"""

from __future__ import annotations

from ..options import MODALITIES, SEARCH_MODES, Modality, SearchMode, SearchOptions
from .hits import Hit, load_metadata
from .options import DEFAULT_TOKEN_FETCH, IndexOptions, TokenFetch
from .smart_index import SmartIndex, open_index

__all__ = [
    "DEFAULT_TOKEN_FETCH",
    "MODALITIES",
    "SEARCH_MODES",
    "Hit",
    "IndexOptions",
    "Modality",
    "SearchMode",
    "SearchOptions",
    "SmartIndex",
    "TokenFetch",
    "load_metadata",
    "open_index",
]
