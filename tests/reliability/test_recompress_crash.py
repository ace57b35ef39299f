"""A ``recompress`` killed at any point leaves the table as it was, or fully recompressed, and a re-run finishes.

The crash trials of ``test_crash.py``, extended to the token rewrite (issue 25: 1): kills land before the
first token batch, between batches and around the swap commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hash_encoder import HashEncoder

from smart_retrievers.index import SmartIndex

from .kill_points import run_script
from .recompress_crash import BATCHES, PRESET, seed_texts

TRIALS = 10

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the trials fork and send SIGKILL (POSIX only)")


@pytest.fixture(scope="module")
def trials(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("recompress-crash")
    return root, run_script("recompress_crash.py", root, TRIALS, 11)


def test_kills_land_before_between_and_after_the_batches(trials):
    _, results = trials
    assert len(results) == TRIALS
    killed = [r for r in results if r["killed"]]
    assert len(killed) >= TRIALS // 2
    assert any(r["batches_seen"] == 0 for r in killed)
    assert any(0 < r["batches_seen"] < BATCHES for r in killed)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_the_table_is_as_it_was_or_recompressed_and_a_rerun_finishes(trials, trial):
    root, _ = trials
    index = SmartIndex(str(root / f"t{trial}"), encoder=HashEncoder())
    rows = index.store.table.to_arrow().to_pylist()
    assert {r["id"]: r["text"] for r in rows} == seed_texts()  # no row lost, none doubled
    assert not [c for c in index.store.table.schema.names if c.startswith("__smart")]
    assert index.store.compression in ("none", PRESET)
    for row in rows:  # never a mix: every row float16 states, or every row codes of the new codec
        coded = isinstance(row["tokens"], bytes) or np.asarray(row["tokens"][0]).dtype.kind in "iu"
        assert coded == (index.store.compression == PRESET), row["id"]
    assert index.search(seed_texts()["d17"], k=1)[0].id == "d17"
    if index.store.compression == "none":
        assert index.recompress(PRESET, batch_size=8) == len(rows)
    assert index.store.compression == PRESET
    index.add(["written after the crash"], ids=["after"])
    assert index.count() == len(rows) + 1
    assert index.search("written after the crash", k=1)[0].id == "after"
    assert index.search(seed_texts()["d42"], k=1)[0].id == "d42"
