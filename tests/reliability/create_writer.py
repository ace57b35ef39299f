"""One writer of the table-creation race (issue 25: 7): every round, it and its peer create the same new table.

Run as ``python create_writer.py PATH NAME PEER ROUNDS SYNC``: for each round r, it marks itself ready in the
folder SYNC and waits for its peer's mark, then adds one row (with a field of its own) to the table ``t{r}``,
which neither has created yet. It prints one line per round: ``ok``, or the error.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the HashEncoder helper

from hash_encoder import HashEncoder  # noqa: E402

from smart_retrievers.index import SmartIndex  # noqa: E402

if __name__ == "__main__":
    path, name, peer, rounds, sync = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
    for r in range(rounds):
        (sync / f"{r}-{name}").touch()
        deadline = time.monotonic() + 30
        while not (sync / f"{r}-{peer}").exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        try:
            index = SmartIndex(path, table=f"t{r}", encoder=HashEncoder())
            index.add([f"{name} row {r}"], ids=[f"{name}-{r}"], metadatas=[{f"{name}_field": r}])
            print("ok", flush=True)
        except Exception as exc:  # reported to the test, which fails on it
            print(f"{type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
