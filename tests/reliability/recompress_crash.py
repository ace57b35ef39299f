"""Crash trials of ``recompress``: the process is killed with SIGKILL while it rewrites the token columns.

Run as ``python recompress_crash.py ROOT TRIALS SEED``. As ``crash_writer.py`` does, this process imports
the package and LanceDB once, never touches a table itself, and forks: one child seeds a float16 table
of 60 rows in 3 fragments (copied for each trial), and per trial one child recompresses it with
``batch_size=8`` (9 token batches) and is killed after a chosen number of batches (0 to 9, plus a few
random milliseconds; after the 9th, anywhere in or past the swap commit). It prints one JSON line per
trial; the test reads the tables afterwards.
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
from smart_retrievers.index import SmartIndex, upkeep  # noqa: E402

PRESET = "pca16-int8"
ROWS = 60
BATCHES = 9  # 3 fragments of 20 rows, 8 rows per batch


def seed_texts() -> dict[str, str]:
    return {f"d{i}": f"seed row {i} about topic {i % 5}" for i in range(ROWS)}


def seed_table(root: Path) -> Path:
    path = root / "seed"

    def seed() -> None:
        index = SmartIndex(str(path), encoder=HashEncoder(), compression="none")
        items = list(seed_texts().items())
        for start in range(0, ROWS, 20):  # one fragment per call
            chunk = items[start : start + 20]
            index.add([t for _, t in chunk], ids=[i for i, _ in chunk], metadatas=[{"n": start}] * len(chunk))

    os.waitpid(in_child(seed), 0)
    return path


def run_trial(root: Path, seed: Path, trial: int, rng: random.Random) -> dict:
    path, trace = root / f"t{trial}", root / f"t{trial}.trace"
    shutil.copytree(seed, path)

    def rewrite() -> None:
        real = upkeep._tokens_columns

        def traced(*args, **kwargs):  # noqa: ANN002, ANN003
            out = real(*args, **kwargs)
            with open(trace, "a") as f:
                f.write("x\n")
            return out

        upkeep._tokens_columns = traced
        SmartIndex(str(path), encoder=HashEncoder()).recompress(PRESET, batch_size=8, show_progress=False)

    target = trial % (BATCHES + 1)
    pid = in_child(rewrite)
    seen, killed = kill_after(pid, trace, target, linger=rng.uniform(0, 0.2 if target == BATCHES else 0.005))
    return {"trial": trial, "target": target, "batches_seen": seen, "killed": killed}


if __name__ == "__main__":
    run_trials(seed_table, run_trial)
