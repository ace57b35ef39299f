"""Shared fixtures: one real bundled encoder per test session (loading takes seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smart_retrievers import SmartEncoder

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def encoder() -> SmartEncoder:
    """The bundled all-MiniLM-L6-v2, on CPU."""
    return SmartEncoder.default(device="cpu")
