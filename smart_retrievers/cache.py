"""Where the package keeps files between runs (token-state caches, upgrade checkpoints)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$SMART_RETRIEVERS_CACHE``, else ``$XDG_CACHE_HOME/smart-retrievers``, else ``~/.cache/smart-retrievers``."""
    if os.environ.get("SMART_RETRIEVERS_CACHE"):
        return Path(os.environ["SMART_RETRIEVERS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "smart-retrievers"
