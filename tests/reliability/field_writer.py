"""One writer of the field-map race: every call brings a new metadata field (issue 25: 2).

Run as ``python field_writer.py PATH PREFIX ROUNDS GO``: waits for the file GO (so that both
processes start together), then adds one row per round with a field no row had before.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the HashEncoder helper

from hash_encoder import HashEncoder  # noqa: E402

from smart_retrievers.index import SmartIndex  # noqa: E402

if __name__ == "__main__":
    path, prefix, rounds, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    index = SmartIndex(path, encoder=HashEncoder())
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    for r in range(rounds):
        index.add([f"{prefix} row {r}"], ids=[f"{prefix}-{r}"], metadatas=[{f"{prefix}_{r}": r}])
