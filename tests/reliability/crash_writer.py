"""Crash trials: writers killed with SIGKILL in the middle of ``SmartIndex.add``.

Run as ``python crash_writer.py ROOT TRIALS SEED``. The process imports the package and
LanceDB once, never touches a table itself (LanceDB resets its runtime in a forked child,
which is safe while the parent has no operation in flight) and forks one writer that
seeds a table with 10 rows, copied for each trial, and per trial one writer that adds
400 rows in batches of 50 and is killed with SIGKILL: after a chosen number of encoded batches (0 to 8, plus a random
few milliseconds), so kills land before, during and after the stream. It prints one JSON
line per trial; the test reads the tables afterwards.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path

import lancedb  # noqa: F401  (imported once, before the forks)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the HashEncoder helper

from hash_encoder import HashEncoder  # noqa: E402

from reliability.kill_points import in_child, kill_after, run_trials  # noqa: E402
from smart_retrievers.index import SmartIndex  # noqa: E402

SEED_ROWS = 10
CALL_ROWS = 400
BATCH = 50


def seed_texts() -> list[str]:
    return [f"seed row {i}" for i in range(SEED_ROWS)]


def call_texts(trial: int) -> list[str]:
    return [f"trial {trial} row {i}" for i in range(CALL_ROWS)]


def call_metadatas() -> list[dict]:
    """New fields in the killed call: its field types must never drift from its rows."""
    return [{"year": 2000 + i % 20, "tag": f"t{i % 7}", "score": i / 10} for i in range(CALL_ROWS)]


def seed_table(root: Path) -> Path:
    """A table of 10 rows (and its fitted codec), written once and copied for every trial."""
    path = root / "seed"

    def seed() -> None:
        index = SmartIndex(str(path), encoder=HashEncoder())
        index.add(seed_texts(), ids=[f"s{i}" for i in range(SEED_ROWS)], metadatas=[{"year": 1999}] * SEED_ROWS)

    os.waitpid(in_child(seed), 0)
    return path


def run_trial(root: Path, seed: Path, trial: int, rng: random.Random) -> dict:
    path = root / f"t{trial}"
    trace = root / f"t{trial}.trace"
    shutil.copytree(seed, path)

    def write() -> None:
        index = SmartIndex(str(path), encoder=HashEncoder(trace=trace), write_batch_size=BATCH)
        ids = None if trial % 2 else [f"c{i}" for i in range(CALL_ROWS)]
        index.add(call_texts(trial), ids=ids, metadatas=call_metadatas(), show_progress=False)

    target = trial % (CALL_ROWS // BATCH + 1)  # batches encoded before the kill: 0..8
    pid = in_child(write)
    # a few ms into the next batch; after the last batch, anywhere in (or past) the commit
    seen, killed = kill_after(pid, trace, target, linger=rng.uniform(0, 0.4 if target == CALL_ROWS // BATCH else 0.01))
    return {"trial": trial, "target": target, "batches_seen": seen, "killed": killed}


if __name__ == "__main__":
    run_trials(seed_table, run_trial)
