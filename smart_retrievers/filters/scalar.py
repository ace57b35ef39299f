"""SQL for one condition on one typed expression: a scalar field, a list field, and the literals they compare with.

Every value is validated against the field's type and quoted here, never concatenated raw.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from ..validation import INT64_MAX, INT64_MIN, plain_value
from .model import Condition, SqlTarget

STRING_OPS = ("contains", "text_match", "text_match_insensitive", "like", "ilike")
"""Operators that match text (``contains`` also means "has the element" on a list)."""
GETTERS = {"int": "json_get_int", "float": "json_get_float", "str": "json_get_string", "bool": "json_get_bool"}
"""The LanceDB JSON accessor of each scalar type."""
_COMPARISONS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_LIKE_ESCAPES = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


def render_scalar(cond: Condition, kind: str, expr: str) -> str:
    """``cond`` on ``expr``, a SQL expression of the scalar type ``kind`` ("int", "float", "str", "bool";
    NULL where the row does not hold the field)."""
    op, value = cond.op, cond.value
    if op == "is_empty":
        empty = value is not False
        if kind == "str":
            return f"COALESCE({expr}, '') {'=' if empty else '<>'} ''"
        return f"{expr} IS {'' if empty else 'NOT '}NULL"
    if op == "exists":
        return f"{expr} IS {'NOT ' if value is not False else ''}NULL"
    if op in STRING_OPS:
        if kind != "str":
            raise ValueError(f"${op} needs a str or list field; {cond.field!r} holds {kind} values")
        if not isinstance(value, str):
            raise ValueError(f"${op} expects a string for field {cond.field!r}, got {value!r}")
        if op in ("like", "ilike"):
            return f"{expr} {op.upper()} {quote(value)} ESCAPE '\\'"
        pattern = quote("%" + value.translate(_LIKE_ESCAPES) + "%")
        if op == "text_match_insensitive":
            return f"lower({expr}) LIKE lower({pattern}) ESCAPE '\\'"
        return f"{expr} LIKE {pattern} ESCAPE '\\'"
    if kind == "bool" and op in ("gt", "gte", "lt", "lte"):
        raise ValueError(f"${op} is not supported on bool field {cond.field!r}")
    if op in _COMPARISONS:
        return f"{expr} {_COMPARISONS[op]} {literal(value, kind, cond.field)}"
    if op == "ne":
        return f"({expr} IS NULL OR {expr} <> {literal(value, kind, cond.field)})"
    items = ", ".join(literal(item, kind, cond.field) for item in values_of(cond))
    if op == "in":
        return f"{expr} IN ({items})" if items else "FALSE"
    return f"({expr} IS NULL OR {expr} NOT IN ({items}))" if items else "TRUE"


def list_member(cond: Condition, target: SqlTarget) -> Callable[[Any], str]:
    """The SQL test "the list field of ``cond`` has this element", for ``target``'s metadata."""
    if target.struct:  # a typed Arrow list: compared by value
        column = f"{target.metadata}[{quote(cond.field)}]"
        return lambda value: f"array_has({column}, {literal(value, 'list', cond.field)})"
    path = json_path(cond.field)

    def member_of(value: Any) -> str:  # JSON: the element's JSON text is compared, escaped as the JSON is
        value = plain_value(value)
        escaped = json.dumps(value, ensure_ascii=False)[1:-1] if isinstance(value, str) else value
        return f"json_array_contains({target.metadata}, {path}, {literal(escaped, 'list', cond.field)})"

    return member_of


def render_list(cond: Condition, target: SqlTarget) -> str:
    """``cond`` on a list field: ``eq`` / ``contains`` "has the element", ``in`` "has any", and their negations."""
    if target.struct:
        length = f"array_length({target.metadata}[{quote(cond.field)}])"
    else:
        length = f"json_array_length({target.metadata}, {json_path(cond.field)})"
    member_of = list_member(cond, target)
    op = cond.op
    if op == "is_empty":
        return f"COALESCE({length}, 0) {'<>' if cond.value is False else '='} 0"
    if op == "exists":
        return f"{length} IS {'NOT ' if cond.value is not False else ''}NULL"
    if op in ("eq", "contains", "ne"):
        member = member_of(cond.value)
        return f"NOT COALESCE({member}, FALSE)" if op == "ne" else member
    if op not in ("in", "nin"):
        raise ValueError(f"${op} is not supported on list field {cond.field!r}")
    members = [member_of(v) for v in values_of(cond)]
    if not members:
        return "FALSE" if op == "in" else "TRUE"
    any_member = members[0] if len(members) == 1 else "(" + " OR ".join(members) + ")"
    return any_member if op == "in" else f"NOT COALESCE({any_member}, FALSE)"


def values_of(cond: Condition) -> list[Any]:
    """The list operand of ``$in`` / ``$nin`` (ValueError for anything else)."""
    if not isinstance(cond.value, (list, tuple, set, frozenset)):
        raise ValueError(f"${cond.op} expects a list of values for field {cond.field!r}, got {cond.value!r}")
    return list(cond.value)


def json_path(field: str) -> str:
    """The quoted JSONPath of a top-level key (field names are ``[A-Za-z0-9_.-]``, so ``.`` is no path step)."""
    return quote(f'$["{field}"]')


def quote(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def fits(value: Any, kind: str) -> bool:
    """Whether a filter value can be compared with stored values of type ``kind`` (no conversion between types)."""
    value = plain_value(value)
    if isinstance(value, bool):
        return kind == "bool"
    if isinstance(value, (int, float)):
        return kind in ("int", "float", "list")
    return isinstance(value, (str, date, datetime)) and kind in ("str", "list")


def literal(value: Any, kind: str, field: str) -> str:
    """Validate ``value`` against the field type ``kind`` and render it as SQL."""
    value = plain_value(value)  # numpy / pandas scalars are their Python values
    if isinstance(value, (date, datetime)):  # stored as ISO 8601 strings (smart_retrievers.validation)
        value = value.isoformat()
    if not fits(value, kind):
        raise ValueError(
            f"Filter value {reprlib.repr(value)} ({type(value).__name__}) does not fit the type {kind!r} of field "
            f"{field!r}: the field holds {kind} values and filters do not convert between types; "
            f"pass a{'n' if kind[0] in 'aeiou' else ''} {kind} value"
        )
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
        return repr(int(value))
    if isinstance(value, float) and math.isfinite(value):
        return repr(float(value))
    raise ValueError(f"Filter value {value!r} for field {field!r} is out of range or not finite")
