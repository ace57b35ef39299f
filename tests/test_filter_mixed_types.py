"""Fields whose type differs between rows (issue 24: 3): a seeded fuzz of filters on LanceDB against a
pure-Python oracle. A comparison matches the rows whose value has a comparable type (numbers with numbers,
strings with strings, bools with bools; ``eq`` / ``contains`` / ``in`` also find a list's element), ``ne`` /
``nin`` every other row, and a value no type of the field can compare with raises.

Before the fix such metadata was refused on write ("holds int values, got str"), and LanceDB's typed JSON
getters fail on a whole batch when one row holds another type.
"""

from __future__ import annotations

import json
import random
from typing import Any

import lancedb
import pyarrow as pa
import pytest

from smart_retrievers.filters import parse_filter, to_sql
from smart_retrievers.store.schema import merge_field_types

_MISSING = object()
SCALARS: list[Any] = [0, 1, 2, 3, -1, 2.5, 1.0, "1", "2", "3", "a", "ab", "b", "", 'a"b', True, False]
VALUES: list[Any] = [*SCALARS, None, ["a", "b"], ["ab"], [], {"x": 1}]
OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "text_match", "is_empty", "exists")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if _is_number(value):
        return "number"
    return {str: "str", list: "list", dict: "dict"}[type(value)]


def _compares(op: str, value: Any, kind: str) -> bool:
    """Whether ``op`` compares the filter ``value`` with stored values of ``kind`` (the rule under test)."""
    op = {"ne": "eq", "nin": "in"}.get(op, op)
    if kind == "list":
        return op in ("eq", "in", "contains") and (isinstance(value, str) or _is_number(value))
    if op in ("contains", "text_match"):
        return kind == "str" and isinstance(value, str)
    if kind == "bool":
        return op in ("eq", "in") and isinstance(value, bool)
    if kind == "number":
        return _is_number(value)
    return kind == "str" and isinstance(value, str)


def _eq(stored: Any, value: Any) -> bool:
    if isinstance(stored, list):
        return value in stored and not isinstance(value, bool)
    return _kind(stored) == _kind(value) and stored == value


def _order(op: str, stored: Any, value: Any) -> bool:
    if isinstance(stored, (list, dict)) or _kind(stored) != _kind(value) or isinstance(value, bool):
        return False
    return {"gt": stored > value, "gte": stored >= value, "lt": stored < value, "lte": stored <= value}[op]


def oracle(op: str, stored: Any, value: Any) -> bool:
    """What the filter ``{field: {$op: value}}`` means for a row holding ``stored`` (``_MISSING``: no key)."""
    if op == "is_empty":
        return (stored is _MISSING or stored in (None, "", [])) == (value is not False)
    if op == "exists":
        return (stored is not _MISSING and stored is not None) == (value is not False)
    if op in ("ne", "nin"):
        return not oracle({"ne": "eq", "nin": "in"}[op], stored, value)
    if stored is _MISSING or stored is None:
        return False
    if op == "eq":
        return _eq(stored, value)
    if op == "in":
        return any(_eq(stored, v) for v in value)
    if op in ("gt", "gte", "lt", "lte"):
        return _order(op, stored, value)
    if op == "contains":
        return (isinstance(stored, str) and isinstance(value, str) and value in stored) or (
            isinstance(stored, list) and value in stored
        )
    return isinstance(stored, str) and value in stored  # text_match


def raises(op: str, value: Any, kinds: set[str]) -> bool:
    if op in ("is_empty", "exists"):
        return False
    values = value if op in ("in", "nin") else [value]
    return any(not any(_compares(op, v, k) for k in kinds) for v in values)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[dict[str, Any]], dict[str, str]]:
    rng = random.Random(243)
    rows = []
    for i in range(80):
        metadata = {}
        for field, pool in (("n", [1, 2, 3, -1, "1", "2", "3", "a"]), ("m", VALUES)):
            value = rng.choice([*pool, _MISSING])
            if value is not _MISSING:
                metadata[field] = value
        rows.append({"id": f"r{i}", "metadata": metadata})
    data = pa.table(
        {
            "id": [r["id"] for r in rows],
            "metadata": pa.array([json.dumps(r["metadata"]) for r in rows], type=pa.json_(pa.utf8())),
        }
    )
    table = lancedb.connect(tmp_path_factory.mktemp("mixed")).create_table("rows", data)
    return table, rows, merge_field_types({}, [r["metadata"] for r in rows])


def test_the_field_map_records_the_mix():
    types = merge_field_types({}, [{"k": 1}, {"k": 2}, {"k": "3"}, {"k": None}])
    assert types == {"k": "int|str"}
    assert merge_field_types(types, [{"k": 2.5}, {"k": True}]) == {"k": "bool|float|str"}
    assert merge_field_types({}, [{"k": [1]}, {"k": {"a": 1}}]) == {"k": "dict|list"}


def test_filters_on_mixed_fields_match_a_python_oracle(mixed):
    table, rows, types = mixed
    assert types["n"] == "int|str" and types["m"] == "bool|dict|float|list|str"
    kinds = {"n": {"number", "str"}, "m": {"bool", "dict", "number", "list", "str"}}
    rng = random.Random(2403)
    checked = refused = 0
    for _ in range(260):
        field, op = rng.choice(["n", "m"]), rng.choice(OPS)
        if op in ("in", "nin"):
            value: Any = rng.sample(SCALARS, rng.randint(0, 3))
        elif op in ("is_empty", "exists"):
            value = rng.choice([True, False])
        else:
            value = rng.choice(SCALARS)
        spec = {field: {f"${op}": value}}
        if raises(op, value, kinds[field]):
            with pytest.raises(ValueError, match="cannot be compared|does not fit|expects a string"):
                to_sql(parse_filter(spec), types)
            refused += 1
            continue
        sql = to_sql(parse_filter(spec), types)
        got = {r["id"] for r in table.search().where(sql).select(["id"]).limit(1000).to_list()}
        want = {r["id"] for r in rows if oracle(op, r["metadata"].get(field, _MISSING), value)}
        assert got == want, (spec, sql)
        checked += 1
    assert checked > 150 and refused > 10


def test_not_is_the_complement_on_mixed_fields(mixed):
    table, rows, types = mixed
    for spec in ({"n": {"$gt": 1}}, {"n": "2"}, {"m": {"$contains": "a"}}, {"m": {"$in": [True, "ab", 2.5]}}):
        inner = to_sql(parse_filter(spec), types)
        outer = to_sql(parse_filter({"$not": spec}), types)
        hit = {r["id"] for r in table.search().where(inner).select(["id"]).limit(1000).to_list()}
        rest = {r["id"] for r in table.search().where(outer).select(["id"]).limit(1000).to_list()}
        assert hit.isdisjoint(rest) and hit | rest == {r["id"] for r in rows}, spec
