"""The user's store appending while an upgrade runs: plain LanceDB ``add`` calls on one handle.

``python upgrade_appender.py URI TABLE STOP OUT PAUSE`` appends two rows at a time (their pooled
vectors from the test HashEncoder), PAUSE seconds apart, until the file STOP exists, then writes
the ids it committed to OUT as JSON. Every add must succeed: an upgrade must not break this handle.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lancedb  # noqa: E402
import numpy as np  # noqa: E402
from hash_encoder import HashEncoder  # noqa: E402


def main(uri: str, table: str, stop: Path, out: Path, pause: float) -> None:
    handle = lancedb.connect(uri).open_table(table)  # opened once, before the upgrade commits
    encoder, committed, n = HashEncoder(), [], 0
    while not stop.exists() or n < 4:
        ids = [f"late-{n}", f"late-{n + 1}"]
        texts = [f"a row appended during the upgrade, number {i}" for i in (n, n + 1)]
        vectors = [e.pooled.astype(np.float32).tolist() for e in encoder.encode_documents(texts)]
        handle.add([{"id": i, "text": t, "vector": v} for i, t, v in zip(ids, texts, vectors, strict=True)])
        committed += ids
        n += 2
        time.sleep(pause)
    out.write_text(json.dumps(committed))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), float(sys.argv[5]))
