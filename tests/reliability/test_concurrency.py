"""Concurrent writers never lose each other's rows; every handle keeps working; reads are fresh."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hash_encoder import FAIL_MARK, HashEncoder

from smart_retrievers.index import SmartIndex

from .concurrent_writer import run

ROUNDS = 4


def test_two_processes_and_two_handles_write_at_once(tmp_path):
    path = str(tmp_path / "db")
    first = SmartIndex(path, encoder=HashEncoder())
    first.add([f"base {i}" for i in range(10)], ids=[f"base-{i}" for i in range(10)], metadatas=[{"who": "base"}] * 10)
    script = Path(__file__).with_name("concurrent_writer.py")
    outs = [tmp_path / f"p{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen([sys.executable, str(script), path, f"p{i}", str(ROUNDS), str(out)], stderr=subprocess.PIPE)
        for i, out in enumerate(outs)
    ]
    with ThreadPoolExecutor(2) as pool:  # two handles of this process, each with its own connection
        handles = list(pool.map(lambda prefix: run(path, prefix, ROUNDS), ["h0", "h1"]))
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    expected = {f"base-{i}": f"base {i}" for i in range(10)}
    for state in [*handles, *(json.loads(out.read_text()) for out in outs)]:
        expected.update(state)
    # no committed row lost, no failed call's row visible, every upsert and delete applied
    rows = first.store.table.to_arrow().select(["id", "text"]).to_pylist()
    assert len(rows) == len(expected)
    assert {r["id"]: r["text"] for r in rows} == expected
    # the handle opened first saw every later commit, and it and a new one keep writing
    assert first.count() == len(expected)
    first.add(["after all"], ids=["after"])
    assert SmartIndex(path, encoder=HashEncoder()).get(["after"])[0].text == "after all"
    assert first.count(where={"who": "p1"}) == len(json.loads(outs[1].read_text()))


def test_reads_see_other_handles_commits_by_default(tmp_path):
    path = str(tmp_path / "db")
    writer = SmartIndex(path, encoder=HashEncoder())
    early = SmartIndex(path, encoder=HashEncoder())  # opened before the table exists
    writer.add(["one", "two"], ids=["1", "2"], metadatas=[{"year": 1}, {"year": 2}])
    fresh = SmartIndex(path, encoder=HashEncoder())
    stale = SmartIndex(path, encoder=HashEncoder(), read_consistency_interval=None)
    writer.add(["three"], ids=["3"], metadatas=[{"colour": "red"}])
    assert early.count() == fresh.count() == 3
    assert fresh.count(where={"colour": "red"}) == 1  # a field another handle introduced
    assert fresh.search("three", k=1)[0].id == "3"
    assert stale.count() == 2  # never looks again: the knob is honoured


def test_a_failed_add_leaves_other_writers_rows_and_handles_intact(tmp_path):
    """The probe's scenario: a failing multi-batch add next to another handle's commit."""
    path = str(tmp_path / "db")
    a = SmartIndex(path, encoder=HashEncoder())
    a.add([f"row {i}" for i in range(10)], ids=[f"r{i}" for i in range(10)])
    b = SmartIndex(path, encoder=HashEncoder(), write_batch_size=1)
    a.add(["by A"], ids=["A1"])
    version = a.store.version
    with pytest.raises(RuntimeError, match="marked text"):
        b.add(["ok", FAIL_MARK], ids=["B1", "B2"])  # batch 1 streamed, batch 2 fails
    assert [h.id for h in SmartIndex(path, encoder=HashEncoder()).get(["A1", "B1"])] == ["A1"]
    assert a.store.version == version  # nothing was committed, nothing restored
    a.add(["x"], ids=["A2"])
    b.add(["y"], ids=["B3"])
    assert a.count() == 13 and b.count() == 13
