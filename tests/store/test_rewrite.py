"""Token rewrites (recompress, reindex_tokens) keep rows other writers commit while they run (issue 25: 1).

The rewrite is driven from inside: another handle writes in the middle of the column
computation and right before the swap commit, the windows in which the old overwrite (from
the version it started from) erased other writers' rows and broke their handles.
"""

from __future__ import annotations

import lance
import numpy as np
import pytest
from hash_encoder import HashEncoder

from smart_retrievers.index import SmartIndex, upkeep

PRESET = "pca16-int8"


def _float_index(path: str, n: int = 40) -> SmartIndex:
    index = SmartIndex(path, encoder=HashEncoder(), compression="none", write_batch_size=8)
    for start in range(0, n, 10):  # several fragments
        ids = [f"d{i}" for i in range(start, start + 10)]
        index.add([f"base text {i}" for i in range(start, start + 10)], ids=ids, metadatas=[{"n": 1}] * 10)
    return index


def _check_coded(index: SmartIndex, expected: dict[str, str]) -> None:
    rows = index.store.table.to_arrow().to_pylist()
    assert {r["id"]: r["text"] for r in rows} == expected
    assert index.store.compression == PRESET and index.store.codec is not None
    assert not [c for c in index.store.table.schema.names if c.startswith("__smart")]
    for row in rows:  # every row holds codes of its own text's states
        assert isinstance(row["tokens"], bytes | list) and row["n_tokens"] == len(
            HashEncoder().encode_documents([row["text"]])[0].tokens
        )
    for text_id, text in list(expected.items())[:: max(1, len(expected) // 8)]:
        assert index.search(text, k=1)[0].id == text_id


def test_recompress_keeps_rows_written_while_it_computes(tmp_path, monkeypatch):
    path = str(tmp_path / "db")
    index = _float_index(path)
    other = SmartIndex(path, encoder=HashEncoder())  # another writer's handle, opened before
    expected = {f"d{i}": f"base text {i}" for i in range(40)}
    calls = []
    real_merge = lance.fragment.LanceFragment.merge_columns

    def merge_columns(self, *args, **kwargs):  # another writer commits while fragments are computed
        calls.append(self.fragment_id)
        if len(calls) == 2:
            other.add(["written meanwhile"], ids=["new1"])
            other.add(["d3 changed meanwhile"], ids=["d3"])  # an upsert: its row moves
            other.delete(["d7"])
        return real_merge(self, *args, **kwargs)

    monkeypatch.setattr(lance.fragment.LanceFragment, "merge_columns", merge_columns)
    assert index.recompress(PRESET, batch_size=4) == 40
    expected.update({"new1": "written meanwhile", "d3": "d3 changed meanwhile"})
    del expected["d7"]
    _check_coded(index, expected)
    # the other handle follows the new codec: its writes and reads keep working
    other.add(["after the rewrite"], ids=["after"])
    expected["after"] = "after the rewrite"
    assert other.count() == len(expected) and other.search("after the rewrite", k=1)[0].id == "after"
    _check_coded(index, expected)


def test_a_commit_just_before_the_swap_is_kept_and_only_new_fragments_are_computed(tmp_path, monkeypatch):
    path = str(tmp_path / "db")
    index = _float_index(path)
    other = SmartIndex(path, encoder=HashEncoder())
    expected = {f"d{i}": f"base text {i}" for i in range(40)}
    real_commit, real_merge = lance.LanceDataset.commit, lance.fragment.LanceFragment.merge_columns
    merges, computed = [], []

    def commit(uri, operation, *args, **kwargs):  # another writer commits first: the swap must be retried
        if type(operation).__name__ == "Merge":
            merges.append(kwargs.get("read_version"))
            if len(merges) == 1:
                other.add(["appended before the swap"], ids=["new2"])
                other.add(["d5 upserted before the swap"], ids=["d5"])
                other.delete(["d9"])
        return real_commit(uri, operation, *args, **kwargs)

    def merge_columns(self, *args, **kwargs):
        computed.append(self.fragment_id)
        return real_merge(self, *args, **kwargs)

    monkeypatch.setattr(lance.LanceDataset, "commit", staticmethod(commit))
    monkeypatch.setattr(lance.fragment.LanceFragment, "merge_columns", merge_columns)
    assert index.recompress(PRESET, batch_size=4) == 40
    assert len(merges) == 2 and merges[1] > merges[0]  # the first swap conflicted, the second landed
    assert len(computed) == len(set(computed)) == 4 + 2  # each fragment computed once: 4 old, 2 new
    expected.update({"new2": "appended before the swap", "d5": "d5 upserted before the swap"})
    del expected["d9"]
    _check_coded(index, expected)


def test_a_failing_rewrite_commits_nothing(tmp_path, monkeypatch):
    path = str(tmp_path / "db")
    index = _float_index(path, n=20)
    version = index.store.version
    calls = []
    real = upkeep._tokens_columns

    def failing(*args, **kwargs):  # the second batch fails, after the first fragment was computed
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("transform exploded")
        return real(*args, **kwargs)

    monkeypatch.setattr(upkeep, "_tokens_columns", failing)
    try:
        index.recompress(PRESET, batch_size=4)
    except RuntimeError as exc:
        assert "transform exploded" in str(exc)
    else:
        raise AssertionError("the failing rewrite did not fail")
    assert index.store.version == version and index.store.compression == "none"
    table = index.store.table.to_arrow()
    assert not [c for c in table.schema.names if c.startswith("__smart")]
    assert np.array(table.column("tokens")[0].as_py()).dtype != object


def test_a_write_preempted_by_a_rewrite_says_so_and_an_add_writes_again(tmp_path):
    """An add whose rows were coded for the old token columns loses its commit to the rewrite (nothing written):
    the store says so clearly, and SmartIndex.add encodes and commits again with the new codec."""
    from smart_retrievers.store import Record
    from smart_retrievers.store.rewrite import ConcurrentRewriteError

    path = str(tmp_path / "db")
    index = _float_index(path)
    other = SmartIndex(path, encoder=HashEncoder())
    encoding = HashEncoder().encode_documents(["late"])[0]

    def batches():
        yield [Record(id="late", text="late", encoding=encoding)]
        other.recompress(PRESET, batch_size=8)  # committed while this write streams its rows

    with pytest.raises(ConcurrentRewriteError, match="rewrote the token states .* nothing was written: run the call"):
        index.add_records(batches())
    assert other.count() == 40 and other.get(["late"]) == []
    fresh = _float_index(str(tmp_path / "db3"))
    rewriter = SmartIndex(str(tmp_path / "db3"), encoder=HashEncoder())
    calls = []
    real_encode = fresh.encoder.encode_documents

    def encode(texts, **kwargs):
        calls.append(len(texts))
        encodings = real_encode(texts, **kwargs)
        if len(calls) == 2:  # the second batch: the first one is already coded for float16 states
            rewriter.recompress(PRESET, batch_size=8)
        return encodings

    fresh.encoder.encode_documents = encode
    texts = [f"written again {i}" for i in range(10)]  # two batches of write_batch_size=8
    fresh.add(texts, ids=[f"again{i}" for i in range(10)])
    assert calls == [8, 2, 8, 2]  # encoded twice: once for the lost commit, once for the new codec
    assert fresh.store.compression == PRESET and fresh.count() == 50
    assert fresh.search("written again 3", k=1)[0].id == "again3"


def test_an_append_just_before_the_swap_makes_it_retry_and_its_rows_get_new_states(tmp_path, monkeypatch):
    """The swap's Merge does not assert preserves_nullability: an append committed after the rewrite read its
    version (rows coded for the old columns, in a fragment without the new ones) conflicts with it, and the
    swap is retried with that fragment rewritten, instead of landing with the append's rows lacking states."""
    path = str(tmp_path / "db")
    index = _float_index(path)
    other = SmartIndex(path, encoder=HashEncoder())
    real_commit = lance.LanceDataset.commit
    merges: list[bool] = []

    def commit(uri, operation, *args, **kwargs):
        if type(operation).__name__ == "Merge":
            merges.append(operation.preserves_nullability)
            if len(merges) == 1:
                other.add(["appended alone before the swap"], ids=["new3"])
        return real_commit(uri, operation, *args, **kwargs)

    monkeypatch.setattr(lance.LanceDataset, "commit", staticmethod(commit))
    assert index.recompress(PRESET, batch_size=4) == 41
    assert merges == [False, False]  # the first swap conflicted with the append, the second landed
    expected = {f"d{i}": f"base text {i}" for i in range(40)} | {"new3": "appended alone before the swap"}
    _check_coded(index, expected)
    assert index.store.table.to_arrow().column("tokens").null_count == 0


@pytest.mark.parametrize("call", ["optimize", "set_fusion_weights"])
def test_a_compaction_or_metadata_commit_preempted_by_the_swap_runs_again(tmp_path, call):
    """A handle that has not seen another's recompress (read_consistency_interval=None: it never looks again)
    commits against the version before the swap, so Lance preempts its compaction or its metadata-only commit
    ("Retryable commit conflict ... preempted by concurrent transaction Merge"): it runs again from the
    latest version instead of raising Lance's raw error."""
    path = str(tmp_path / "db")
    _float_index(path)
    stale = SmartIndex(path, encoder=HashEncoder(), read_consistency_interval=None)
    assert stale.count() == 40
    SmartIndex(path, encoder=HashEncoder()).recompress(PRESET, batch_size=8)
    if call == "optimize":
        report = stale.optimize()
        assert report.rows == 40 and report.fragments_after < report.fragments_before
    else:
        stale.store.set_fusion_weights(0.3, 0.7)
    fresh = SmartIndex(path, encoder=HashEncoder())
    if call == "set_fusion_weights":
        assert fresh.store.fusion_weights == {"lambda_pool": 0.3, "lambda_late": 0.7}
    _check_coded(fresh, {f"d{i}": f"base text {i}" for i in range(40)})


def test_a_commit_preempted_at_every_try_raises_the_clear_error(tmp_path):
    from smart_retrievers.store.errors import ConcurrentCommitError, retry_preempted

    table = _float_index(str(tmp_path / "db"), n=10).store.table
    raw = "lance error: Retryable commit conflict for version 7: This Rewrite transaction was preempted by concurrent"
    tries = []

    def preempted() -> None:
        tries.append(1)
        raise RuntimeError(f"{raw} transaction Merge at version 7. Please retry.")

    with pytest.raises(
        ConcurrentCommitError, match=r"optimize\(\) of table 't': .* each of its 3 tries .* run it again"
    ):
        retry_preempted(table, preempted, "optimize() of table 't'", attempts=3)
    assert len(tries) == 3

    def broken() -> None:
        raise RuntimeError("lance error: not a conflict")

    with pytest.raises(RuntimeError, match="not a conflict"):  # any other error is raised as it is, at once
        retry_preempted(table, broken, "optimize() of table 't'")
