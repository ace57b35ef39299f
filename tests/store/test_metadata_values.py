"""What metadata the write doors take (issues 24: 3 and 25: 6, 10): mixed types per field, numpy and pandas
scalars as their Python values, ``pd.NaT`` as null, reserved keys refused with nothing written (from
``add``, LangChain documents and the store), and a field map that starts over after ``delete_all()``."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
from hash_encoder import HashEncoder

from smart_retrievers.index import SmartIndex
from smart_retrievers.store import Record
from smart_retrievers.validation import LLAMA_INDEX_KEY


@pytest.fixture
def index(tmp_path) -> SmartIndex:
    return SmartIndex(str(tmp_path / "db"), encoder=HashEncoder(), compression="none")


def _metadata(index: SmartIndex, item_id: str) -> dict:
    return index.get([item_id])[0].metadata


def test_a_field_may_hold_different_types_and_filters_stay_exact(index):
    index.add(["one", "two", "three", "four"], ids=["a", "b", "c", "d"], metadatas=[{"k": 1}, {"k": 2}, {"k": "3"}, {}])
    assert index.store.field_types == {"k": "int|str"}
    assert {h.id for h in index.rows({"k": {"$gt": 1}})} == {"b"}  # "3" is not a number
    assert {h.id for h in index.rows({"k": "3"})} == {"c"} and {h.id for h in index.rows({"k": 3})} == set()
    assert {h.id for h in index.rows({"k": {"$ne": 2}})} == {"a", "c", "d"}
    assert {h.id for h in index.rows({"k": {"$in": [1, "3"]}})} == {"a", "c"}
    assert {h.id for h in index.rows({"k": {"$nin": [1, "3"]}})} == {"b", "d"}
    with pytest.raises(ValueError, match=r"cannot be compared by \$eq with field 'k', which holds int\|str values"):
        list(index.rows({"k": True}))
    index.add(["five"], ids=["e"], metadatas=[{"k": 2.5}])  # int and float merge to float, in a mix too
    assert index.store.field_types == {"k": "float|str"}
    assert {h.id for h in index.rows({"k": {"$gte": 2}})} == {"b", "e"}


def test_numpy_and_pandas_scalars_are_stored_as_their_python_values(index):
    when = pd.Timestamp("2024-05-06T07:08:09")
    meta = {
        "i": np.int64(7),
        "f": np.float32(0.5),
        "b": np.bool_(True),
        "t": when,
        "nat": pd.NaT,
        "d64": np.datetime64("2024-05-06T07:08:09"),
        "list": [np.int32(1), np.float64(2.0)],
    }
    index.add(["x"], ids=["x"], metadatas=[meta])
    stored = _metadata(index, "x")
    assert stored == {
        "i": 7,
        "f": 0.5,
        "b": True,
        "t": "2024-05-06T07:08:09",
        "nat": None,
        "d64": "2024-05-06T07:08:09",
        "list": [1, 2.0],
    }
    assert type(stored["i"]) is int and type(stored["b"]) is bool
    assert index.store.field_types["nat"] == "null" and index.store.field_types["i"] == "int"
    assert index.count({"i": np.int64(7)}) == 1 and index.count({"b": np.bool_(True)}) == 1
    assert index.count({"t": {"$gte": pd.Timestamp("2024-01-01")}}) == 1
    assert index.count({"nat": {"$exists": False}}) == 1
    with pytest.raises(ValueError, match=r"metadata 0 \(id 'y'\) field 'f': nan is not a finite number"):
        index.add(["y"], ids=["y"], metadatas=[{"f": np.float32("nan")}])


@pytest.mark.parametrize("key", [LLAMA_INDEX_KEY, "smart_retrievers:key_order", "smart_retrievers:anything"])
def test_reserved_keys_are_refused_at_every_door_and_nothing_is_written(index, key):
    index.add(["seed"], ids=["s"])
    version = index.store.version
    with pytest.raises(ValueError, match=rf"metadata 1 \(id 'b'\): metadata key '{key}' is reserved"):
        index.add(["a", "b"], ids=["a", "b"], metadatas=[{}, {key: {"node": {}}}])
    encoding = HashEncoder().encode_documents(["c"])[0]
    with pytest.raises(ValueError, match=rf"metadata 0 \(id 'c'\): metadata key '{key}' is reserved"):
        index.store.write([[Record(id="c", text="c", encoding=encoding, metadata={key: 1})]])
    assert index.store.version == version and index.count() == 1 and key not in index.store.field_types


def test_langchain_documents_with_the_llama_index_key_are_refused(tmp_path):
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document

    from smart_retrievers.langchain import SmartVectorStore

    store = SmartVectorStore(uri=str(tmp_path / "db"), encoder=HashEncoder())
    store.add_documents([Document(page_content="fine", metadata={"year": 1})], ids=["ok"])
    version = store.index.store.version
    bad = Document(page_content="leaked", metadata={LLAMA_INDEX_KEY: {"node": {"text": "x"}}})
    with pytest.raises(ValueError, match=f"metadata key '{LLAMA_INDEX_KEY}' is reserved"):
        store.add_documents([bad], ids=["bad"])
    assert store.index.store.version == version and store.index.count() == 1


def test_llama_index_still_writes_its_node_key_and_retrieves_after_a_refused_row(tmp_path):
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from smart_retrievers.llama_index import SmartVectorStore

    index = SmartIndex(str(tmp_path / "db"), encoder=HashEncoder(), compression="none")
    with pytest.raises(ValueError, match="is reserved"):
        index.add(["leaked"], ids=["x"], metadatas=[{LLAMA_INDEX_KEY: "not node data"}])
    store = SmartVectorStore(index=index)
    store.add([TextNode(id_="n1", text="the red star", metadata={"year": 2021})])
    assert LLAMA_INDEX_KEY in index.get(["n1"])[0].metadata
    found = store.query(VectorStoreQuery(query_str="the red star", similarity_top_k=1))
    assert [node.node_id for node in found.nodes] == ["n1"] and found.nodes[0].metadata == {"year": 2021}


def test_the_field_map_starts_over_after_delete_all(index):
    index.add(["a", "b"], ids=["a", "b"], metadatas=[{"year": 2020, "tag": "x"}, {"year": 2021}])
    assert index.store.field_types == {"year": "int", "tag": "str"}
    index.delete_all()
    assert index.store.field_types == {}
    index.add(["c"], ids=["c"], metadatas=[{"year": "MMXXII"}])
    assert index.store.field_types == {"year": "str"}  # a str field again, not a mix with the deleted ints
    assert index.count({"year": "MMXXII"}) == 1


def test_sets_are_refused_as_texts_and_ids(index):
    with pytest.raises(TypeError, match="texts is a set, whose order is arbitrary"):
        index.add({"a", "b"})
    with pytest.raises(TypeError, match="ids is a set, whose order is arbitrary"):
        index.add(["a", "b"], ids={"x", "y"})
    with pytest.raises(TypeError, match="ids is a frozenset"):
        index.add_encodings(HashEncoder().encode_documents(["a"]), ["a"], ids=frozenset({"x"}))
    assert index.store.table is None


def test_datetime_metadata_keeps_its_iso_string(index):
    index.add(["a"], ids=["a"], metadatas=[{"when": datetime.datetime(2024, 1, 2, 3, 4, 5)}])
    assert _metadata(index, "a") == {"when": "2024-01-02T03:04:05"}
