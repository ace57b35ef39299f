"""Which pooled ANN index at a million rows: recall@100, search time and the searching process's memory.

Not run in CI. Works on a copy of a scale table's ``id`` and ``vector`` columns (the token codes do not
change which index finds the candidates), so the table ``scale.py`` built keeps its own index:

    python benchmarks/ann_types.py --source /tmp/scale/t1m --slim /tmp/scale/slim1m \\
        --truth /tmp/scale/truth1m.json --types IVF_FLAT IVF_RQ IVF_SQ

For each index type the index is trained on every row (``replace=True``, cosine, LanceDB's default
partitions), then a fresh process opens the table, runs the 300 SciFact test queries once to warm it,
and for each knob set (``nprobes``, ``refine_factor``) times the pooled top-100 (ids only) of every
query, alternating knob sets query by query. Recall is against the flat top-100 of ``scale.py truth``.
RSS is the searching process's resident memory after its searches, less its RSS before it opened
the table (the model and the queries are loaded first).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _measure import disk_bytes, pct

KNOBS: dict[str, list[dict]] = {
    "IVF_FLAT": [{"nprobes": 50}, {"nprobes": 100}],
    "IVF_SQ": [{"nprobes": 50}, {"nprobes": 50, "refine_factor": 2}, {"nprobes": 100, "refine_factor": 2}],
    "IVF_PQ": [{"nprobes": 50, "refine_factor": 5}, {"nprobes": 50, "refine_factor": 10}],
    "IVF_RQ": [
        {"nprobes": 50},
        {"nprobes": 50, "refine_factor": 2},
        {"nprobes": 50, "refine_factor": 5},
        {"nprobes": 50, "refine_factor": 10},
        {"nprobes": 50, "refine_factor": 20},
    ],
}
"""The knob sets timed per index type (``refine_factor``: exact re-ranking of ``k × factor`` rows)."""


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def slim_copy(source: str, slim: str) -> int:
    """Copy ``id`` and ``vector`` of ``source``'s table into a new table at ``slim`` (streamed); its rows."""
    import lancedb

    table = lancedb.connect(source).open_table("smart")
    reader = table.search().select(["id", "vector"]).limit(None).to_batches(65536)
    first = next(reader)
    out = lancedb.connect(slim).create_table("slim", first, mode="overwrite")
    out.add(reader)
    return out.count_rows()


def build(slim: str, index_type: str) -> dict:
    """Train ``index_type`` on every row of the slim table; seconds and bytes on disk."""
    from smart_retrievers.store.upkeep import ann_config

    table = _table(slim)
    start = time.perf_counter()
    table.create_index("vector", config=ann_config(index_type, None), replace=True)
    seconds = time.perf_counter() - start
    index_dir = Path(slim) / "slim.lance" / "_indices"
    return {"train_s": round(seconds, 1), "index_mb": round(disk_bytes(index_dir) / 2**20)}


def _table(slim: str):
    import lancedb

    return lancedb.connect(slim).open_table("slim")


def search(slim: str, truth_path: str, knob_sets: list[dict], bounded: bool = False) -> dict:
    """Warm, then time every knob set over the 300 queries (alternated); recall, p50/p95, RSS."""
    from scale import queries_encoded

    qids, encs, _, _ = queries_encoded()
    truth = json.loads(Path(truth_path).read_text())
    vectors = [e.pooled.astype(np.float32) for e in encs]
    rss_before = current_rss_mb()
    table = _table(slim)

    def top(vector, knobs):
        query = table.search(vector).distance_type("cosine").select(["id"]).limit(100)
        # as SmartStore searches without a filter: a refined search is held to its partitions (unbounded,
        # LanceDB probes every partition), an unrefined one is not (``--bounded``: every search is held)
        refine = knobs.get("refine_factor")
        query = query.minimum_nprobes(knobs["nprobes"]).maximum_nprobes(knobs["nprobes"] if refine or bounded else 0)
        if refine:
            query = query.refine_factor(refine)
        return query.to_arrow().column("id").to_pylist()

    for v in vectors:
        top(v, knob_sets[0])
    times: list[list[float]] = [[] for _ in knob_sets]
    recall: list[list[float]] = [[] for _ in knob_sets]
    for q, v in zip(qids, vectors):
        for i, knobs in enumerate(knob_sets):
            start = time.perf_counter()
            ids = top(v, knobs)
            times[i].append((time.perf_counter() - start) * 1000)
            recall[i].append(len(set(ids) & set(truth[q])) / 100)
    return {
        "rss_mb": round(current_rss_mb() - rss_before),
        "arms": [
            {"knobs": knobs, "recall": round(float(np.mean(r)), 4), "min": round(float(np.min(r)), 2), **pct(t)}
            for knobs, r, t in zip(knob_sets, recall, times)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", help="a scale.py table directory (copied to --slim when that is missing)")
    parser.add_argument("--slim", required=True)
    parser.add_argument("--truth", required=True, help="scale.py truth output: the flat top-100 per query")
    parser.add_argument("--types", nargs="+", default=list(KNOBS), choices=list(KNOBS))
    parser.add_argument("--bounded", action="store_true", help="hold unrefined searches to nprobes too")
    parser.add_argument("--search-only", action="store_true", help="(internal) search the current index")
    parser.add_argument("--knobs", help="(internal) JSON list of knob sets")
    args = parser.parse_args()
    if args.search_only:
        print(json.dumps(search(args.slim, args.truth, json.loads(args.knobs), args.bounded)))
        return
    if not Path(args.slim, "slim.lance").exists():
        print(f"copied {slim_copy(args.source, args.slim)} rows", file=sys.stderr, flush=True)
    results = {}
    for index_type in args.types:
        load = os.getloadavg()[0]
        built = build(args.slim, index_type)
        cmd = [sys.executable, __file__, "--slim", args.slim, "--truth", args.truth, "--search-only"]
        cmd += ["--bounded"] if args.bounded else []
        done = subprocess.run(
            [*cmd, "--knobs", json.dumps(KNOBS[index_type])], check=True, capture_output=True, text=True
        )
        results[index_type] = {
            "load_before": round(load, 2),
            **built,
            **json.loads(done.stdout.strip().splitlines()[-1]),
            "load_after": round(os.getloadavg()[0], 2),
        }
        print(json.dumps({index_type: results[index_type]}), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
