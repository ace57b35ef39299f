"""A million documents on one machine: build, optimize and search 100k / 1M-row SMART tables.

Not run in CI. Each phase runs in its own process so that its peak RSS is its own:

    python benchmarks/scale.py build --rows 1000000 --db /tmp/smart_scale_1m [--base /tmp/smart_scale_base]
    python benchmarks/scale.py optimize --db /tmp/smart_scale_1m
    python benchmarks/scale.py truth --db /tmp/smart_scale_1m --out /tmp/truth1m.json
    python benchmarks/scale.py search --db /tmp/smart_scale_1m --truth /tmp/truth1m.json [--queries 100]

Rows: the 5,183 real SciFact documents (encoded once with the bundled all-MiniLM-L6-v2, cached
with the training state cache, written with ``SmartIndex.add_encodings``: the default codec
``pool2-pca256-sign`` is fitted on that first write), then distractors up to ``--rows``. No
distractor is a near-duplicate of a real document, and none holds the content of a document judged
relevant to a test query. Distractor ``j`` blends two real documents that no test query judges
(seeded; ``--judged-sources`` allows those too): a uniformly drawn ``a`` and another ``b``, drawn
uniformly too, or with ``--neighbours N`` from ``a``'s N nearest such documents (harder: topical
cousins), with a share ``w`` ~ U(0.25, 0.75) of ``a``:

* pooled vector: ``normalize(w * pooled[a] + (1 - w) * pooled[b] + sigma * g)``, ``g`` ~ N(0, I_384),
  ``--sigma`` 0.03, redrawn until its cosine to *every* real document is below the cap: the
  ``--cap-percentile`` (99th) percentile of the real documents' cosines to their nearest other
  real document;
* tokens: each of ``a``'s stored codes kept with probability ``w`` and each of ``b``'s with
  probability ``1 - w`` (so no document's codes are ever copied whole), every code bit then
  flipped independently with probability 1/8 (``--flip-and``: the AND of three random bytes; the
  flip masks are cut at random offsets from one 64 MiB pool, so 1M rows cost no per-bit draws);
* text: the first ``w`` of ``a``'s words, then the last ``1 - w`` of ``b``'s; metadata
  ``{"distractor": true}`` (real rows ``false``); new id ``x<j>``.

Distractors are written as Arrow record batches straight into the table (one LanceDB ``add``
of a ``RecordBatchReader``, ``--batch`` rows per batch), so the build's memory does not grow
with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from _data import require
from _measure import disk_bytes, pct

SIGMA = 0.03
FLIP_BYTES_AND = 3  # bit-flip probability 2**-3
NEIGHBOURS = 0  # 0: the second source is any other real document
CAP_PERCENTILE = 99.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def scifact():
    """(dataset, encoder, doc ids, texts, document states)."""
    from smart_retrievers import SmartEncoder
    from smart_retrievers.evaluation import load_beir
    from smart_retrievers.training import encode_states

    data = load_beir(require("scifact"))
    encoder = SmartEncoder.default(device="cpu")
    doc_ids = list(data.corpus)
    texts = [data.doc_text(d) for d in doc_ids]
    states = encode_states(encoder, doc_ids, texts, kind="document", show_progress=False)
    return data, encoder, doc_ids, texts, states


# ---- build -----------------------------------------------------------------


def real_neighbourhood(pooled: np.ndarray, sources: np.ndarray, k: int, percentile: float) -> tuple[np.ndarray, float]:
    """Each real document's ``k`` nearest other ``sources``, and the cap on a distractor's cosine.

    The cap is the ``percentile`` of the real documents' nearest-neighbour cosines (self excluded):
    a distractor is never closer to a real document than 99 % of real documents are to theirs.
    """
    sims = pooled @ pooled.T
    np.fill_diagonal(sims, -np.inf)
    cap = float(np.percentile(sims.max(axis=1), percentile))
    if not k:
        return np.empty((len(pooled), 0), np.int64), cap
    return sources[np.argpartition(-sims[:, sources], k, axis=1)[:, :k]], cap


def distractor_batches(
    schema: pa.Schema,
    pooled: np.ndarray,
    codes: pa.ListArray,
    texts: list[str],
    n: int,
    *,
    batch: int,
    sigma: float,
    flip_and: int,
    sources: np.ndarray,
    neighbours: np.ndarray,
    cap: float,
    seed: int,
):
    """``n`` distractor rows as record batches of ``schema`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    width = codes.type.value_type.list_size
    offsets = codes.offsets.to_numpy().astype(np.int64)
    flat = codes.flatten().flatten().to_numpy().reshape(-1, width)
    lengths = np.diff(offsets)
    words = [t.split() for t in texts]
    pool_bytes = 64 << 20
    mask = rng.integers(0, 256, pool_bytes, dtype=np.uint8)
    for _ in range(flip_and - 1):
        mask &= rng.integers(0, 256, pool_bytes, dtype=np.uint8)
    meta = json.dumps({"distractor": True}, sort_keys=True)
    dim = pooled.shape[1]
    real_t = np.ascontiguousarray(pooled.T)

    def draw(m: int):
        at = rng.integers(0, len(sources), m)
        first = sources[at]
        if neighbours.size:
            second = neighbours[first, rng.integers(0, neighbours.shape[1], m)]
        else:  # any other source
            second = sources[(at + rng.integers(1, len(sources), m)) % len(sources)]
        share = rng.uniform(0.25, 0.75, m).astype(np.float32)
        vec = share[:, None] * pooled[first] + (1 - share)[:, None] * pooled[second]
        vec += sigma * rng.standard_normal((m, dim), dtype=np.float32)
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        return first, second, share, vec

    def gather(src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lens = lengths[src]
        starts = np.concatenate([[0], np.cumsum(lens)])
        rows = np.repeat(offsets[src] - starts[:-1], lens) + np.arange(starts[-1])
        return flat[rows], np.repeat(np.arange(len(src)), lens)

    for start in range(0, n, batch):
        m = min(batch, n - start)
        first, second, share, vec = draw(m)
        while (redo := np.flatnonzero((vec @ real_t).max(axis=1) >= cap)).size:
            first[redo], second[redo], share[redo], vec[redo] = draw(redo.size)
        tok1, owner1 = gather(first)
        tok2, owner2 = gather(second)
        keep1 = rng.random(len(owner1)) < share[owner1]
        keep1[np.concatenate([[0], np.cumsum(lengths[first])[:-1]])] = True  # at least one token each
        keep2 = rng.random(len(owner2)) >= share[owner2]
        tok = np.concatenate([tok1[keep1], tok2[keep2]])
        owner = np.concatenate([owner1[keep1], owner2[keep2]])
        order = np.argsort(owner, kind="stable")
        tok, lens = tok[order], np.bincount(owner, minlength=m)
        nbytes = tok.size
        at = int(rng.integers(0, pool_bytes - nbytes)) if nbytes < pool_bytes else 0
        tok = tok ^ np.resize(mask[at : at + nbytes], nbytes).reshape(tok.shape)
        tokens = pa.ListArray.from_arrays(
            pa.array(np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)),
            pa.FixedSizeListArray.from_arrays(pa.array(tok.reshape(-1)), width),
        )
        text = []
        for a, b, w in zip(first, second, share):
            wa, wb = words[a], words[b]
            text.append(" ".join(wa[: round(w * len(wa))] + wb[round(w * len(wb)) :]))
        columns = {
            "id": pa.array([f"x{start + i:07d}" for i in range(m)], pa.string()),
            "text": pa.array(text, pa.string()),
            "modality": pa.array(["text"] * m, pa.string()),
            "metadata": pa.array([meta] * m, schema.field("metadata").type),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), dim),
            "tokens": tokens.cast(schema.field("tokens").type),
            "n_tokens": pa.array(lens.astype(np.int32)),
        }
        arrays = [columns[f.name] if f.name in columns else pa.nulls(m, f.type) for f in schema]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def cmd_build(args) -> dict:
    from smart_retrievers import SmartIndex
    from smart_retrievers.encoding import Encoding

    shutil.rmtree(args.db, ignore_errors=True)
    data, encoder, doc_ids, texts, states = scifact()
    base = Path(args.base) if args.base else None
    base_info = base / "build.json" if base else None
    start = time.perf_counter()
    if base_info is not None and base_info.exists():  # the 5,183 real rows, written once
        shutil.copytree(base, args.db)
        index = SmartIndex(args.db, encoder=encoder)
        real_s = json.loads(base_info.read_text())["real_rows_s"]
        start -= real_s  # the build time counts writing them
    else:
        index = SmartIndex(args.db, encoder=encoder, write_batch_size=2048)
        encodings = [
            Encoding(pooled=states.pooled[i], tokens=np.asarray(states.tokens.item(i))) for i in range(len(states))
        ]
        index.add_encodings(encodings, texts, ids=doc_ids, metadatas=[{"distractor": False}] * len(doc_ids))
        del encodings
        real_s = time.perf_counter() - start
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
            shutil.copytree(args.db, base)
            base_info.write_text(json.dumps({"real_rows_s": real_s, "peak_rss_mb": peak_rss_mb()}))
    del states
    rss_real = current_rss_mb()
    table = index.store.table
    real = table.search().select(["id", "vector", "tokens"]).limit(None).to_arrow()
    position = {d: i for i, d in enumerate(real.column("id").to_pylist())}
    order = pa.array([position[d] for d in doc_ids], pa.int64())
    real = real.take(order)
    pooled = real.column("vector").combine_chunks().flatten().to_numpy().reshape(len(real), -1).astype(np.float32)
    codes = real.column("tokens").combine_chunks()
    schema = table.schema
    judged = {d for rels in data.qrels.values() for d in rels}
    sources = np.array([i for i, d in enumerate(doc_ids) if args.judged_sources or d not in judged])
    neighbours, cap = real_neighbourhood(pooled, sources, args.neighbours, args.cap_percentile)
    n = args.rows - len(doc_ids)
    start_d = time.perf_counter()
    if n > 0:
        reader = pa.RecordBatchReader.from_batches(
            schema,
            distractor_batches(
                schema,
                pooled,
                codes,
                texts,
                n,
                batch=args.batch,
                sigma=args.sigma,
                flip_and=args.flip_and,
                sources=sources,
                neighbours=neighbours,
                cap=cap,
                seed=args.seed,
            ),
        )
        table.add(reader)
    took = time.perf_counter() - start
    rows = index.count()
    out = {
        "rows": rows,
        "build_s": round(took, 1),
        "build_docs_per_s": round(rows / took),
        "real_rows_s": round(real_s, 1),
        "distractor_rows_per_s": round(n / (time.perf_counter() - start_d)) if n > 0 else None,
        "disk_bytes_per_row_before_optimize": round(disk_bytes(Path(args.db)) / rows),
        "build_peak_rss_mb": round(peak_rss_mb()),
        "rss_mb_before_distractors": round(rss_real),
        "rss_mb_after_distractors": round(current_rss_mb()),
        "sigma": args.sigma,
        "flip_probability": 2.0**-args.flip_and,
        "neighbours": args.neighbours,
        "cosine_cap": round(cap, 4),
        "source_documents": len(sources),
        "cap_percentile": args.cap_percentile,
    }
    return out


# ---- optimize ----------------------------------------------------------------


def cmd_optimize(args) -> dict:
    from datetime import timedelta

    from smart_retrievers import SmartIndex
    from smart_retrievers.encoders import default_encoder

    index = SmartIndex(args.db, encoder=default_encoder(), ann_min_rows=args.ann_min_rows)
    report = index.optimize(cleanup_older_than=timedelta(0), delete_unverified=True, rebuild_index=args.rebuild_index)
    rows = index.count()
    index_dir = Path(args.db) / "smart.lance" / "_indices"
    index_bytes = disk_bytes(index_dir) if index_dir.exists() else 0
    return {
        "optimize_s": round(report.seconds, 1),
        "index_train_s": round(report.index_seconds, 1),
        "lance_optimize_s": round(report.optimize_seconds, 1),
        "index_type": report.index_type,
        "indexed_rows": report.indexed_rows,
        "fragments": [report.fragments_before, report.fragments_after],
        "disk_bytes_per_row": round(disk_bytes(Path(args.db)) / rows),
        "index_bytes_per_row": round(index_bytes / rows),
        "optimize_peak_rss_mb": round(peak_rss_mb()),
    }


# ---- flat truth (numpy, its own process: it reads the whole vector column) ----


def cmd_truth(args) -> dict:
    import lancedb

    z = queries_encoded()
    qv = np.stack([e.pooled for e in z[1]]).astype(np.float32)
    table = lancedb.connect(args.db).open_table("smart")
    best_s = np.full((len(qv), 100), -np.inf, np.float32)
    best_id = np.empty((len(qv), 100), object)
    for batch in table.search().select(["id", "vector"]).limit(None).to_batches(65536):
        vec = batch.column("vector").flatten().to_numpy().reshape(len(batch), -1)
        ids = np.asarray(batch.column("id").to_pylist(), object)
        scores = qv @ vec.T
        s_all = np.concatenate([best_s, scores], 1)
        i_all = np.concatenate([best_id, np.broadcast_to(ids, scores.shape)], 1)
        top = np.argpartition(-s_all, 100, axis=1)[:, :100]
        best_s = np.take_along_axis(s_all, top, 1)
        best_id = np.take_along_axis(i_all, top, 1)
    Path(args.out).write_text(json.dumps({q: list(map(str, row)) for q, row in zip(z[0], best_id)}))
    return {"truth": args.out, "truth_peak_rss_mb": round(peak_rss_mb())}


# ---- search -------------------------------------------------------------------


def queries_encoded():
    """(query ids, encoded queries, query texts, qrels) of the SciFact test split."""
    from smart_retrievers import SmartEncoder
    from smart_retrievers.encoding import Encoding
    from smart_retrievers.evaluation import load_beir
    from smart_retrievers.training import encode_states

    data = load_beir(require("scifact"))
    encoder = SmartEncoder.default(device="cpu")
    qids = list(data.queries)
    texts = [data.queries[q] for q in qids]
    states = encode_states(encoder, qids, texts, kind="query", show_progress=False)
    encs = [Encoding(pooled=states.pooled[i], tokens=np.asarray(states.tokens.item(i))) for i in range(len(states))]
    return qids, encs, texts, data.qrels


def cmd_search(args) -> dict:
    import torch

    from smart_retrievers import SmartIndex
    from smart_retrievers.encoders import default_encoder
    from smart_retrievers.evaluation.metrics import ndcg_at_k

    qids, encs, texts, qrels = queries_encoded()
    encoder = default_encoder()
    index = SmartIndex(args.db, encoder=encoder)
    has_index = index.store.vector_index() is not None
    out: dict = {"rows": index.count(), "ann_index": has_index}

    def timed(fn, *a, **kw):
        start = time.perf_counter()
        result = fn(*a, **kw)
        return result, (time.perf_counter() - start) * 1000

    # quality: SMART rerank@100 through the default search path (ANN when present), all 300 queries
    ranking = {q: [h.id for h in index.search_encoded(e, k=10, mode="rerank")] for q, e in zip(qids, encs)}
    out["ndcg@10"] = round(ndcg_at_k(ranking, qrels, 10), 4)
    hybrid_rank = {q: [h.id for h in index.search_encoded(e, k=10, text=t)] for q, e, t in zip(qids, encs, texts)}
    out["ndcg@10_hybrid"] = round(ndcg_at_k(hybrid_rank, qrels, 10), 4)
    out["distractors_in_smart_top10"] = round(
        float(np.mean([sum(i.startswith("x") for i in r) for r in ranking.values()])), 3
    )
    pooled_rank = {q: [h.id for h in index.search_encoded(e, k=10, mode="pooled")] for q, e in zip(qids, encs)}
    out["ndcg@10_pooled"] = round(ndcg_at_k(pooled_rank, qrels, 10), 4)
    if args.truth:
        truth = json.loads(Path(args.truth).read_text())
        sweeps = [{}] + [json.loads(x) for x in args.sweep]
        out["candidate_recall@100"] = {}
        for knobs in sweeps:
            rec, ms = [], []
            for q, enc in zip(qids, encs):
                got, t = timed(index.store.search_pooled, enc.pooled, 100, columns=["id"], **knobs)
                ms.append(t)
                rec.append(len(set(got.column("id").to_pylist()) & set(truth[q])) / 100)
            out["candidate_recall@100"][json.dumps(knobs) or "default"] = {
                "recall": round(float(np.mean(rec)), 4),
                "min": round(float(np.min(rec)), 2),
                **pct(ms),
            }
            print(json.dumps(out["candidate_recall@100"]), file=sys.stderr, flush=True)
        top100 = [truth[q] for q in qids]
        out["distractors_in_flat_top100"] = round(
            float(np.mean([sum(i.startswith("x") for i in t) for t in top100])), 1
        )

    if args.quality_only:
        return out
    # latency, query encoding included, arms alternated query by query
    lat_q = texts[: args.queries]
    arms = {
        "smart": dict(mode="rerank", candidates=100),
        "hybrid": dict(mode="hybrid", candidates=100),
        "pooled": dict(mode="pooled"),
    }
    if has_index:
        arms |= {
            "smart_flat": dict(mode="rerank", candidates=100, flat=True),
            "pooled_flat": dict(mode="pooled", flat=True),
        }
    for kw in arms.values():  # warm-up
        for q in lat_q[:3]:
            index.search(q, k=10, **kw)
    times: dict[str, list[float]] = {name: [] for name in arms}
    for i, q in enumerate(lat_q):
        for name, kw in arms.items():
            if name.endswith("_flat") and i >= args.flat_queries:
                continue
            times[name].append(timed(index.search, q, k=10, **kw)[1])
    out["latency_ms"] = {name: pct(v) | {"n": len(v)} for name, v in times.items()}
    p50 = {name: np.percentile(v, 50) for name, v in times.items()}
    out["smart_over_pooled_p50"] = round(p50["smart"] / p50["pooled"], 2)
    out["hybrid_over_smart_p50"] = round(p50["hybrid"] / p50["smart"], 2)

    # candidate fetch: tokens in the pooled search vs ids first then take; alternated
    fetch = {"query": [], "take": []}
    for q in lat_q:
        for mode in fetch:
            index.configure(token_fetch=mode)
            fetch[mode].append(timed(index.search, q, k=10)[1])
    index.configure(token_fetch="query")
    out["token_fetch_ms"] = {m: pct(v) for m, v in fetch.items()}

    # profile: where a SMART search's time goes (medians over the latency queries)
    from smart_retrievers.index.search import rank_rows
    from smart_retrievers.store import META_COLUMNS

    prof: dict[str, list[float]] = {k: [] for k in ("encode", "ann_ids", "ann_with_tokens", "take_tokens", "score")}
    opts = index.resolve(None, k=10)
    for q in lat_q:
        enc, t = timed(encoder.encode_queries, [q], show_progress=False)
        prof["encode"].append(t)
        enc = enc[0]
        _, t = timed(index.store.search_pooled, enc.pooled, 100, columns=[*META_COLUMNS, "vector"], with_row_id=True)
        prof["ann_ids"].append(t)
        rows, t = timed(index.store.search_pooled, enc.pooled, 100, columns=[*META_COLUMNS, "vector", "tokens"])
        prof["ann_with_tokens"].append(t)
        found = index.store.search_pooled(enc.pooled, 100, columns=["id"], with_row_id=True)
        _, t = timed(index.store.take_rows, found.column("_rowid").to_pylist(), ["tokens"])
        prof["take_tokens"].append(t)
        with torch.inference_mode():
            _, t = timed(rank_rows, index.store, enc, rows, opts)
        prof["score"].append(t)
    out["profile_ms_p50"] = {k: round(float(np.median(v)), 1) for k, v in prof.items()}
    out["search_peak_rss_mb"] = round(peak_rss_mb())
    return out


# ---- driver ------------------------------------------------------------------


def run_phase(phase: str, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, phase, *extra]
    print("+", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    sys.stderr.write(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("build")
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--base", help="cache of the 5,183-row real table (copied instead of rewritten when present)")
    p.add_argument("--batch", type=int, default=8192)
    p.add_argument("--sigma", type=float, default=SIGMA)
    p.add_argument("--flip-and", type=int, default=FLIP_BYTES_AND, help="bit-flip probability 2**-N")
    p.add_argument(
        "--neighbours",
        type=int,
        default=NEIGHBOURS,
        help="a distractor's second source: one of its first source's N nearest real documents (0: any)",
    )
    p.add_argument("--judged-sources", action="store_true", help="blend documents judged for a test query too")
    p.add_argument("--cap-percentile", type=float, default=CAP_PERCENTILE, help="of real nearest-neighbour cosines")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("optimize")
    p.add_argument("--db", required=True)
    p.add_argument("--ann-min-rows", type=int, default=10_000)
    p.add_argument("--rebuild-index", action="store_true", help="train the default ANN index again (its type changed)")
    p.set_defaults(func=cmd_optimize)
    p = sub.add_parser("truth")
    p.add_argument("--db", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_truth)
    p = sub.add_parser("search")
    p.add_argument("--db", required=True)
    p.add_argument("--truth", help="flat top-100 per query (from the truth phase)")
    p.add_argument("--queries", type=int, default=100, help="queries timed per arm")
    p.add_argument("--flat-queries", type=int, default=30, help="of which also timed without the ANN index")
    p.add_argument(
        "--sweep", nargs="*", default=[], help="extra ANN settings for the recall table, e.g. '{\"nprobes\": 40}'"
    )
    p.add_argument("--quality-only", action="store_true", help="nDCG and candidate recall, no timing")
    p.set_defaults(func=cmd_search)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    load_before, cpu_before, wall_before = os.getloadavg()[0], time.process_time(), time.perf_counter()
    out = args.func(args)
    out["load_1min_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    out["cpu_s"], out["wall_s"] = (
        round(time.process_time() - cpu_before, 1),
        round(time.perf_counter() - wall_before, 1),
    )
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
