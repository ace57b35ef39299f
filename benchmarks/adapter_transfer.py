"""Trained adapters on the sets they were and were not trained on, with and without a codec (issue 13).

For each BEIR set (default: SciFact test, whose train split the adapters saw, and
flickr8k-captions, which they never saw) and each token codec preset (default: none and
the package default), ranks the test queries with:

* SMART inference-only (the frozen encoder's token states);
* SMART through each ``--adapters`` directory (e.g. written by ``smart-retrievers train``
  or ``adapter_ablation.py --save-adapters``).

Reports nDCG@10 of the pooled ranking, SMART over the pooled top-100 and exhaustive SMART
(:func:`smart_retrievers.evaluation.compare`, the codec fitted on the first 1,024
documents as a new index would), and the stored bytes per original document token.

Usage::

    python benchmarks/adapter_transfer.py --adapters /tmp/adapters/r128 --json /tmp/adapter_transfer.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from _data import require

from smart_retrievers import SmartEncoder
from smart_retrievers.adapter import SmartAdapter
from smart_retrievers.codec import DEFAULT_COMPRESSION
from smart_retrievers.encoding import Encoding
from smart_retrievers.evaluation import compare, load_beir
from smart_retrievers.training import TokenStates, encode_states
from smart_retrievers.training.loss import adapt_tokens


def encodings(states: TokenStates, adapter: SmartAdapter | None) -> list[Encoding]:
    """The states as encodings, their tokens through ``adapter`` (fp16, as an index stores them)."""
    with torch.no_grad():
        tokens = states.tokens if adapter is None else adapt_tokens(adapter, states.tokens, dtype=torch.float16)
    values = tokens.values.numpy() if isinstance(tokens.values, torch.Tensor) else np.asarray(tokens.values)
    offsets = tokens.offsets
    return [Encoding(pooled=states.pooled[i], tokens=values[offsets[i] : offsets[i + 1]]) for i in range(len(states))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapters", nargs="*", default=[], help="adapter directories to evaluate")
    parser.add_argument("--sets", nargs="+", default=["scifact", "flickr8k-captions"], help="sets under ../shared/data")
    parser.add_argument("--compression", nargs="+", default=["none", DEFAULT_COMPRESSION], help="codec presets")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip inference-only SMART (already measured, e.g. in BENCHMARKS.md)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    encoder = SmartEncoder.default()
    adapters = {} if args.no_baseline else {"inference-only": None}
    adapters |= {Path(a).name: SmartAdapter.load(a) for a in args.adapters}
    rows = []
    for name in args.sets:
        data = load_beir(require(name))
        doc_ids, query_ids = list(data.corpus), list(data.queries)
        doc_states = encode_states(encoder, doc_ids, [data.doc_text(d) for d in doc_ids], kind="document")
        query_states = encode_states(encoder, query_ids, [data.queries[q] for q in query_ids], kind="query")
        tokens = int(doc_states.offsets[-1])
        for label, adapter in adapters.items():
            docs, queries = encodings(doc_states, adapter), encodings(query_states, adapter)
            dim = docs[0].tokens.shape[1]
            for preset in args.compression:
                result = compare(
                    query_ids, queries, doc_ids, docs, data.qrels, compression=preset, encoder=encoder,
                    show_progress=False,
                )  # fmt: skip
                stored = result.stored_tokens or tokens
                row = {
                    "set": name,
                    "adapter": label,
                    "token_dim": dim,
                    "compression": preset,
                    "bytes_per_original_token": round(result.bytes_per_token * stored / tokens, 2),
                    "single": result.results["single"]["ndcg@10"],
                    "rerank@100": result.results["smart-rerank"]["ndcg@10"],
                    "exhaustive": result.results["smart-exhaustive"]["ndcg@10"],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
