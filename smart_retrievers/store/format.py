"""The table format version: which layout of schema metadata and side tables a table was written in.

Every table smart-retrievers writes or upgrades records :data:`FORMAT_VERSION` under
:data:`FORMAT_KEY` in its schema metadata. Opening a table checks it (:func:`check_format`):

* the same format opens;
* an older format is refused with the command that migrates it
  (``smart-retrievers migrate``, :func:`smart_retrievers.store.migrate.migrate_table`);
  opening never commits, so read-only credentials and other readers see no new versions;
* a newer format (written by a later release) is refused: this release cannot know its layout.

Formats:

1. tables written before the format was recorded (no :data:`FORMAT_KEY`); a coded table may
   hold its codec inline in the schema (copied into the manifest of every commit).
2. the format is recorded; a coded table's codec lives once in the ``{table}__smart_codecs``
   side table, referenced by hash from the schema.
"""

from __future__ import annotations

from typing import Any

FORMAT_KEY = "smart_retrievers.format"
"""Schema metadata key of the table format version (a decimal integer)."""
FORMAT_VERSION = 2
"""The table format this release writes, and the only one it opens without a migration."""
UNRECORDED_FORMAT = 1
"""The format of a table that smart-retrievers wrote before formats were recorded (no :data:`FORMAT_KEY`)."""


class TableFormatError(ValueError):
    """The table was written in a table format this release does not open (older: migrate it; newer: upgrade)."""


def format_metadata() -> dict[str, str]:
    """The schema metadata that records the current format (part of every schema the store writes)."""
    return {FORMAT_KEY: str(FORMAT_VERSION)}


def stored_format(schema: Any) -> int:
    """The table format a schema records (:data:`UNRECORDED_FORMAT` when it records none).

    >>> import pyarrow as pa
    >>> stored_format(pa.schema([], metadata=format_metadata())), stored_format(pa.schema([]))
    (2, 1)
    """
    raw = (schema.metadata or {}).get(FORMAT_KEY.encode())
    if raw is None:
        return UNRECORDED_FORMAT
    try:
        return int(raw)
    except ValueError:
        raise TableFormatError(f"the table records table format {raw!r}, which is not a format number") from None


def check_format(schema: Any, uri: str, table: str) -> None:
    """Raise :class:`TableFormatError` unless table ``table`` at ``uri`` is in :data:`FORMAT_VERSION`.

    An older table's error names the ``smart-retrievers migrate`` command that brings it up to date.
    """
    found = stored_format(schema)
    if found == FORMAT_VERSION:
        return
    from .._version import __version__

    if found > FORMAT_VERSION:
        raise TableFormatError(
            f"table {table!r} at {uri} is in table format {found}, written by a newer smart-retrievers; "
            f"this release ({__version__}) reads format {FORMAT_VERSION}. "
            "Upgrade the package (pip install -U smart-retrievers) to open it"
        )
    raise TableFormatError(
        f"table {table!r} at {uri} is in table format {found}, older than format {FORMAT_VERSION} "
        f"that smart-retrievers {__version__} opens. Migrate it first (a metadata-only commit, rows are "
        f"not rewritten): smart-retrievers migrate --db {uri} --table {table}"
    )
