"""Creating a table safely when other processes may create it too, and listing a database's tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock


def table_names(db: Any) -> list[str]:
    """Every table name in ``db``, page after page of ``list_tables``.

    LanceDB's ``table_names()`` is deprecated (a DeprecationWarning) and returns only its first
    page, 10 names by default: a database with more tables would seem to lack the others.
    """
    names: list[str] = []
    token = None
    while True:
        page = db.list_tables(page_token=token)
        names += page.tables
        token = page.page_token
        if not token:
            return names


CREATION_LOCK = ".smart_retrievers-create.lock"
"""The file, in a local database's folder, that processes creating a table there hold in turn."""


@contextmanager
def creation_lock(db: Any) -> Iterator[None]:
    """Hold ``db``'s table-creation lock (a file lock in its folder) for the ``with`` block.

    Lance's dataset creation is not atomic (lance-format/lance#4451): of two processes creating
    one new table, the second's create lands as an *Overwrite* on top of the first's table,
    erasing any rows already added, or failing the first's next append. On a local database the
    creators therefore take turns through this lock; on object storage no lock is taken (see
    :func:`create_or_open`).
    """
    uri = str(db.uri)
    if "://" in uri:
        yield
        return
    folder = Path(uri).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / CREATION_LOCK):
        yield


def create_or_open(db: Any, table: str, schema: Any) -> Any:
    """Create the empty table ``table`` with ``schema``, or open it when another writer created it first.

    On a local database the check and the create happen under :func:`creation_lock`, so two
    processes creating one new table do so one after the other: the second opens the first's
    table, which the caller adopts. On object storage the loser's ``create_table`` usually fails
    and it opens the winner's table; Lance cannot rule out that both creates land (the second as
    an overwrite), so create a shared remote table from one process before writing from many.
    """
    with creation_lock(db):
        if table in table_names(db):
            return db.open_table(table)
        try:
            return db.create_table(table, schema=schema)
        except Exception as exc:  # LanceDB reports a lost race as ValueError, OSError or a commit conflict
            try:
                return db.open_table(table)
            except Exception:
                raise exc from None
