"""Shared fixtures: one real bundled encoder per test session, one torch thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from smart_retrievers import SmartEncoder

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def encoder() -> SmartEncoder:
    """The bundled all-MiniLM-L6-v2, on CPU."""
    return SmartEncoder.default(device="cpu")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Test inputs are tiny: one intra-op thread is as fast, and far faster when the CPUs are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
