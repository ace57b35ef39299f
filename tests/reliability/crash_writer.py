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

import json
import os
import random
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path

import lancedb  # noqa: F401  (imported once, before the forks)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the HashEncoder helper

from hash_encoder import HashEncoder  # noqa: E402

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


def _in_child(work) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            work()
        finally:
            os._exit(0)
    return pid


def seed_table(root: Path) -> Path:
    """A table of 10 rows (and its fitted codec), written once and copied for every trial."""
    path = root / "seed"

    def seed() -> None:
        index = SmartIndex(str(path), encoder=HashEncoder())
        index.add(seed_texts(), ids=[f"s{i}" for i in range(SEED_ROWS)], metadatas=[{"year": 1999}] * SEED_ROWS)

    os.waitpid(_in_child(seed), 0)
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
    pid = _in_child(write)
    deadline = time.monotonic() + 20
    seen = 0
    while time.monotonic() < deadline:
        seen = len(trace.read_text().splitlines()) if trace.exists() else 0
        if seen >= target or os.waitpid(pid, os.WNOHANG) != (0, 0):
            break
        time.sleep(0.0005)
    # a few ms into the next batch; after the last batch, anywhere in (or past) the commit
    time.sleep(rng.uniform(0, 0.4 if target == CALL_ROWS // BATCH else 0.01))
    try:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status)
    except (ProcessLookupError, ChildProcessError):
        killed = False
    seen = len(trace.read_text().splitlines()) if trace.exists() else 0
    return {"trial": trial, "target": target, "batches_seen": seen, "killed": killed}


def main() -> None:
    root, trials, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    warnings.filterwarnings("ignore", message="lancedb fork support is experimental")
    rng = random.Random(seed)
    seeded = seed_table(root)
    for trial in range(trials):
        print(json.dumps(run_trial(root, seeded, trial, rng)), flush=True)


if __name__ == "__main__":
    main()
