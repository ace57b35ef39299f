"""One process recompresses a table while another adds to it (the reliability probe's two-process check).

Every row the adder commits is in the table afterwards, coded by the new codec; an add whose commit the
rewrite preempted (Lance: "Append with different schema" / "preempted by Merge", nothing written) is encoded
and committed again by the add itself, so every call succeeds and the adder's handle keeps working.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hash_encoder import HashEncoder

from smart_retrievers.index import SmartIndex

from .recompress_writer import CALLS, PRESET

ROUNDS = 4


def test_recompress_keeps_every_row_another_process_commits(tmp_path):
    path, sync = str(tmp_path / "db"), tmp_path / "sync"
    sync.mkdir()
    for r in range(ROUNDS):
        index = SmartIndex(path, table=f"t{r}", encoder=HashEncoder(), compression="none", write_batch_size=8)
        for start in range(0, 60, 20):  # several fragments
            index.add(
                [f"base {r} {i}" for i in range(start, start + 20)], ids=[f"d{i}" for i in range(start, start + 20)]
            )
    script = Path(__file__).with_name("recompress_writer.py")
    procs = {
        mode: subprocess.Popen(
            [sys.executable, str(script), path, mode, str(ROUNDS), str(sync)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("adder", "recompress")
    }
    outputs = {}
    for mode, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        outputs[mode] = [json.loads(line) for line in out.splitlines()]
    assert [o["error"] for o in outputs["recompress"]] == [None] * ROUNDS, outputs["recompress"]
    calls = outputs["adder"]
    assert len(calls) == ROUNDS * CALLS
    assert [c for c in calls if c["error"] is not None] == []
    for r in range(ROUNDS):
        index = SmartIndex(path, table=f"t{r}", encoder=HashEncoder())
        committed = {c["id"] for c in calls if c["id"].startswith(f"new-{r}-")}
        assert index.store.compression == PRESET
        rows = {row["id"]: row for row in index.store.table.to_arrow().select(["id", "n_tokens"]).to_pylist()}
        assert committed <= set(rows) and len(rows) == 60 + len(committed)
        for item in sorted(committed)[:3]:
            assert index.search(f"added while recompressing {item}", k=1)[0].id == item
