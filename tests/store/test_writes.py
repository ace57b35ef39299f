"""The write path: one commit per call, the append path, streaming errors and the field map."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hash_encoder import FAIL_MARK, HashEncoder

from smart_retrievers.encoding import Encoding
from smart_retrievers.index import SmartIndex
from smart_retrievers.store import DuplicateIdError, stream_into

TEXTS = [f"document number {i}" for i in range(23)]


@pytest.fixture
def index(tmp_path) -> SmartIndex:
    index = SmartIndex(str(tmp_path / "db"), encoder=HashEncoder(), write_batch_size=5)
    index.add(TEXTS[:3], ids=["a", "b", "c"], metadatas=[{"year": 2020}] * 3)
    return index


def _rows(index: SmartIndex) -> list[tuple]:
    table = index.store.table.to_arrow().select(["id", "text", "metadata"])
    return sorted(zip(*(table.column(c).to_pylist() for c in table.column_names)))


def test_a_multi_batch_call_is_one_commit(index, monkeypatch):
    merges = []
    real = index.store.table.merge_insert
    monkeypatch.setattr(index.store.table, "merge_insert", lambda *a, **k: merges.append(a) or real(*a, **k))
    version = index.store.version
    index.add(TEXTS[3:], ids=[f"n{i}" for i in range(20)], metadatas=[{"year": 2021}] * 20)  # 4 batches
    assert index.store.version == version + 1 and index.count() == 23
    assert len(merges) == 1  # an upsert into a non-empty table: one merge_insert for the whole call
    index.add(["a again"], ids=["a"], metadatas=[{"year": 2022}])  # an upsert replaces
    assert index.count() == 23 and index.get(["a"])[0].text == "a again"


def test_append_path_skips_the_merge_and_refuses_existing_ids(index, monkeypatch):
    monkeypatch.setattr(index.store.table, "merge_insert", lambda *a, **k: pytest.fail("append must not merge"))
    before = _rows(index)
    with pytest.raises(DuplicateIdError, match="id 'b' is already in table"):
        index.add(TEXTS[3:13] + ["dup"], ids=[f"n{i}" for i in range(10)] + ["b"], upsert=False)
    assert _rows(index) == before  # the first two batches had been streamed: nothing committed
    index.add(TEXTS[3:13], ids=[f"n{i}" for i in range(10)], upsert=False)
    assert index.count() == 13 and index.get(["n9"])[0].text == TEXTS[12]


def test_a_failed_append_commits_nothing(index):
    before, version = _rows(index), index.store.version
    with pytest.raises(RuntimeError, match="marked text"):  # the 3rd batch of an append fails
        index.add(TEXTS[3:13] + [FAIL_MARK], ids=[f"n{i}" for i in range(11)], upsert=False)
    assert _rows(index) == before and index.store.version == version
    index.add(TEXTS[3:13], ids=[f"n{i}" for i in range(10)], upsert=False)  # the retry appends each row once
    assert index.count() == 13


def test_a_new_table_is_appended_to(tmp_path, monkeypatch):
    import lancedb.table

    monkeypatch.setattr(lancedb.table.LanceTable, "merge_insert", lambda *a, **k: pytest.fail("no merge"))
    index = SmartIndex(str(tmp_path / "db"), encoder=HashEncoder(), write_batch_size=4)
    assert index.add(TEXTS, ids=[str(i) for i in range(23)]) == [str(i) for i in range(23)]
    assert index.count() == 23


def test_failures_inside_the_stream_commit_nothing(index):
    before, version = _rows(index), index.store.version
    with pytest.raises(RuntimeError, match="marked text"):  # the encoder fails in the 3rd batch
        index.add(TEXTS[3:13] + [FAIL_MARK], ids=[f"n{i}" for i in range(11)])
    good = Encoding(pooled=np.ones(32, np.float32) / np.sqrt(32), tokens=np.ones((2, 32), np.float16))
    bad = Encoding(pooled=good.pooled, tokens=np.ones((2, 7), np.float16))
    with pytest.raises(ValueError, match="record 'x7': encoding shapes"):  # refused while coding, in the writer
        index.add_encodings([good] * 7 + [bad], [f"t{i}" for i in range(8)], ids=[f"x{i}" for i in range(8)])
    assert _rows(index) == before and index.store.version == version


def test_new_fields_are_recorded_before_the_rows(index):
    version = index.store.version
    with pytest.raises(RuntimeError, match="marked text"):  # the first batch fails: no commit at all
        index.add(["fine", FAIL_MARK], ids=["f1", "f2"], metadatas=[{"colour": "red"}, {"colour": "blue"}])
    assert index.store.field_types == {"year": "int"} and index.store.version == version
    with pytest.raises(RuntimeError, match="marked text"):  # the second batch fails
        index.add(TEXTS[3:8] + [FAIL_MARK], ids=[f"f{i}" for i in range(6)], metadatas=[{"colour": "red"}] * 6)
    # the field map was widened first (its own commit); no row came, so the filter matches nothing
    assert index.store.field_types == {"year": "int", "colour": "str"}
    assert index.store.version == version + 1 and index.count(where={"colour": "red"}) == 0
    index.add(["fine"], ids=["f1"], metadatas=[{"colour": "red", "year": 2.5}])
    assert index.store.field_types == {"year": "float", "colour": "str"}
    assert index.count(where={"colour": "red"}) == 1 and index.count(where={"year": {"$gt": 2000}}) == 3


def test_stream_into_hands_over_in_order_and_reports_the_producers_error():
    import pyarrow as pa

    schema = pa.schema([pa.field("x", pa.int64())])
    seen = []

    def convert(i):
        return [pa.record_batch([pa.array([i])], schema=schema)]

    stream_into(schema, iter(range(50)), convert, lambda reader: seen.extend(reader.read_all().column("x").to_pylist()))
    assert seen == list(range(50))

    def producer():
        yield 1
        raise KeyError("producer broke")

    with pytest.raises(KeyError, match="producer broke"):
        stream_into(schema, producer(), convert, lambda reader: reader.read_all())


def test_a_streamed_write_checks_fields_per_batch_and_records_them_before_its_commit(index):
    from smart_retrievers.store import Record

    enc = HashEncoder().encode_documents(["x"])[0]

    def batches(*metas):
        for b, meta in enumerate(metas):
            yield [Record(id=f"s{b}-{i}", text=f"s{b} {i}", encoding=enc, metadata=meta) for i in range(3)]

    before, version = _rows(index), index.store.version
    bad = {"tags": [{"nested": 1}]}
    with pytest.raises(
        ValueError, match=r"metadata 0 \(id 's2-0'\) field 'tags': metadata lists may hold only scalars"
    ):
        index.store.write(batches({"year": 1}, {"shape": "round"}, bad))  # no metadatas up front
    assert _rows(index) == before and index.store.version == version and "shape" not in index.store.field_types
    with pytest.raises(ValueError, match="duplicate id 's0-0' in one write"):
        index.store.write(itertools.chain(batches({}), batches({})))
    index.store.write(batches({"year": 1}, {"shape": "round"}, {"year": "late"}))
    assert index.store.field_types == {"year": "int|str", "shape": "str"}
    assert index.count(where={"shape": "round"}) == 3 and index.count() == 12
    assert index.count(where={"year": "late"}) == 3 and index.count(where={"year": 1}) == 3


def test_tokens_coded_elsewhere_are_stored_as_they_are(tmp_path):
    from smart_retrievers.store import Record, tokens_from_arrow

    texts = [f"a longer document number {i} with several words" for i in range(40)]
    index = SmartIndex(str(tmp_path / "db"), encoder=HashEncoder(dim=32, n_tokens=12), compression="pool2-pca16-sign")
    index.add(texts[:20], ids=[f"a{i}" for i in range(20)])  # fits the codec
    codec, encodings = index.codec, HashEncoder(dim=32, n_tokens=12).encode_documents(texts[20:])
    coded = [codec.encode_docs([e.tokens])[0] for e in encodings]  # as a distributed worker would
    records = [
        Record(id=f"b{i}", text=t, encoding=Encoding(pooled=e.pooled, tokens=c))
        for i, (t, e, c) in enumerate(zip(texts[20:], encodings, coded))
    ]
    index.store.write([records])
    stored = tokens_from_arrow(index.store.get(["b3"], columns=["id", "tokens"]).column("tokens"))
    assert stored.values.dtype == torch.uint8 and (stored.values.numpy() == coded[3]).all()
    assert index.search(texts[23], k=1)[0].id == "b3"
