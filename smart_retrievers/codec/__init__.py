"""Token codecs: document token states pooled and coded into a few bytes per token, scored asymmetrically.

:mod:`.token_codec` holds the codec (presets, fit, codes, the asymmetric score), :mod:`.pooling`
the token pooling it applies first, and :mod:`.fitting` how a new table's codec is fitted
(its first write, or the generic sample: shipped for the default model, cached for others).
"""

from .fitting import (
    MIN_FIT_TOKENS,
    fit_and_code,
    fit_codec,
    generic_codec,
    generic_sample,
    generic_states,
    shipped_codec,
)
from .pooling import Pooled, pool_documents, pool_tokens
from .token_codec import CODES, DEFAULT_COMPRESSION, TokenCodec, parse_preset

__all__ = [
    "CODES",
    "DEFAULT_COMPRESSION",
    "MIN_FIT_TOKENS",
    "Pooled",
    "TokenCodec",
    "fit_and_code",
    "fit_codec",
    "generic_codec",
    "generic_sample",
    "generic_states",
    "parse_preset",
    "pool_documents",
    "pool_tokens",
    "shipped_codec",
]
