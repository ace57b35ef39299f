"""Bring a table written in an older table format up to :data:`~.format.FORMAT_VERSION` (``smart-retrievers migrate``).

Each step turns format ``n`` into ``n + 1`` by returning schema metadata updates; a migration
gathers every step's updates and commits them at once (one metadata-only commit, conflict-checked
by Lance like any schema metadata update). Rows and token states are never rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..codec import TokenCodec
from ..options import DEFAULT_READ_CONSISTENCY
from .codec_table import save_codec
from .connection import connect, existing_fingerprint
from .format import FORMAT_KEY, FORMAT_VERSION, TableFormatError, check_format, stored_format
from .schema import CODEC_KEY

Step = Callable[[Any, str, Mapping[str, str]], tuple[dict[str, str], str]]
"""``(db, table name, schema metadata) -> (metadata updates, what the step did)``."""


@dataclass
class MigrationReport:
    """What :func:`migrate_table` did: the formats before and after, and one line per step."""

    table: str
    from_format: int
    to_format: int
    steps: list[str] = field(default_factory=list)

    @property
    def migrated(self) -> bool:
        """False when the table was already in the current format (nothing was committed)."""
        return self.from_format != self.to_format


def _codec_by_reference(db: Any, table: str, metadata: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """Format 1 -> 2: an inline codec moves into the codec side table; the schema keeps its reference."""
    raw = metadata.get(CODEC_KEY)
    if not raw or "sha256" in json.loads(raw):
        return {}, "format 1 -> 2: format recorded"
    return {
        CODEC_KEY: save_codec(db, table, TokenCodec.from_json(raw))
    }, "format 1 -> 2: inline codec moved to the codec table"


STEPS: dict[int, Step] = {1: _codec_by_reference}
"""The step that migrates each older format to the next one."""


def migrate_table(
    uri: str,
    table: str,
    *,
    storage_options: Mapping[str, str] | None = None,
    read_consistency_interval: timedelta | None = DEFAULT_READ_CONSISTENCY,
    **connect_kwargs: Any,
) -> MigrationReport:
    """Migrate table ``table`` at ``uri`` to the current table format in one metadata-only commit.

    A table already in the current format is left alone (no commit). A table in a newer format,
    or one smart-retrievers did not write or upgrade, is refused before anything is written.
    """
    db = connect(str(uri), storage_options, read_consistency_interval, **connect_kwargs)
    existing_fingerprint(db, str(uri), table)  # names a missing table, refuses a plain LanceDB one
    lance_table = db.open_table(table)
    found = stored_format(lance_table.schema)
    report = MigrationReport(table, found, FORMAT_VERSION)
    if found == FORMAT_VERSION:
        return report
    if found > FORMAT_VERSION:
        check_format(lance_table.schema, str(uri), table)  # raises: the package is older than the table
    metadata = {k.decode(): v.decode() for k, v in (lance_table.schema.metadata or {}).items()}
    updates: dict[str, str] = {}
    for version in range(found, FORMAT_VERSION):
        if version not in STEPS:
            raise TableFormatError(f"table {table!r} at {uri} is in table format {version}, which no release wrote")
        changed, done = STEPS[version](db, table, {**metadata, **updates})
        updates.update(changed)
        report.steps.append(done)
    updates[FORMAT_KEY] = str(FORMAT_VERSION)
    lance_table.to_lance().update_schema_metadata(updates)  # one commit; other keys stay as they are
    return report
