"""A seeded fuzz of filter values against Python: list elements and strings holding `"`, `\\`, a newline,
quotes, LIKE wildcards and control characters are matched exactly (issue 25: 3).

Before the fix, ``$in`` missed list elements holding `"`, `\\` or a newline, and ``$nin`` / ``$ne``
matched their rows (so ``delete(where={"tags": {"$nin": [...]}})`` removed rows it should keep).
"""

from __future__ import annotations

import json
import random
from typing import Any

import lancedb
import pyarrow as pa
import pytest

from smart_retrievers.filters import parse_filter, to_sql

ALPHABET = ['"', "\\", "\n", "'", "%", "_", "a", "b", " ", "é", "\t", "\x01", "\u2028", "{", "}", "[", "]", ",", ":"]
FIELD_TYPES = {"tags": "list", "name": "str"}


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 4)))


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[dict[str, Any]], list[str]]:
    rng = random.Random(25)
    words = sorted({_word(rng) for _ in range(60)})
    rows = [
        {"id": f"r{i}", "metadata": {"tags": rng.sample(words, rng.randint(1, 3)), "name": rng.choice(words)}}
        for i in range(60)
    ]
    data = pa.table(
        {
            "id": [r["id"] for r in rows],
            "metadata": pa.array([json.dumps(r["metadata"]) for r in rows], type=pa.json_(pa.utf8())),
        }
    )
    table = lancedb.connect(tmp_path_factory.mktemp("fuzz")).create_table("rows", data)
    return table, rows, words


def _ids(table: Any, spec: Any) -> set[str]:
    sql = to_sql(parse_filter(spec), FIELD_TYPES)
    return {r["id"] for r in table.search().where(sql).select(["id"]).limit(1000).to_list()}


def _cases(picked: list[str], one: str) -> list[tuple[Any, Any]]:
    return [
        ({"tags": {"$in": picked}}, lambda m: bool(set(picked) & set(m["tags"]))),
        ({"tags": {"$nin": picked}}, lambda m: not set(picked) & set(m["tags"])),
        ({"tags": {"$ne": one}}, lambda m: one not in m["tags"]),
        ({"tags": one}, lambda m: one in m["tags"]),
        ({"tags": {"$contains": one}}, lambda m: one in m["tags"]),
        ({"name": {"$in": picked}}, lambda m: m["name"] in picked),
        ({"name": {"$ne": one}}, lambda m: m["name"] != one),
        ({"name": {"$text_match": one}}, lambda m: one in m["name"]),
    ]


def test_list_and_string_values_with_special_characters_match_python(fuzz):
    table, rows, words = fuzz
    rng = random.Random(3)
    for _ in range(40):
        picked = rng.sample(words, rng.randint(1, 3))
        one = picked[0]
        cases = _cases(picked, one)
        for spec, predicate in cases:
            expected = {r["id"] for r in rows if predicate(r["metadata"])}
            assert _ids(table, spec) == expected, spec
