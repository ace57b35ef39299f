"""Filter rules every class shares (issue 24): a metadata field comes first, an empty list matches
nothing, and a field no row has ever held warns once. Real LanceDB tables through SmartIndex."""

from __future__ import annotations

import warnings

import pytest

from smart_retrievers import SmartIndex
from smart_retrievers.filters import UnknownFieldWarning, column_in, parse_filter, to_sql


@pytest.fixture
def index(tmp_path, encoder) -> SmartIndex:
    idx = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none")
    idx.add(
        ["red star", "blue circle", "green square"],
        ids=["a", "b", "c"],
        metadatas=[{"id": "x", "n": 1}, {"id": "y", "n": 2}, {"n": 3}],
        ref_ids=["d1", "d1", "d2"],
    )
    return idx


def test_a_metadata_field_named_id_is_filtered_as_metadata(index):
    assert [h.id for h in index.rows({"id": "x"})] == ["a"]
    assert [h.id for h in index.search("red star", k=3, where={"id": {"$in": ["y"]}})] == ["b"]
    # the row id stays reachable: by its alias, by column_in, and by get / delete
    assert [h.id for h in index.rows({"node_id": "c"})] == ["c"]
    assert [h.id for h in index.rows(column_in("id", ["c", "a"]))] == ["a", "c"]
    assert [h.id for h in index.get(["c", "a"])] == ["c", "a"]
    assert index.delete(["x"]) == 0 and index.delete(["b"]) == 1
    assert sorted(h.id for h in index.rows()) == ["a", "c"]


def test_id_means_the_row_id_where_no_metadata_field_has_the_name(tmp_path, encoder):
    idx = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none")
    idx.add(["red star", "blue circle"], ids=["a", "b"], metadatas=[{"n": 1}, {"n": 2}])
    assert [h.id for h in idx.rows({"id": "b"})] == ["b"]


@pytest.mark.parametrize(
    "where",
    [{"id": {"$in": []}}, {"ref_id": {"$in": []}}, {"n": {"$in": []}}, column_in("id", []), column_in("ref_id", [])],
)
def test_an_empty_list_matches_nothing(index, where):
    assert index.count(where) == 0
    assert index.search("red star", k=3, where=where) == []


def test_nin_of_an_empty_list_matches_everything(index):
    assert index.count({"n": {"$nin": []}}) == 3


def test_a_field_no_row_ever_held_warns_once_and_matches_nothing(index):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert index.search("red star", k=3, where={"yaer": 2021}) == []
        assert index.count({"yaer": {"$gte": 1}}) == 0
        assert index.count({"n": 1}) == 1  # a known field: no warning
    unknown = [w for w in caught if issubclass(w.category, UnknownFieldWarning)]
    assert len(unknown) == 1
    assert "'yaer'" in str(unknown[0].message) and "n" in str(unknown[0].message)


def test_a_field_held_only_as_null_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownFieldWarning)
        assert to_sql(parse_filter({"maybe": 1}), {"maybe": "null"}) == "FALSE"


def test_column_in_refuses_a_metadata_field():
    with pytest.raises(ValueError, match="column=True needs a column field"):
        column_in("year", ["a"])
