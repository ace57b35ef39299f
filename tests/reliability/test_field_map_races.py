"""Writers that bring new metadata fields at once never drop each other's from the field map (issue 25: 2).

A field missing from the map makes the rows holding it match no filter (and ``$ne`` / ``$nin``
match them). The map is committed against the version it was read from, so a concurrent update
is a conflict that is re-read and merged, never a silent overwrite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hash_encoder import HashEncoder

from smart_retrievers.index import SmartIndex
from smart_retrievers.store import writer

ROUNDS = 30


def test_a_map_update_between_read_and_commit_is_merged_not_lost(tmp_path, monkeypatch):
    path = str(tmp_path / "db")
    first = SmartIndex(path, encoder=HashEncoder())
    first.add(["base"], ids=["base"], metadatas=[{"base": 1}])
    other = SmartIndex(path, encoder=HashEncoder())
    real = writer.widen_field_types
    interleaved = []

    def widen(stored, types):  # `first` has read the map; `other` commits its own field before `first` commits
        if "a" in types and not interleaved:
            interleaved.append(True)
            other.add(["b row"], ids=["b"], metadatas=[{"b": "x"}])
        return real(stored, types)

    monkeypatch.setattr(writer, "widen_field_types", widen)
    first.add(["a row"], ids=["a"], metadatas=[{"a": 2}])
    assert interleaved
    fresh = SmartIndex(path, encoder=HashEncoder())
    assert fresh.store.field_types == {"a": "int", "b": "str", "base": "int"}
    assert [h.id for h in fresh.get(["a", "b"])] == ["a", "b"]
    assert fresh.count(where={"b": "x"}) == 1 and fresh.count(where={"a": 2}) == 1
    assert fresh.count(where={"b": {"$ne": "x"}}) == 2  # base and a: b's row is not among them


def test_two_processes_adding_new_fields_at_once_keep_every_field(tmp_path):
    path = str(tmp_path / "db")
    index = SmartIndex(path, encoder=HashEncoder())
    index.add(["base"], ids=["base"], metadatas=[{"base": 1}])
    go = tmp_path / "go"
    script = Path(__file__).with_name("field_writer.py")
    procs = [
        subprocess.Popen([sys.executable, str(script), path, prefix, str(ROUNDS), str(go)], stderr=subprocess.PIPE)
        for prefix in ("p", "q")
    ]
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    expected = {"base": "int"} | {f"{p}_{r}": "int" for p in ("p", "q") for r in range(ROUNDS)}
    assert index.count() == 1 + 2 * ROUNDS
    assert index.store.field_types == expected
    every = [{f"{p}_{r}": r} for p in ("p", "q") for r in range(ROUNDS)]
    assert index.count(where={"$or": every}) == 2 * ROUNDS  # every row matches its own field
    assert index.count(where={"$and": [{k: {"$ne": v}} for f in every for k, v in f.items()]}) == 1  # only base
