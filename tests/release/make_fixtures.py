"""Write the table fixtures of the current table format (``python tests/release/make_fixtures.py``).

Each release that changes the table format commits its own ``fixtures/format<N>/`` beside the
older ones, so ``test_format_version.py`` checks that tables written by every earlier release
still open (directly, or after ``smart-retrievers migrate``) and answer as they did. The tables
are written with the model-free :class:`HashEncoder` (a few KB); ``expected.json`` records the
rows and the hits each table gave when it was written.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the HashEncoder helper

from hash_encoder import HashEncoder  # noqa: E402

from smart_retrievers import SmartIndex  # noqa: E402
from smart_retrievers._version import __version__  # noqa: E402
from smart_retrievers.store import FORMAT_VERSION  # noqa: E402

TEXTS = {
    "a": "the red star binds the blue ring",
    "b": "a blue star beside a red ring",
    "c": "tables keep their format version",
    "d": "migrations run once per table",
    "e": "late interaction scores every token",
    "f": "pooled vectors find the candidates",
}
METADATA = {key: {"year": 2020 + i, "tags": ["even" if i % 2 == 0 else "odd"]} for i, key in enumerate(TEXTS)}
QUERIES = ["red star", "format of a table", "token scores"]
TABLES = {"float16": "none", "coded": "pool2-pca256-sign"}
"""Fixture table name -> the compression it is written with."""


def open_fixture(db: Path, table: str, compression: str | None = None) -> SmartIndex:
    """A fixture table, opened (or created) the way the fixtures are written and read."""
    return SmartIndex(str(db), encoder=HashEncoder(), table=table, compression=compression, text_index=None)


def hits_of(index: SmartIndex) -> dict[str, list[list]]:
    """Every query's ``[id, score]`` hits (rerank mode, float scores rounded to 6 places)."""
    return {q: [[h.id, round(h.score, 6)] for h in index.search(q, k=3, mode="rerank")] for q in QUERIES}


def main() -> None:
    out = HERE / "fixtures" / f"format{FORMAT_VERSION}"
    shutil.rmtree(out, ignore_errors=True)
    expected: dict = {"format": FORMAT_VERSION, "written_by": __version__, "tables": {}}
    for table, compression in TABLES.items():
        index = open_fixture(out / "db", table, compression)
        index.add(list(TEXTS.values()), ids=list(TEXTS), metadatas=[METADATA[k] for k in TEXTS])
        index.optimize(cleanup_older_than=timedelta(0))  # one version and fragment: the fewest files
        expected["tables"][table] = {"compression": compression, "rows": len(TEXTS), "hits": hits_of(index)}
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
