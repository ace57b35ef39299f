"""One writer of the concurrency trial: adds, upserts, deletes, a failing add and reads.

``run(path, prefix, rounds)`` touches only ids that start with ``prefix`` and returns the
state its rows must have at the end ({id: text}). Run as a script
(``python concurrent_writer.py PATH PREFIX ROUNDS OUT``) it writes that state as JSON to OUT,
so that several processes and several handles of one process can write at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the HashEncoder helper

from hash_encoder import FAIL_MARK, HashEncoder  # noqa: E402

from smart_retrievers.index import SmartIndex  # noqa: E402


def run(path: str, prefix: str, rounds: int) -> dict[str, str]:
    index = SmartIndex(path, encoder=HashEncoder(), write_batch_size=8)
    state: dict[str, str] = {}
    for r in range(rounds):
        ids = [f"{prefix}-{r}-{i}" for i in range(20)]
        texts = [f"{prefix} round {r} item {i}" for i in range(20)]
        index.add(texts, ids=ids, metadatas=[{"who": prefix, "round": r}] * 20, show_progress=False)
        state.update(zip(ids, texts))
        changed = {i: f"{state[i]} v2" for i in ids[:5]}
        index.add(list(changed.values()), ids=list(changed), metadatas=[{"who": prefix, "round": r}] * 5)
        state.update(changed)
        gone = ids[5:8]
        assert index.delete(gone) == 3
        for i in gone:
            del state[i]
        failing = [f"{prefix} doomed {r} {i}" for i in range(30)] + [FAIL_MARK]
        try:
            index.add(failing, ids=[f"{prefix}-doomed-{r}-{i}" for i in range(31)], metadatas=[{"who": prefix}] * 31)
        except RuntimeError as exc:
            assert "marked text" in str(exc), exc
        else:
            raise AssertionError("the failing add did not fail")
        # reads see at least this writer's own committed rows, and none of its failed ones
        assert index.count(where={"who": prefix}) == len(state)
        assert index.get([f"{prefix}-doomed-{r}-0"]) == []
        assert index.search(texts[10], k=1)[0].id == ids[10]
    return state


if __name__ == "__main__":
    path, prefix, rounds, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    Path(out).write_text(json.dumps(run(path, prefix, rounds)))
