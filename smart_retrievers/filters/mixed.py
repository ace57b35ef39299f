"""SQL for a metadata field whose values differ in type between rows (a field map entry like ``"int|str"``).

Each comparison reads only the rows whose JSON value has a type it can compare with. LanceDB's typed JSON
getters (``json_get_int``...) fail on a whole batch when one row holds another type, so each getter is
given a per-row key: the field's own name on rows of its type, and a reserved key no row holds
(``smart_retrievers:<field>``) on the others, which gives NULL. A row's type is read from the first
character of its JSON text (``json_extract``): ``"`` a string, ``t`` / ``f`` a bool, ``-`` or a digit a
number. Lists are tested with ``json_array_contains``, which is false on other types.
"""

from __future__ import annotations

from typing import Any

from ..validation import INTERNAL_PREFIX
from .model import Condition, SqlTarget
from .scalar import GETTERS, STRING_OPS, fits, json_path, list_member, quote, render_scalar, values_of

_FIRST_CHARACTER = {"str": '"', "bool": "[tf]", "int": "[-0-9]", "float": "[-0-9]"}
"""The first character of the JSON text of a value of each scalar type (a regex class)."""
_NEGATIONS = {"ne": "eq", "nin": "in"}
_POSITIVE = ("eq", "gt", "gte", "lt", "lte", "in", *STRING_OPS)


def render_mixed(cond: Condition, kinds: tuple[str, ...], target: SqlTarget) -> str:
    """``cond`` on a JSON metadata field holding values of several ``kinds`` (see the module notes)."""
    if target.struct:
        raise ValueError(f"field {cond.field!r} holds {'|'.join(kinds)} values, which a typed struct cannot hold")
    text = f"json_extract({target.metadata}, {json_path(cond.field)})"
    op = cond.op
    if op == "is_empty":
        empty = f"({text} IS NULL OR {text} IN ('null', '\"\"', '[]'))"
        return f"NOT {empty}" if cond.value is False else empty
    if op == "exists":
        present = f"({text} IS NOT NULL AND {text} <> 'null')"
        return f"NOT {present}" if cond.value is False else present
    if op in _NEGATIONS:  # the exact complement: rows of other types, missing or null never equal the value
        positive = Condition(cond.field, _NEGATIONS[op], cond.value, cond.column)
        return f"NOT COALESCE(({_render_positive(positive, kinds, target, text)}), FALSE)"
    return _render_positive(cond, kinds, target, text)


def _render_positive(cond: Condition, kinds: tuple[str, ...], target: SqlTarget, text: str) -> str:
    values = values_of(cond) if cond.op == "in" else [cond.value]
    unfit = next((v for v in values if not any(_compares(cond.op, v, kind) for kind in kinds)), _NONE)
    if unfit is not _NONE:
        raise ValueError(
            f"Filter value {unfit!r} ({type(unfit).__name__}) cannot be compared by ${cond.op} with field "
            f"{cond.field!r}, which holds {'|'.join(kinds)} values; filters do not convert between types"
        )
    numeric = "float" if "float" in kinds else "int"
    parts = []
    for kind in dict.fromkeys(numeric if k in ("int", "float") else k for k in kinds):
        fitting = [v for v in values if _compares(cond.op, v, kind)]
        if not fitting:
            continue
        if kind == "list":
            member_of = list_member(cond, target)
            parts += [member_of(v) for v in fitting]
            continue
        part = Condition(cond.field, cond.op, fitting if cond.op == "in" else cond.value, cond.column)
        parts.append(render_scalar(part, kind, _typed(kind, cond.field, target.metadata, text)))
    if not parts:
        return "FALSE"
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(f"({p})" for p in parts) + ")"


_NONE = object()


def _compares(op: str, value: Any, kind: str) -> bool:
    """Whether ``op`` compares ``value`` with stored values of type ``kind``."""
    if kind == "dict" or op not in _POSITIVE:
        return False
    if kind == "list":
        return op in ("eq", "in", "contains") and fits(value, kind)
    if op in STRING_OPS:
        return kind == "str" and isinstance(value, str)
    if kind == "bool" and op not in ("eq", "in"):
        return False
    return fits(value, kind)


def _typed(kind: str, field: str, metadata: str, text: str) -> str:
    """The field's value as ``kind`` on rows holding that type, NULL on the others (never an error)."""
    first = f"left({text}, 1)"
    other = (
        f"regexp_replace(regexp_replace({first}, '^{_FIRST_CHARACTER[kind]}$', ''), '^.$', {quote(INTERNAL_PREFIX)})"
    )
    return f"{GETTERS[kind]}({metadata}, concat({other}, {quote(field)}))"
