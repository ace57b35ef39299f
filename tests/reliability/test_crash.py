"""One call, one commit: a writer killed at any point leaves all of its call or none of it."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from hash_encoder import HashEncoder

from smart_retrievers.index import SmartIndex, load_metadata

from .crash_writer import CALL_ROWS, SEED_ROWS, call_metadatas, call_texts, seed_texts
from .kill_points import run_script

TRIALS = 24
EXPECTED_TYPES = {"year": "int", "tag": "str", "score": "float"}

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the trials fork and send SIGKILL (POSIX only)")


@pytest.fixture(scope="module")
def trials(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("crash")
    return root, run_script("crash_writer.py", root, TRIALS, 7)


def test_kills_land_before_during_and_after_the_stream(trials):
    _, results = trials
    assert len(results) == TRIALS
    killed = [r for r in results if r["killed"]]
    assert len(killed) >= TRIALS // 2
    # kills after the first internal batch had been encoded and handed to the writer
    assert sum(1 for r in killed if r["batches_seen"] >= 1) >= TRIALS // 3
    assert any(r["batches_seen"] == 0 for r in killed)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_no_partial_call_and_no_field_drift(trials, trial):
    root, _ = trials
    index = SmartIndex(str(root / f"t{trial}"), encoder=HashEncoder())
    rows = index.store.table.to_arrow().select(["id", "text", "metadata"]).to_pylist()
    texts = Counter(r["text"] for r in rows)
    assert len(rows) in (SEED_ROWS, SEED_ROWS + CALL_ROWS)  # all of the call, or none of it
    assert all(count == 1 for count in texts.values())
    assert {t for t in seed_texts()} <= set(texts)
    call = set(call_texts(trial))
    assert len(call & set(texts)) in (0, CALL_ROWS)
    # the field map covers every field a row holds, with its type, whatever point the kill hit;
    # it may already know the call's fields when the rows never came (it is written first)
    types = index.store.field_types
    held = {key for r in rows for key in load_metadata(r["metadata"])}
    assert held <= set(types) <= set(EXPECTED_TYPES)
    assert {key: types[key] for key in held} == {key: EXPECTED_TYPES[key] for key in held}
    assert index.count(where={"year": {"$gte": 2000}}) == len(rows) - SEED_ROWS
    # a retry completes the call exactly once
    if len(rows) == SEED_ROWS:
        index.add(call_texts(trial), metadatas=call_metadatas())
        assert index.count() == SEED_ROWS + CALL_ROWS
        assert index.count(where={"tag": "t3"}) == sum(1 for m in call_metadatas() if m["tag"] == "t3")
