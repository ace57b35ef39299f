"""The one progress-bar rule: shown when asked, else for calls over :data:`PROGRESS_MIN_ITEMS` items.

A leaf module (nothing from the package, no third-party import), so every layer can use it:
the encoders per encoding call, the index per write and the store per token rewrite.
"""

from __future__ import annotations

PROGRESS_MIN_ITEMS = 256
"""A progress bar is shown by default for calls with more items than this."""


def progress_on(flag: bool | None, n: int) -> bool:
    """Whether to show a progress bar for ``n`` items: ``flag``, or when None, ``n > 256``."""
    return n > PROGRESS_MIN_ITEMS if flag is None else bool(flag)
