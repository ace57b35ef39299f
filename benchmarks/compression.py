"""Token storage vs quality for every codec preset, on SciFact and flickr8k captions.

For each set the corpus and queries are encoded once (cached with the training state cache),
then for each preset:

* ``compare(..., compression=preset)`` scores exactly as an index with that preset would
  (codec fitted on the first 1,024 documents, float queries against codes): nDCG@10 of
  SMART over the pooled top-100 and of exhaustive SMART, and the share of exhaustive
  SMART's top 10 that the pooled top-100/200/500/1000 hold;
* a real LanceDB table is written with ``SmartIndex.add_encodings`` and compacted, and its
  bytes on disk per document are measured from the Lance files.

``--fit-docs`` also measures how nDCG moves with the codec's fit sample (0 = the built-in
generic sample only). ``--vision`` runs flickr8k-1k images through a tiny random CLIP
(code path and codec round trip only; random weights say nothing about quality).

``--levers`` measures what each codec lever costs in bytes and buys in nDCG (``codec_levers.py``).
``--pool-cost`` times pooling against the forward pass on 64 SciFact abstracts (process CPU time).
``--ship-codec`` rewrites the default model's generic codec that the package ships.

``--plot PNG`` draws the size-vs-nDCG curve of the rows (nDCG@10 against KB per document on
disk, one panel per set; needs matplotlib); ``--from-json`` re-draws it from a saved ``--json``
without running anything.

    python benchmarks/compression.py --json /tmp/compression.json --plot docs/bench_compression.png
    python benchmarks/compression.py --from-json /tmp/compression.json --plot docs/bench_compression.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from _data import require
from _measure import disk_bytes

from smart_retrievers import SmartIndex
from smart_retrievers.codec import DEFAULT_COMPRESSION
from smart_retrievers.codec.fitting import write_shipped_codec
from smart_retrievers.encoders import default_encoder
from smart_retrievers.encoding import Encoding
from smart_retrievers.evaluation import compare, load_beir
from smart_retrievers.training import encode_states

PRESETS = [
    "none",
    DEFAULT_COMPRESSION,
    "pool2-pca128-sign",
    "pca128-sign",
    "pca64-sign",
    "pca128-int2",
    "pool2-fp16",
]


def encodings(states) -> list[Encoding]:
    return [Encoding(pooled=states.pooled[i], tokens=np.asarray(states.tokens.item(i))) for i in range(len(states))]


def table_bytes_per_doc(encoder, docs: list[Encoding], texts: list[str], ids: list[str], preset: str) -> float:
    folder = Path(tempfile.mkdtemp(prefix="smart_compression_"))
    try:
        index = SmartIndex(str(folder), encoder=encoder, compression=preset)
        index.add_encodings(docs, texts, ids=ids)
        index.store.table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)
        return disk_bytes(folder) / len(ids)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_set(name: str, presets: list[str], fit_docs: list[int], encoder) -> list[dict]:
    data = load_beir(require(name))
    doc_ids, query_ids = list(data.corpus), list(data.queries)
    texts = [data.doc_text(d) for d in doc_ids]
    docs = encodings(encode_states(encoder, doc_ids, texts, kind="document"))
    queries = encodings(encode_states(encoder, query_ids, [data.queries[q] for q in query_ids], kind="query"))
    tokens = sum(len(d.tokens) for d in docs)
    rows = []
    runs = [(preset, 1024) for preset in presets] + [(DEFAULT_COMPRESSION, n) for n in fit_docs if n != 1024]
    for preset, n_fit in runs:
        start = time.perf_counter()
        result = compare(
            query_ids, queries, doc_ids, docs, data.qrels, compression=preset, fit_docs=n_fit, encoder=encoder,
            show_progress=False,
        )  # fmt: skip
        row = {
            "set": name,
            "preset": preset,
            "fit_docs": n_fit,
            "bytes_per_original_token": None,
            "kb_per_doc_on_disk": None,
            "single": result.results["single"]["ndcg@10"],
            "rerank@100": result.results["smart-rerank"]["ndcg@10"],
            "exhaustive": result.results["smart-exhaustive"]["ndcg@10"],
            "coverage": result.coverage,
            "seconds": round(time.perf_counter() - start, 1),
        }
        if n_fit == 1024:
            stored = result.stored_tokens if result.stored_tokens else tokens
            row["bytes_per_original_token"] = round(result.bytes_per_token * stored / tokens, 2)
            row["kb_per_doc_on_disk"] = round(table_bytes_per_doc(encoder, docs, texts, doc_ids, preset) / 1024, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def run_levers(name: str, encoder, only: list[int] | None = None) -> list[dict]:
    """The codec levers of :mod:`codec_levers` (those at positions ``only``, or all) on one set's cached states."""
    from codec_levers import LEVERS, evaluate, word_starts

    data = load_beir(require(name))
    doc_ids, query_ids = list(data.corpus), [q for q in data.queries if q in data.qrels]
    texts = [data.doc_text(d) for d in doc_ids]
    d_states = encode_states(encoder, doc_ids, texts, kind="document")
    q_states = encode_states(encoder, query_ids, [data.queries[q] for q in query_ids], kind="query")
    docs = [np.asarray(d_states.tokens.item(i), dtype=np.float32) for i in range(len(doc_ids))]
    queries = [np.asarray(q_states.tokens.item(i), dtype=np.float32) for i in range(len(query_ids))]
    starts = word_starts(encoder, texts)
    pooled = torch.from_numpy(d_states.pooled), torch.from_numpy(q_states.pooled)
    rows = []
    for lever in [LEVERS[i] for i in only] if only else LEVERS:
        start = time.process_time()
        lever.fit(docs[:1024], starts[:1024])
        result = evaluate(lever, data, doc_ids, docs, starts, query_ids, queries, *pooled, exhaustive=len(docs) <= 2000)
        rows.append({"set": name, "lever": lever.name, **result, "cpu_s": round(time.process_time() - start, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def run_vision(n_images: int) -> dict:
    """flickr8k-1k images through a tiny random CLIP: default codec written, read back, scored."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_vision_models import build_clip

    from smart_retrievers.encoders import ClipEncoder
    from smart_retrievers.scoring import maxsim_flat

    data = require("flickr8k-1k")
    images = sorted((data / "images").glob("*.jpg"))[:n_images]
    folder = Path(tempfile.mkdtemp(prefix="smart_vision_"))
    try:
        encoder = ClipEncoder(build_clip(folder / "model"), device="cpu")
        index = SmartIndex(str(folder / "db"), encoder=encoder)
        ids = index.add_images([str(p) for p in images])
        query = encoder.encode_queries(["a dog runs on the grass"])[0]
        hits = index.search_encoded(query, k=n_images, mode="exhaustive")
        float_docs = encoder.encode_images([str(p) for p in images])
        exact = {i: float(maxsim_flat(query.tokens, d.tokens, [len(d.tokens)])[0]) for i, d in zip(ids, float_docs)}
        coded = {h.id: h.late_score for h in hits}
        pairs = np.array([(exact[i], coded[i]) for i in ids])
        return {
            "images": len(ids),
            "codec": index.codec.describe(),
            "late_score_correlation_coded_vs_float": round(float(np.corrcoef(pairs.T)[0, 1]), 4),
            "mean_abs_late_error": round(float(np.abs(pairs[:, 0] - pairs[:, 1]).mean()), 4),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["scifact", "flickr8k-captions"])
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument(
        "--fit-docs", type=int, nargs="*", default=[0, 16, 128], help="extra fit sizes (default preset, first set)"
    )
    parser.add_argument("--vision", type=int, default=64, help="flickr8k-1k images through a tiny CLIP (0: skip)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write every row to this JSON file")
    parser.add_argument("--plot", help="write the size-vs-nDCG curve to this PNG (needs matplotlib)")
    parser.add_argument("--from-json", help="plot the rows of a saved --json file instead of running")
    parser.add_argument("--levers", action="store_true", help="measure the codec levers (codec_levers.py) instead")
    parser.add_argument("--pool-cost", action="store_true", help="CPU time of pooling vs the forward pass, and stop")
    parser.add_argument("--only", type=int, nargs="+", help="with --levers: these positions of codec_levers.LEVERS")
    parser.add_argument(
        "--ship-codec", action="store_true", help="rewrite the packaged generic codec of the default model and stop"
    )
    args = parser.parse_args()
    if args.ship_codec:
        print(f"wrote {write_shipped_codec(default_encoder(device='cpu'))}")
        return
    if args.from_json:
        if not args.plot:
            parser.error("--from-json needs --plot")
        plot(json.loads(Path(args.from_json).read_text())["rows"], args.plot)
        return
    torch.set_num_threads(args.threads)
    encoder = default_encoder(device="cpu")
    rows = []
    if args.pool_cost:
        from codec_levers import pooling_cost

        data = load_beir(require("scifact"))
        print(json.dumps(pooling_cost(encoder, [data.doc_text(d) for d in list(data.corpus)[:64]])))
        return
    if args.levers:
        rows = [row for name in args.sets for row in run_levers(name, encoder, args.only)]
        if args.json:
            Path(args.json).write_text(json.dumps({"levers": rows}, indent=2))
        return
    for i, name in enumerate(args.sets):
        rows += run_set(name, args.presets, args.fit_docs if i == 0 else [], encoder)
    vision = run_vision(args.vision) if args.vision else None
    if vision:
        print(json.dumps({"vision": vision}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "vision": vision}, indent=2))
    if args.plot:
        plot(rows, args.plot)


def plot(rows: list[dict], path: str) -> None:
    from smart_retrievers.evaluation.plots import plot_size_quality

    title = "Token storage vs quality: exhaustive SMART nDCG@10, all-MiniLM-L6-v2"
    print(f"wrote {plot_size_quality(rows, path, default=DEFAULT_COMPRESSION, title=title)}")


if __name__ == "__main__":
    main()
