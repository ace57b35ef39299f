"""Tests for smart_retrievers.filters against a real LanceDB table."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import lancedb
import pyarrow as pa
import pytest

from smart_retrievers.filters import And, Condition, Not, Or, parse_filter, to_sql

FIELD_TYPES = {"year": "int", "score": "float", "author": "str", "published": "bool", "tags": "list"}

ROWS: list[dict[str, Any]] = [
    {
        "id": "a",
        "ref_id": "r1",
        "metadata": {"year": 2020, "score": 1.5, "author": "O'Brien", "published": True, "tags": ["ai", "ml"]},
    },
    {
        "id": "b",
        "ref_id": "r1",
        "metadata": {"year": 2019, "score": 0.5, "author": "Smith", "published": False, "tags": []},
    },
    {"id": "c", "ref_id": "r2", "metadata": {"year": 2021, "score": 3, "author": "50% off_sale", "tags": ["ml"]}},
    {"id": "d", "ref_id": "r2", "metadata": {"year": 2023, "author": "", "published": True}},
    {"id": "e", "ref_id": "r3", "metadata": {}},
    {
        "id": "f",
        "ref_id": "r3",
        "metadata": {"year": None, "score": None, "author": None, "published": None, "tags": None},
    },
    {
        "id": "g",
        "ref_id": "r4",
        "metadata": {"year": 2022, "score": 2.25, "author": "smithers", "published": False, "tags": ["nlp", "ai"]},
    },
    {"id": "h", "ref_id": "r4", "metadata": {"year": 2018, "score": -1.0, "author": "back\\slash", "tags": ["a_b"]}},
]
ALL_IDS = {row["id"] for row in ROWS}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = pa.table(
        {
            "id": [row["id"] for row in ROWS],
            "ref_id": [row["ref_id"] for row in ROWS],
            "metadata": pa.array([json.dumps(row["metadata"]) for row in ROWS], type=pa.json_(pa.utf8())),
        }
    )
    return lancedb.connect(tmp_path_factory.mktemp("filters")).create_table("rows", data)


def query(table: Any, spec: Any) -> set[str]:
    sql = to_sql(parse_filter(spec), FIELD_TYPES)
    assert sql is not None
    return {row["id"] for row in table.search().where(sql).limit(1000).to_list()}


def expected(predicate: Callable[[dict[str, Any]], bool]) -> set[str]:
    return {row["id"] for row in ROWS if predicate({**row["metadata"], "id": row["id"], "ref_id": row["ref_id"]})}


CASES: list[tuple[str, Any, Callable[[dict[str, Any]], bool]]] = [
    ("eq-int", {"year": 2020}, lambda m: m.get("year") == 2020),
    ("eq-explicit", {"year": {"$eq": 2021}}, lambda m: m.get("year") == 2021),
    ("ne-int", {"year": {"$ne": 2020}}, lambda m: m.get("year") != 2020),
    ("gt-float", {"score": {"$gt": 1}}, lambda m: m.get("score") is not None and m["score"] > 1),
    ("gte-int", {"year": {"$gte": 2021}}, lambda m: m.get("year") is not None and m["year"] >= 2021),
    ("lt-int", {"year": {"$lt": 2020}}, lambda m: m.get("year") is not None and m["year"] < 2020),
    ("lte-float", {"score": {"$lte": 1.5}}, lambda m: m.get("score") is not None and m["score"] <= 1.5),
    ("int-field-float-value", {"year": {"$gt": 2019.5}}, lambda m: m.get("year") is not None and m["year"] > 2019.5),
    ("float-field-int-value", {"score": {"$gte": 2}}, lambda m: m.get("score") is not None and m["score"] >= 2),
    ("range", {"year": {"$gte": 2019, "$lt": 2022}}, lambda m: m.get("year") is not None and 2019 <= m["year"] < 2022),
    ("eq-str-quote", {"author": "O'Brien"}, lambda m: m.get("author") == "O'Brien"),
    ("ne-str", {"author": {"$ne": "Smith"}}, lambda m: m.get("author") != "Smith"),
    ("gt-str", {"author": {"$gt": "S"}}, lambda m: m.get("author") is not None and m["author"] > "S"),
    ("eq-backslash", {"author": "back\\slash"}, lambda m: m.get("author") == "back\\slash"),
    ("eq-bool-true", {"published": True}, lambda m: m.get("published") is True),
    ("eq-bool-false", {"published": False}, lambda m: m.get("published") is False),
    ("ne-bool", {"published": {"$ne": True}}, lambda m: m.get("published") is not True),
    ("in-str", {"author": {"$in": ["Smith", "O'Brien"]}}, lambda m: m.get("author") in ("Smith", "O'Brien")),
    ("in-int", {"year": {"$in": [2019, 2023]}}, lambda m: m.get("year") in (2019, 2023)),
    ("in-empty", {"year": {"$in": []}}, lambda m: False),
    ("nin-int", {"year": {"$nin": [2019, 2020]}}, lambda m: m.get("year") not in (2019, 2020)),
    ("nin-empty", {"author": {"$nin": []}}, lambda m: True),
    ("in-bool", {"published": {"$in": [False]}}, lambda m: m.get("published") is False),
    ("contains-list", {"tags": {"$contains": "ai"}}, lambda m: "ai" in (m.get("tags") or [])),
    ("contains-list-wildcard", {"tags": {"$contains": "a_b"}}, lambda m: "a_b" in (m.get("tags") or [])),
    ("eq-list", {"tags": "ml"}, lambda m: "ml" in (m.get("tags") or [])),
    ("ne-list", {"tags": {"$ne": "ml"}}, lambda m: "ml" not in (m.get("tags") or [])),
    ("in-list", {"tags": {"$in": ["nlp", "ml"]}}, lambda m: bool({"nlp", "ml"} & set(m.get("tags") or []))),
    ("nin-list", {"tags": {"$nin": ["ai"]}}, lambda m: "ai" not in (m.get("tags") or [])),
    ("in-list-empty", {"tags": {"$in": []}}, lambda m: False),
    ("contains-str", {"author": {"$contains": "mith"}}, lambda m: "mith" in (m.get("author") or "")),
    ("text-match", {"author": {"$text_match": "Bri"}}, lambda m: "Bri" in (m.get("author") or "")),
    ("text-match-case", {"author": {"$text_match": "smith"}}, lambda m: "smith" in (m.get("author") or "")),
    ("text-match-percent", {"author": {"$text_match": "%"}}, lambda m: "%" in (m.get("author") or "")),
    ("text-match-underscore", {"author": {"$text_match": "f_s"}}, lambda m: "f_s" in (m.get("author") or "")),
    ("text-match-underscore-literal", {"author": {"$text_match": "S_ith"}}, lambda m: False),
    ("text-match-backslash", {"author": {"$text_match": "\\"}}, lambda m: "\\" in (m.get("author") or "")),
    ("text-match-quote", {"author": {"$text_match": "'B"}}, lambda m: "'B" in (m.get("author") or "")),
    ("is-empty-str", {"author": {"$is_empty": True}}, lambda m: not m.get("author")),
    ("not-empty-str", {"author": {"$is_empty": False}}, lambda m: bool(m.get("author"))),
    ("is-empty-list", {"tags": {"$is_empty": True}}, lambda m: not m.get("tags")),
    ("not-empty-list", {"tags": {"$is_empty": False}}, lambda m: bool(m.get("tags"))),
    ("is-empty-int", {"year": {"$is_empty": True}}, lambda m: m.get("year") is None),
    ("is-empty-bool", {"published": {"$is_empty": None}}, lambda m: m.get("published") is None),
    ("not-empty-float", {"score": {"$is_empty": False}}, lambda m: m.get("score") is not None),
    (
        "multi-key-and",
        {"published": False, "score": {"$gt": 1}},
        lambda m: m.get("published") is False and (m.get("score") or 0) > 1,
    ),
    (
        "nested-or-and",
        {"$or": [{"year": {"$gte": 2022}}, {"$and": [{"published": False}, {"tags": {"$contains": "ai"}}]}]},
        lambda m: (m.get("year") or 0) >= 2022 or (m.get("published") is False and "ai" in (m.get("tags") or [])),
    ),
    ("not-gte", {"$not": {"year": {"$gte": 2020}}}, lambda m: not (m.get("year") is not None and m["year"] >= 2020)),
    (
        "not-or",
        {"$not": {"$or": [{"author": {"$text_match": "mith"}}, {"published": True}]}},
        lambda m: not ("mith" in (m.get("author") or "") or m.get("published") is True),
    ),
    ("not-not", {"$not": {"$not": {"year": 2020}}}, lambda m: m.get("year") == 2020),
    ("and-empty", {"$and": []}, lambda m: True),
    ("or-empty", {"$or": []}, lambda m: False),
    ("id-eq", {"id": "c"}, lambda m: m["id"] == "c"),
    ("id-ne", {"id": {"$ne": "c"}}, lambda m: m["id"] != "c"),
    ("ref-id-in", {"ref_id": {"$in": ["r1", "r3"]}}, lambda m: m["ref_id"] in ("r1", "r3")),
    ("ref-id-nin", {"ref_id": {"$nin": ["r1"]}}, lambda m: m["ref_id"] != "r1"),
    (
        "ref-id-and-meta",
        {"ref_id": "r4", "tags": {"$contains": "ai"}},
        lambda m: m["ref_id"] == "r4" and "ai" in (m.get("tags") or []),
    ),
    ("injection-eq", {"author": "x' OR '1'='1"}, lambda m: False),
    ("injection-id", {"id": {"$in": ["x' OR '1'='1", "a') OR ('1'='1"]}}, lambda m: False),
    ("injection-like", {"author": {"$text_match": "' OR '1'='1"}}, lambda m: False),
    ("injection-list", {"tags": {"$contains": "x' OR '1'='1"}}, lambda m: False),
]


@pytest.mark.parametrize(("spec", "predicate"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_filter_matches_python(table: Any, spec: Any, predicate: Callable[[dict[str, Any]], bool]) -> None:
    assert query(table, spec) == expected(predicate)


@pytest.mark.parametrize(("spec", "predicate"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_not_is_exact_complement(table: Any, spec: Any, predicate: Callable[[dict[str, Any]], bool]) -> None:
    assert query(table, Not(parse_filter(spec))) == ALL_IDS - expected(predicate)


def test_filter_objects_pass_through(table: Any) -> None:
    node = Or(
        [
            Condition("year", "lt", 2019),
            And([Condition("tags", "contains", "ml"), Not(Condition("published", "eq", True))]),
        ]
    )
    assert parse_filter(node) is node
    assert query(table, node) == {"c", "h"}


def test_parse_builds_model() -> None:
    assert parse_filter({"year": {"$gte": 1, "$lt": 5}, "author": "x"}) == And(
        (And((Condition("year", "gte", 1), Condition("year", "lt", 5))), Condition("author", "eq", "x"))
    )
    assert parse_filter({"$not": {"tags": {"$in": ["a"]}}}) == Not(Condition("tags", "in", ["a"]))


def test_none_and_empty_filters() -> None:
    assert parse_filter(None) is None
    assert parse_filter({}) is None
    assert to_sql(None, FIELD_TYPES) is None


def test_empty_in_renders_constants() -> None:
    assert to_sql(Condition("year", "in", []), FIELD_TYPES) == "FALSE"
    assert to_sql(Condition("tags", "nin", ()), FIELD_TYPES) == "TRUE"


def test_unknown_field_matches_no_row() -> None:
    """A field no row holds is missing everywhere: no match, as Chroma and LanceDB give (issue 12, item 5)."""
    assert to_sql(parse_filter({"colour": "red"}), FIELD_TYPES) == "FALSE"
    assert to_sql(parse_filter({"colour": {"$ne": "red"}}), FIELD_TYPES) == "TRUE"


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ({"$nor": [{"year": 1}]}, "$nor"),
        ({"year": {"$regex": "x"}}, "$regex"),
        ({"year": {"gte": 2020}}, "gte"),
    ],
)
def test_unknown_operator_is_named(spec: Any, name: str) -> None:
    with pytest.raises(ValueError, match=r"Unknown filter operator .*" + name.replace("$", r"\$") + r".*\$text_match"):
        parse_filter(spec)


def test_unknown_condition_operator() -> None:
    with pytest.raises(ValueError, match="'regex'"):
        Condition("author", "regex", "x")


@pytest.mark.parametrize(
    "spec",
    [
        {"year": True},
        {"score": {"$gt": False}},
        {"published": 1},
        {"published": {"$in": [True, 0]}},
        {"tags": {"$contains": True}},
        {"year": "2020"},
        {"author": 5},
        {"author": {"$eq": {"nested": 1}}},
        {"year": {"$in": [[2020]]}},
        {"score": math.nan},
        {"score": {"$lt": math.inf}},
        {"year": 2**64},
        {"id": 3},
        {"author": {"$text_match": 1}},
        {"year": {"$is_empty": "yes"}},
        {"year": {"$in": 2020}},
        {"author": {"$in": "Smith"}},
        {"published": {"$gt": False}},
        {"tags": {"$gt": "a"}},
        {"tags": {"$text_match": "a"}},
        {"year": {"$contains": 1}},
    ],
)
def test_values_and_operators_checked_against_field_type(spec: Any) -> None:
    with pytest.raises(ValueError):
        to_sql(parse_filter(spec), FIELD_TYPES)


@pytest.mark.parametrize(
    "spec",
    [
        {"a'b": 1},
        {"a b": 1},
        {'x"]': 1},
        {"": 1},
        {"$and": {"year": 1}},
        {"$not": [{"year": 1}]},
        {"$or": [{}]},
        {"year": {}},
    ],
)
def test_malformed_specs_rejected(spec: Any) -> None:
    with pytest.raises(ValueError):
        parse_filter(spec)


def test_unsupported_field_type_rejected() -> None:
    with pytest.raises(ValueError, match="'blob'"):
        to_sql(Condition("x", "eq", 1), {"x": "blob"})
