"""Where the benchmarks find ../shared/data (they need it; unit tests never do)."""

from __future__ import annotations

import sys
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def require(name: str) -> Path:
    """The dataset directory, or exit with a clear message when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        sys.exit(f"{path} not found: the benchmarks read ../shared/data/{name} beside the repository")
    return path
