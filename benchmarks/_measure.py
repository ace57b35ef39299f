"""Small measurements the benchmarks share: percentiles of timings and bytes on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pct(values: list[float]) -> dict[str, float]:
    """p50 and p95 of ``values``, rounded to 0.1."""
    return {"p50": round(float(np.percentile(values, 50)), 1), "p95": round(float(np.percentile(values, 95)), 1)}


def disk_bytes(path: str | Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
