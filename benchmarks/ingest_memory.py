"""Ingest memory: peak RSS of one ``SmartIndex.add`` call against the number of documents.

One call is one commit, streamed batch by batch, so its memory must not grow with the call.
Each size runs in a fresh process (peak RSS is per process). The encoder is the tests' model-free
``HashEncoder`` (384-d, a fixed number of token states per text, like an all-MiniLM SciFact
abstract) so that 100k documents take minutes, not hours; the forward pass adds its own
constant activation memory on top.

    python benchmarks/ingest_memory.py [--sizes 10000 40000 100000] [--tokens 238] [--compression pool2-pca256-sign]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(n: int, tokens: int, compression: str, batch: int) -> dict:
    sys.path.insert(0, str(ROOT / "tests" / "reliability"))
    from hash_encoder import HashEncoder

    from smart_retrievers import SmartIndex

    with tempfile.TemporaryDirectory(prefix="smart_ingest_") as folder:
        index = SmartIndex(folder, encoder=HashEncoder(dim=384, n_tokens=tokens), compression=compression)
        index.configure(write_batch_size=batch)
        start = time.perf_counter()
        index.add([f"document {i}" for i in range(n)], ids=[str(i) for i in range(n)], show_progress=False)
        seconds = time.perf_counter() - start
        assert index.count() == n
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"docs": n, "seconds": round(seconds, 1), "docs_per_s": round(n / seconds), "peak_rss_mb": round(peak_mb)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000, 100_000])
    parser.add_argument("--tokens", type=int, default=238)
    parser.add_argument("--compression", default="pool2-pca256-sign")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.tokens, args.compression, args.batch_size)))
        return
    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--tokens", str(args.tokens)]
        cmd += ["--compression", args.compression, "--batch-size", str(args.batch_size)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
