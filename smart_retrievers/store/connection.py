"""Connecting to a LanceDB database and finding an existing table's encoder fingerprint."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from .codec_table import user_tables
from .errors import FingerprintMismatchError, TableNotFoundError
from .schema import stored_fingerprint


def connect(
    uri: str,
    storage_options: Mapping[str, str] | None,
    read_consistency_interval: timedelta | None,
    **connect_kwargs: Any,
) -> Any:
    """``lancedb.connect`` to ``uri``, after refusing a local ``uri`` that is (or lies under) a regular file."""
    _check_local_uri(uri)
    import lancedb  # on first use: a text-only import of the package stays light

    return lancedb.connect(
        uri,
        storage_options=dict(storage_options) if storage_options else None,
        read_consistency_interval=read_consistency_interval,
        **connect_kwargs,
    )


def existing_fingerprint(db: Any, uri: str, table: str) -> dict[str, Any]:
    """The encoder fingerprint table ``table`` of ``db`` records.

    Raises :class:`TableNotFoundError` (naming the tables there) when it does not exist, and
    :class:`FingerprintMismatchError` when smart-retrievers did not write or upgrade it.
    """
    names = user_tables(db)
    if table not in names:
        raise TableNotFoundError(f"no table {table!r} at {uri} (tables there: {', '.join(names) or 'none'})")
    fingerprint = stored_fingerprint(db.open_table(table).schema)
    if fingerprint is None:
        raise FingerprintMismatchError(
            f"table {table!r} at {uri} was not written by smart-retrievers (no fingerprint); "
            "upgrade() (smart-retrievers upgrade) gives a single-vector table token states"
        )
    return fingerprint


def _check_local_uri(uri: str) -> None:
    """Refuse a local ``uri`` that is (or lies under) a regular file: LanceDB needs a directory there."""
    if "://" in uri:
        return
    path = Path(uri).expanduser()
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "is" if candidate == path else f"lies under {str(candidate)!r}, which is"
                raise NotADirectoryError(
                    f"uri {uri!r} {where} a regular file; a SmartIndex/SmartStore uri is a directory "
                    "(created if missing) or an s3:// / gs:// / az:// / db:// URI"
                )
            return
