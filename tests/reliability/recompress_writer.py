"""The two processes of the recompress race: one adds rows while the other recompresses the same table.

Run as ``python recompress_writer.py PATH MODE ROUNDS SYNC``. For each round r (table ``t{r}``, float16
states): ``adder`` marks itself ready in the folder SYNC, waits for the go, then adds one row per call
and prints one JSON line per call (``{"id": ..., "error": null}`` or the error's text); ``recompress``
waits for the adder, gives the go and recompresses the table, printing ``{"round": r, "error": ...}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the HashEncoder helper

from hash_encoder import HashEncoder  # noqa: E402

from smart_retrievers.index import SmartIndex  # noqa: E402

PRESET = "pca16-int8"
CALLS = 12


def _wait(flag: Path) -> None:
    deadline = time.monotonic() + 60
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.001)


def _error(call) -> str | None:  # noqa: ANN001
    try:
        call()
        return None
    except Exception as exc:  # reported to the test, which judges it
        return f"{type(exc).__name__}: {exc}".replace("\n", " ")


if __name__ == "__main__":
    path, mode, rounds, sync = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    for r in range(rounds):
        index = SmartIndex(path, table=f"t{r}", encoder=HashEncoder())
        if mode == "adder":
            (sync / f"{r}-ready").touch()
            _wait(sync / f"{r}-go")
            for c in range(CALLS):
                item = f"new-{r}-{c}"
                error = _error(
                    lambda item=item, index=index: index.add([f"added while recompressing {item}"], ids=[item])
                )
                print(json.dumps({"id": item, "error": error}), flush=True)
        else:
            _wait(sync / f"{r}-ready")
            (sync / f"{r}-go").touch()
            print(
                json.dumps({"round": r, "error": _error(lambda index=index: index.recompress(PRESET, batch_size=8))}),
                flush=True,
            )
