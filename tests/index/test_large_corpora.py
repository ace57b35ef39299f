"""Large corpora: SmartIndex.optimize (compaction, version cleanup, the pooled ANN index) and the ANN knobs.

Small synthetic tables with ``ann_min_rows`` lowered so that the ANN path runs here: rows are
written with ``add_encodings`` (no forward pass) as float16 token states, pooled vectors drawn
around a few centres so that the IVF partitions mean something.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from smart_retrievers import SmartIndex
from smart_retrievers.encoding import Encoding
from smart_retrievers.options import SearchOptions

DIM = 384


def _encodings(n: int, seed: int) -> list[Encoding]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, DIM)).astype(np.float32)
    out = []
    for i in range(n):
        pooled = centres[i % 8] + 0.6 * rng.standard_normal(DIM).astype(np.float32)
        tokens = rng.standard_normal((3 + i % 4, DIM)).astype(np.float32)
        tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
        out.append(Encoding(pooled=pooled / np.linalg.norm(pooled), tokens=tokens.astype(np.float16)))
    return out


def _write(index: SmartIndex, start: int, n: int, seed: int) -> list[Encoding]:
    encodings = _encodings(n, seed)
    ids = [f"r{start + i}" for i in range(n)]
    index.add_encodings(
        encodings,
        [f"text of row {start + i}" for i in range(n)],
        ids=ids,
        metadatas=[{"group": (start + i) % 5, "n": start + i} for i in range(n)],
    )
    return encodings


def _flat_top(index: SmartIndex, vector: np.ndarray, k: int, where: str | None = None) -> list[str]:
    return index.store.search_pooled(vector, k, where=where, columns=["id"], flat=True).column("id").to_pylist()


@pytest.fixture
def big(tmp_path, encoder) -> tuple[SmartIndex, list[Encoding]]:
    """600 rows in 4 writes, ANN index built by optimize() (4 IVF partitions)."""
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none", ann_min_rows=500, text_index=None)
    encodings = []
    for part in range(4):
        encodings += _write(index, 150 * part, 150, seed=part)
    report = index.optimize(num_partitions=4)
    assert report.index_built and report.index_type == "IVF_SQ"
    return index, encodings


def test_optimize_waits_for_ann_min_rows(tmp_path, encoder):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none", ann_min_rows=300, text_index=None)
    assert index.optimize().rows == 0  # no table yet: nothing to do
    _write(index, 0, 200, seed=0)
    report = index.optimize()
    assert (report.rows, report.index_built, report.index_type, report.indexed_rows) == (200, False, None, 0)
    assert index.store.table.list_indices() == []
    _write(index, 200, 150, seed=1)
    report = index.optimize(num_partitions=2)
    assert (report.rows, report.index_built, report.index_type) == (350, True, "IVF_SQ")
    assert (report.indexed_rows, report.unindexed_rows) == (350, 0)
    assert report.index_seconds > 0 and report.seconds >= report.index_seconds
    # later writes are added to the index (as a delta segment); with no retention, one version remains
    # and no stale index copy: one index directory per segment in use
    _write(index, 350, 20, seed=3)
    report = index.optimize(cleanup_older_than=timedelta(0))
    assert (report.index_built, report.indexed_rows, report.unindexed_rows, report.versions_after) == (False, 370, 0, 1)
    segments = index.store.vector_index().num_segments
    assert len(list((tmp_path / "db" / "smart.lance" / "_indices").iterdir())) == segments <= 2
    # ann_min_rows=None never builds one
    never = SmartIndex(str(tmp_path / "db2"), encoder=encoder, compression="none", ann_min_rows=None, text_index=None)
    _write(never, 0, 50, seed=2)
    assert never.optimize().index_type is None


def test_index_is_built_and_searches_go_through_it(big):
    index, encodings = big
    (config,) = index.store.table.list_indices()
    assert list(config.columns) == ["vector"] and config.index_type == "IvfSq"
    assert config.index_details["metric_type"] == "COSINE"
    stats = index.store.table.index_stats(config.name)
    assert (stats.num_indexed_rows, stats.num_unindexed_rows, stats.distance_type) == (600, 0, "cosine")
    query = encodings[7].pooled
    plan = index.store.pooled_query(query, 100, nprobes=2).explain_plan(True)
    assert "ANNIvfPartition" in plan and "minimum_nprobes=2, maximum_nprobes=Some(2)" in plan
    # an IVF_SQ index's hits are refined by exact cosine by default (twice the rows asked for), and a
    # refined search without a filter probes exactly its partitions: 100 by default
    assert index.store.vector_index_type == "IVF_SQ" and "ANNSubIndex: name=vector_idx, k=200" in plan
    assert "minimum_nprobes=100, maximum_nprobes=Some(100)" in index.store.pooled_query(query, 10).explain_plan(True)
    unrefined = index.store.pooled_query(query, 100, nprobes=2, refine_factor=0).explain_plan(True)
    assert "k=100," in unrefined and "maximum_nprobes=None" in unrefined
    # with a filter the probes are unbounded: more partitions when the filter leaves fewer than k rows
    assert "maximum_nprobes=None" in index.store.pooled_query(query, 10, where="id = 'r7'").explain_plan(True)
    assert "ANN" not in index.store.pooled_query(query, 100, flat=True).explain_plan(True)
    # a row's own pooled vector finds it first, through the index, with its exact fused score
    hits = index.search_encoded(Encoding(pooled=query, tokens=encodings[7].tokens.astype(np.float32)), k=3)
    assert hits[0].id == "r7"
    assert hits[0].pooled_score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].late_score == pytest.approx(1.0, abs=2e-3)
    # probing every partition gives exactly the flat top-100; the default probes keep >= 0.95 of it here
    assert set(index.store.search_pooled(query, 100, columns=["id"], nprobes=4).column("id").to_pylist()) == set(
        _flat_top(index, query, 100)
    )
    recalls = []
    for enc in encodings[::40]:
        got = index.store.search_pooled(enc.pooled, 100, columns=["id"]).column("id").to_pylist()
        recalls.append(len(set(got) & set(_flat_top(index, enc.pooled, 100))) / 100)
    assert np.mean(recalls) >= 0.95


def test_rows_written_after_the_build_are_found(big):
    index, _ = big
    fresh = _write(index, 600, 40, seed=9)
    stats = index.store.table.index_stats(index.store.vector_index().name)
    assert (stats.num_indexed_rows, stats.num_unindexed_rows) == (600, 40)
    for i in (0, 17, 39):  # one probed partition: the new rows are found by the flat scan of unindexed rows
        top = index.store.search_pooled(fresh[i].pooled, 5, columns=["id"], nprobes=1).column("id").to_pylist()
        assert top[0] == f"r{600 + i}"
    report = index.optimize()  # incremental: the index takes the new rows without retraining
    assert (report.index_built, report.indexed_rows, report.unindexed_rows, report.rows) == (False, 640, 0, 640)
    assert index.search_encoded(fresh[17], k=1, mode="pooled")[0].id == "r617"


def test_filters_stay_prefilters_with_the_index(big):
    index, encodings = big
    query = encodings[3].pooled
    where = {"group": 3}
    where_sql = index.store.where_sql(where)
    # 120 rows are in group 3; a 50-row filtered search probing a single partition still returns 50 of them,
    # the very 50 a flat filtered search returns
    hits = index.search_encoded(
        Encoding(pooled=query, tokens=encodings[3].tokens.astype(np.float32)),
        k=50,
        where=where,
        mode="pooled",
        nprobes=1,
    )
    assert len(hits) == 50 and {h.metadata["group"] for h in hits} == {3}
    assert {h.id for h in hits} == set(_flat_top(index, query, 50, where_sql))
    # a filter that leaves 2 rows returns exactly those 2
    narrow = index.search_encoded(
        Encoding(pooled=query, tokens=encodings[3].tokens.astype(np.float32)),
        k=10,
        where={"n": {"$in": [11, 422]}},
        nprobes=1,
    )
    assert sorted(h.id for h in narrow) == ["r11", "r422"]


def test_compaction_keeps_every_row_and_its_contents(tmp_path, encoder):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none", ann_min_rows=None, text_index=None)
    for part in range(8):
        _write(index, 25 * part, 25, seed=part)
    index.delete(ids=["r3", "r190"])
    table = index.store.table
    before = table.to_arrow().sort_by("id")
    report = index.optimize(cleanup_older_than=timedelta(0))
    assert report.fragments_before >= 8 and report.fragments_after < report.fragments_before
    assert report.versions_before >= 9 and report.versions_after == 1
    after = index.store.table.to_arrow().sort_by("id")
    assert after.num_rows == before.num_rows == 198
    for name in before.column_names:
        assert after.column(name).equals(before.column(name)), name
    assert index.get(["r4"])[0].metadata == {"group": 4, "n": 4}


def test_retention_keeps_recent_versions(tmp_path, encoder):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none", ann_min_rows=None, text_index=None)
    for part in range(3):
        _write(index, 10 * part, 10, seed=part)
    report = index.optimize()  # default retention: 7 days, nothing that recent is removed
    assert report.versions_after >= report.versions_before


def test_candidate_fetch_by_take_equals_fetch_in_query(big):
    index, encodings = big
    query = Encoding(pooled=encodings[42].pooled, tokens=encodings[42].tokens.astype(np.float32))
    same = [(h.id, h.score) for h in index.search_encoded(query, k=10, where={"group": {"$ne": 1}})]
    index.configure(token_fetch="take")
    taken = [(h.id, h.score) for h in index.search_encoded(query, k=10, where={"group": {"$ne": 1}})]
    assert [i for i, _ in taken] == [i for i, _ in same]
    assert np.allclose([s for _, s in taken], [s for _, s in same])
    rows = index.store.take_rows([], ["tokens"])
    assert rows.num_rows == 0 and rows.column_names == ["tokens"]


def test_ann_knobs_are_validated(tmp_path, encoder):
    for bad in ({"nprobes": 0}, {"ef": -1}, {"refine_factor": -1}, {"nprobes": 2.5}, {"flat": "yes"}):
        with pytest.raises(ValueError):
            SearchOptions(**bad)
    assert SearchOptions(nprobes=3, refine_factor=0, ef=64, flat=True).refine_factor == 0
    with pytest.raises(ValueError, match="ann_min_rows"):
        SmartIndex(str(tmp_path / "a"), encoder=encoder, ann_min_rows=0)
    with pytest.raises(ValueError, match="ann_index_type"):
        SmartIndex(str(tmp_path / "b"), encoder=encoder, ann_index_type="HNSW_MAGIC")
    index = SmartIndex(str(tmp_path / "c"), encoder=encoder, compression="none")
    with pytest.raises(ValueError, match="cleanup_older_than"):
        index.optimize(cleanup_older_than=timedelta(seconds=-1))


def test_cli_optimize(tmp_path, encoder, capsys):
    from smart_retrievers.cli import main

    db = str(tmp_path / "db")
    index = SmartIndex(db, encoder=encoder, compression="none")
    _write(index, 0, 300, seed=0)
    assert (
        main(["optimize", "--db", db, "--ann-min-rows", "200", "--num-partitions", "2", "--cleanup-older-than", "0"])
        == 0
    )
    out = capsys.readouterr().out
    assert "IVF_SQ" in out and "300 rows" in out
    config = SmartIndex(db, encoder=encoder).store.vector_index()
    assert config is not None and config.num_indexed_rows == 300
