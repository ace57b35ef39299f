"""The framework each integration needs: a missing one names the extra that installs it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["EXTRAS", "requires_extra"]

EXTRAS = {"llama_index": "llama-index", "langchain_core": "langchain"}
"""Framework package -> the smart-retrievers extra that installs it."""


@contextmanager
def requires_extra(package: str) -> Iterator[None]:
    """Imports inside this block that fail on ``package`` (a key of :data:`EXTRAS`) missing raise an
    ImportError saying which extra to install; any other import error passes unchanged."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != package.split(".")[0]:
            raise
        raise ModuleNotFoundError(
            f'this integration needs {exc.name}: pip install "smart-retrievers[{EXTRAS[package]}]"', name=exc.name
        ) from exc
