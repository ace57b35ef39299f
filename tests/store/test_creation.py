"""Table creation under the database's creation lock (issue 25: 7; lance-format/lance#4451).

Lance lets a second concurrent create land as an Overwrite on the first's table (CI saw the first
writer's append fail against it); on a local database the creators therefore take turns.
"""

from __future__ import annotations

import lancedb
import pyarrow as pa
import pytest
from filelock import FileLock, Timeout

from smart_retrievers.store.creation import CREATION_LOCK, create_or_open, creation_lock

SCHEMA = pa.schema([pa.field("id", pa.string())])


def _lock_is_free(folder) -> bool:
    try:
        FileLock(folder / CREATION_LOCK).acquire(timeout=0.05).lock.release()
    except Timeout:
        return False
    return True


def test_the_lock_is_a_file_other_holders_wait_on(tmp_path):
    db = lancedb.connect(tmp_path / "db")
    with creation_lock(db):
        assert not _lock_is_free(tmp_path / "db")
    assert _lock_is_free(tmp_path / "db")


def test_check_and_create_run_inside_the_lock(tmp_path):
    db = lancedb.connect(tmp_path / "db")
    seen = []

    class Watched:
        uri = db.uri

        def list_tables(self, **kwargs):
            seen.append(("list", _lock_is_free(tmp_path / "db")))
            return db.list_tables(**kwargs)

        def create_table(self, *args, **kwargs):
            seen.append(("create", _lock_is_free(tmp_path / "db")))
            return db.create_table(*args, **kwargs)

        def open_table(self, name):
            return db.open_table(name)

    create_or_open(Watched(), "t", SCHEMA)
    assert seen == [("list", False), ("create", False)]
    db.open_table("t").add(pa.table({"id": ["a"]}))
    again = create_or_open(Watched(), "t", SCHEMA)  # exists: opened, never created over
    assert again.count_rows() == 1 and seen[-1] == ("list", False)


def test_a_create_that_fails_for_another_reason_is_raised(tmp_path):
    db = lancedb.connect(tmp_path / "db")
    with pytest.raises(Exception, match="schema|Schema"):
        create_or_open(db, "t", "not a schema")
    assert _lock_is_free(tmp_path / "db")
