"""The errors the store raises when a table does not fit the call."""

from __future__ import annotations


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


class TableNotFoundError(ValueError):
    """:meth:`SmartStore.open_existing` was asked for a table the database does not hold."""
