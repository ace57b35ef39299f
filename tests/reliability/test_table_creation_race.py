"""Two processes creating the same new table at once (issue 25: 7): the one that loses the race adopts the
table the other created, as one process does, and both rows land with both fields in the map.

Before the fix the loser failed with a raw LanceDB schema error in most rounds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hash_encoder import HashEncoder

from smart_retrievers.index import SmartIndex

ROUNDS = 12


def test_two_processes_creating_one_new_table_both_write_into_it(tmp_path):
    path, sync = str(tmp_path / "db"), tmp_path / "sync"
    sync.mkdir()
    script = Path(__file__).with_name("create_writer.py")
    names = ("p", "q")
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), path, name, peer, str(ROUNDS), str(sync)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, peer in (names, names[::-1])
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        assert out.splitlines() == ["ok"] * ROUNDS, out
    for r in range(ROUNDS):
        index = SmartIndex(path, table=f"t{r}", encoder=HashEncoder())
        history = [(v["version"], v.get("metadata")) for v in index.store.table.list_versions()]
        found = sorted(h.id for h in index.get([f"p-{r}", f"q-{r}"]))
        assert found == [f"p-{r}", f"q-{r}"], (r, index.count(), history)
        assert index.store.field_types == {"p_field": "int", "q_field": "int"}
        assert index.count(where={"p_field": r}) == 1 and index.count(where={"q_field": r}) == 1
