"""A database with more tables than one page of LanceDB's listing: every table is found, with no warning.

LanceDB's deprecated ``table_names()`` returns its first page only (10 names), so the 11th table
of a database used to look missing: reopening it failed and ``open_existing`` named it absent.
"""

from __future__ import annotations

import warnings

from hash_encoder import HashEncoder

from smart_retrievers import SmartIndex
from smart_retrievers.store import SmartStore
from smart_retrievers.store.codec_table import user_tables
from smart_retrievers.store.creation import table_names

TABLES = [f"t{i:02d}" for i in range(12)]  # sorted: t10 and t11 fall past the first page of 10


def test_tables_past_the_first_page_are_found_without_a_deprecation_warning(tmp_path):
    path = str(tmp_path / "db")
    for name in TABLES:
        SmartIndex(path, table=name, encoder=HashEncoder(), compression="none").add([f"text of {name}"], ids=[name])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # LanceDB's table_names() warns DeprecationWarning
        index = SmartIndex(path, table="t11", encoder=HashEncoder(), compression="none")
        assert index.count() == 1  # opened, not created anew
        index.add(["more"], ids=["more"])
        assert index.count() == 2
        store = SmartStore.open_existing(path, "t11")
        assert store.table_name == "t11"
        assert user_tables(store.db) == TABLES
        assert sorted(table_names(store.db)) == TABLES
