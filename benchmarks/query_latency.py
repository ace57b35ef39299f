"""Warm query latency of SmartIndex.search (query encoding included): pooled-only, SMART rerank and hybrid SMART.

Encodes SciFact once (cached with the training state cache), then builds one LanceDB table per
``--compression`` preset and size under ``--db`` by re-inserting the same encodings under new ids
(``SmartIndex.add_encodings``: the codec is fitted on the first write, as for ``add``), then
``SmartIndex.optimize()`` (ANN and full-text index up to date). Tables are kept and reused by the
next run when complete, so a run on a quiet machine only times (``--fresh`` rebuilds them).
At each size it times pooled-only, SMART-rerank and hybrid searches (k=10, 100 candidates; hybrid
also the full-text candidates, the default top-20) of every preset, alternated query by query (so
load on a shared machine hits every arm alike), over the SciFact test queries, and reports
p50/p95, the p50 ratios (rerank / pooled, hybrid / rerank), the candidate stage alone (of an
encoded query: pooled top-100 and full-text top-100 with ids only, and hybrid's whole candidate
stage as a search runs it, :func:`~smart_retrievers.index.search.lexical_context`), bytes on disk
per doc/token, the 1-minute load average before and after, and the process CPU time beside the
wall time. ``--stage-sizes`` are sizes measured for the candidate stage only.

``--plot PNG`` draws the latency-vs-rows curve of the entries (p50/p95 of both searches and
their ratio against table rows; needs matplotlib); ``--json`` saves the entries and
``--from-json`` re-draws the curve from them without running anything.

    python benchmarks/query_latency.py [--sizes 5183 20000] [--queries 100] [--compression none pool2-pca256-sign]
    python benchmarks/query_latency.py --sizes 20000 --stage-sizes 100000 --compression pool2-pca256-sign
    python benchmarks/query_latency.py --sizes 1000 5183 20000 --json /tmp/latency.json --plot docs/bench_latency.png
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from _data import require
from _measure import disk_bytes, pct

from smart_retrievers import SmartEncoder, SmartIndex
from smart_retrievers.codec import DEFAULT_COMPRESSION
from smart_retrievers.evaluation import load_beir
from smart_retrievers.index.hits import hit_from_row
from smart_retrievers.index.search import lexical_context, rank_rows
from smart_retrievers.store import META_COLUMNS
from smart_retrievers.training import encode_states

MODES = ("pooled", "rerank", "hybrid")


def candidate_stage(index: SmartIndex, queries: list[str]) -> dict[str, dict[str, float]]:
    """Milliseconds per query of the pooled top-100 and the full-text top-100 (ids only), and of hybrid's
    whole candidate stage (pooled top-100 with tokens ∪ the default full-text candidates), the query encoded before."""
    encoded = index.encoder.encode_queries(queries, show_progress=False)
    opts = index.resolve(mode="hybrid", k=10, candidates=100)
    took: dict[str, list[float]] = {"pooled_top100_ms": [], "text_top100_ms": [], "hybrid_candidates_ms": []}
    for q, e in zip(queries, encoded):
        start = time.perf_counter()
        index.store.search_pooled(e.pooled, 100, columns=["id"])
        took["pooled_top100_ms"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        index.store.search_text(q, 100, columns=["id"])
        took["text_top100_ms"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        lexical_context(index.store, e, None, opts, index.options, q)
        took["hybrid_candidates_ms"].append((time.perf_counter() - start) * 1000)
    return {name: pct(values) for name, values in took.items()}


def stage_times(index: SmartIndex, queries: list[str]) -> dict[str, float]:
    """p50 milliseconds of each stage of one "rerank" search, run step by step with the package's own functions:
    query encoding; the pooled top-100 (ids, vectors) and then their token states by row id (the
    ``token_fetch="take"`` split); the default single read of both (``token_fetch="query"``); exact
    SMART scoring; and turning the ranked rows into hits."""
    opts = index.resolve(mode="rerank", k=10, candidates=100)
    took: dict[str, list[float]] = {
        s: [] for s in ("encode", "candidates", "token_fetch", "candidates_with_tokens", "scoring", "assembly")
    }
    for q in queries:
        t0 = time.perf_counter()
        query = index.encoder.encode_queries([q], show_progress=False)[0]
        t1 = time.perf_counter()
        found = index.store.search_pooled(query.pooled, 100, columns=[*META_COLUMNS, "vector"], with_row_id=True)
        t2 = time.perf_counter()
        index.store.take_rows(found.column("_rowid").to_pylist(), ["tokens"])
        t3 = time.perf_counter()
        rows = index.store.search_pooled(query.pooled, 100, columns=[*META_COLUMNS, "vector", "tokens"])
        t4 = time.perf_counter()
        ranking = rank_rows(index.store, query, rows, opts)
        t5 = time.perf_counter()
        meta = rows.select(META_COLUMNS).to_pylist()
        [hit_from_row(meta[i], ranking.fused[i], ranking.pooled[i], ranking.late[i]) for i in ranking.order]
        t6 = time.perf_counter()
        for name, (a, b) in zip(took, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6)]):
            took[name].append((b - a) * 1000)
    return {name: round(float(np.percentile(values, 50)), 2) for name, values in took.items()}


def table(db: str, compression: str, size: int, encoder, encodings, texts, doc_ids) -> SmartIndex:
    """The ``size``-row table of SciFact copies for ``compression`` under ``db``: reused when complete, else built."""
    path = Path(db) / f"{compression}-{size}"
    index = SmartIndex(str(path), encoder=encoder, compression=compression, write_batch_size=2048)
    if index.count() == size:
        return index
    shutil.rmtree(path, ignore_errors=True)
    index = SmartIndex(str(path), encoder=encoder, compression=compression, write_batch_size=2048)
    while index.count() < size:
        offset = index.count()
        take = min(len(encodings), size - offset)
        index.add_encodings(encodings[:take], texts[:take], ids=[f"{doc_ids[i]}#{offset}" for i in range(take)])
    index.optimize()  # ANN and full-text index up to date, old versions cleaned up
    index.store.table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)
    return index


def time_searches(index: SmartIndex, queries: list[str], **kwargs) -> list[float]:
    out = []
    for q in queries:
        start = time.perf_counter()
        index.search(q, k=10, **kwargs)
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5183, 20000])
    parser.add_argument(
        "--stage-sizes", type=int, nargs="*", default=[], help="sizes timed for the candidate stage only"
    )
    parser.add_argument("--fresh", action="store_true", help="rebuild the tables under --db")
    parser.add_argument("--build-only", action="store_true", help="build the tables (e.g. on a busy machine) and stop")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--compression", nargs="+", default=["none", DEFAULT_COMPRESSION])
    parser.add_argument("--db", default="/tmp/smart_bench")
    parser.add_argument("--json", help="write the entries to this JSON file")
    parser.add_argument("--plot", help="write the latency-vs-rows curve to this PNG (needs matplotlib)")
    parser.add_argument("--from-json", help="plot the entries of a saved --json file instead of running")
    args = parser.parse_args()
    if args.from_json:
        if not args.plot:
            parser.error("--from-json needs --plot")
        plot(json.loads(Path(args.from_json).read_text()), args.plot)
        return

    data = load_beir(require("scifact"))
    encoder = SmartEncoder.default(device="cpu")
    doc_ids = list(data.corpus)
    texts = [data.doc_text(d) for d in doc_ids]
    states = encode_states(encoder, doc_ids, texts, kind="document")
    encodings = states.to_encodings()
    queries = list(data.queries.values())[: args.queries]
    n_tokens = sum(len(e.tokens) for e in encodings)
    results = []
    if args.fresh:
        shutil.rmtree(args.db, ignore_errors=True)
    for size in sorted(set(args.sizes) | set(args.stage_sizes)):
        indexes = {c: table(args.db, c, size, encoder, encodings, texts, doc_ids) for c in args.compression}
        if args.build_only:
            continue
        if size not in args.sizes:
            load_before = os.getloadavg()[0]
            for c, index in indexes.items():
                entry = {"compression": c, "rows": index.count(), **candidate_stage(index, queries)}
                entry["load_1min_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                results.append(entry)
                print(json.dumps(entry), flush=True)
            continue
        for index in indexes.values():
            for mode in MODES:  # warm-up
                time_searches(index, queries[:5], mode=mode)
        arms = [(c, mode) for c in indexes for mode in MODES]
        took: dict[tuple[str, str], list[float]] = {arm: [] for arm in arms}
        load_before, cpu_start, wall_start = os.getloadavg()[0], time.process_time(), time.perf_counter()
        for i, q in enumerate(queries):  # alternate every arm, rotated, so all see the same machine state
            for c, mode in arms[i % len(arms) :] + arms[: i % len(arms)]:
                took[c, mode] += time_searches(indexes[c], [q], mode=mode, candidates=100)
        cpu_s, wall_s = time.process_time() - cpu_start, time.perf_counter() - wall_start
        stages = {
            c: candidate_stage(index, queries) | {"stages_p50_ms": stage_times(index, queries)}
            for c, index in indexes.items()
        }
        load_after = os.getloadavg()[0]
        for c, index in indexes.items():
            pooled, smart, hybrid = took[c, "pooled"], took[c, "rerank"], took[c, "hybrid"]
            rows = index.count()
            on_disk = disk_bytes(Path(args.db) / f"{c}-{size}")
            entry = {
                "compression": c,
                "rows": rows,
                "pooled_ms": pct(pooled),
                "smart_rerank_ms": pct(smart),
                "hybrid_ms": pct(hybrid),
                "p50_ratio": round(float(np.percentile(smart, 50) / np.percentile(pooled, 50)), 2),
                "hybrid_over_rerank_p50": round(float(np.percentile(hybrid, 50) / np.percentile(smart, 50)), 2),
                **stages[c],
                "disk_bytes_per_doc": round(on_disk / rows),
                "disk_bytes_per_token": round(on_disk / (n_tokens * rows / len(encodings)), 1),
                "load_1min_before_after": [round(load_before, 2), round(load_after, 2)],
                "timed_loop_cpu_s_wall_s": [round(cpu_s, 1), round(wall_s, 1)],
            }
            results.append(entry)
            print(json.dumps(entry), flush=True)
    print(json.dumps(results, indent=2))
    print(f"tables kept under {args.db} for the next run (--fresh rebuilds them)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.plot:
        plot(results, args.plot)


def plot(entries: list[dict], path: str) -> None:
    from smart_retrievers.evaluation.plots import plot_latency_rows

    title = "Warm SmartIndex.search on SciFact copies: pooled only, SMART rerank@100 and hybrid (after optimize())"
    timed = [e for e in entries if "pooled_ms" in e]  # not the --stage-sizes entries
    print(f"wrote {plot_latency_rows(timed, path, title=title)}")


if __name__ == "__main__":
    main()
