"""The errors the store raises when a table does not fit the call, and its rule for commits other writers preempt."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class FingerprintMismatchError(ValueError):
    """The table was built by a different encoder than the one opening it."""


class DuplicateIdError(ValueError):
    """An append (``upsert=False``) met an id the table already holds."""


class UpgradedTableError(ValueError):
    """A write that only a table written by smart-retrievers takes, asked of a table upgraded in place."""

    @classmethod
    def refusing(cls, action: str, table: str, owner: str) -> UpgradedTableError:
        """The error for ``action`` ("add rows to"...) on ``table``, upgraded from ``owner``'s store."""
        return cls(
            f"cannot {action} table {table!r}: it was upgraded in place from a {owner} single-vector table, "
            "whose rows its own store writes. Write through that store, then run upgrade() "
            "(smart-retrievers upgrade) again: it gives the new rows their token states"
        )


_CONFLICT_MARKERS = ("commit conflict", "incompatible transaction", "too many concurrent writers", "preempted by")


def is_commit_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is Lance's report that another writer's commit preempted this one (nothing was committed).

    Lance raises ``CommitConflictError`` from its own commits; through LanceDB the same conflicts come as
    a ``RuntimeError`` whose text names them ("Retryable commit conflict ... preempted by ...",
    "Incompatible transaction", "Too many concurrent writers" once LanceDB's own retries ran out).
    """
    from lance.commit import CommitConflictError  # noqa: PLC0415 (pylance comes with lancedb)

    text = str(exc).lower()
    return isinstance(exc, CommitConflictError) or (
        isinstance(exc, (RuntimeError, OSError)) and any(marker in text for marker in _CONFLICT_MARKERS)
    )


class ConcurrentCommitError(RuntimeError):
    """Other writers' commits preempted every try of a call (nothing of it committed; run it again)."""


def retry_preempted(table: Any, call: Callable[[], T], what: str, attempts: int = 5) -> T:
    """``call()``, which commits to the LanceDB ``table``, run again from the latest version while another writer's
    commit preempts it (:func:`is_commit_conflict`: nothing of it committed), up to ``attempts`` times; then
    :class:`ConcurrentCommitError` naming ``what`` ("optimize() of table 't'")."""
    lost: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if not is_commit_conflict(exc):
                raise
            lost = exc
        table.checkout_latest()
        time.sleep(random.uniform(0, 0.05 * attempt))  # out of step with a writer's rhythm
    raise ConcurrentCommitError(
        f"{what}: other writers' commits preempted each of its {attempts} tries (last: {lost}); "
        "nothing of it was committed and nothing was lost: run it again"
    ) from lost


class TableNotFoundError(ValueError):
    """:meth:`SmartStore.open_existing` was asked for a table the database does not hold."""
