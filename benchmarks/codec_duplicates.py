"""Per codec preset: SMART nDCG@10 through the package's codec and an exact duplicate's relevance.

For each set and preset: ``evaluation.compare`` (SMART over the pooled top-100, the codec fitted on the
first 1,024 documents, float states encoded once and cached), and for 200 documents (seed 1) the relevance
``(1 + late) / 2`` of the document scored against its own token states (float16 states: 1.0):

    python benchmarks/codec_duplicates.py --sets scifact flickr8k-captions --presets none pca128-sign pool2-pca256-sign
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from _data import require
from compression import encodings

from smart_retrievers.codec import DEFAULT_COMPRESSION, TokenCodec
from smart_retrievers.encoders import default_encoder
from smart_retrievers.encoding import Encoding
from smart_retrievers.evaluation import compare, load_beir
from smart_retrievers.scoring import maxsim_flat
from smart_retrievers.training import encode_states


def duplicate_relevance(codec: TokenCodec, docs: list[Encoding], n: int = 200) -> list[float]:
    """``(1 + late) / 2`` of ``n`` documents scored against their own token states through ``codec``."""
    out = []
    for j in np.random.default_rng(1).permutation(len(docs))[:n]:
        tokens = docs[j].tokens.astype(np.float32)
        codes, lengths = codec.encode_docs([tokens])
        out.append(min(1.0, (1.0 + float(maxsim_flat(tokens, codes, lengths, codec=codec))) / 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["scifact", "flickr8k-captions"])
    parser.add_argument("--presets", nargs="+", default=["none", DEFAULT_COMPRESSION])
    parser.add_argument("--fit-docs", type=int, default=1024)
    args = parser.parse_args()
    encoder = default_encoder(device="cpu")
    for name in args.sets:
        data = load_beir(require(name))
        doc_ids, query_ids = list(data.corpus), list(data.queries)
        texts = [data.doc_text(d) for d in doc_ids]
        docs = encodings(encode_states(encoder, doc_ids, texts, kind="document", show_progress=False))
        queries = encodings(
            encode_states(encoder, query_ids, [data.queries[q] for q in query_ids], kind="query", show_progress=False)
        )
        for preset in args.presets:
            result = compare(
                query_ids, queries, doc_ids, docs, data.qrels, compression=preset, fit_docs=args.fit_docs,
                encoder=encoder, show_progress=False,
            )  # fmt: skip
            row = {"set": name, "preset": preset, "rerank@100": round(result.results["smart-rerank"]["ndcg@10"], 4)}
            if preset != "none":
                codec = TokenCodec.fit(preset, [d.tokens for d in docs[: args.fit_docs]])
                relevance = duplicate_relevance(codec, docs)
                row |= {
                    "duplicate_mean": round(float(np.mean(relevance)), 4),
                    "duplicate_min": round(min(relevance), 4),
                }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
