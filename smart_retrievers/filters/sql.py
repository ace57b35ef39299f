"""Rendering a filter to a LanceDB SQL predicate (``to_sql``): logical operators, the field each condition
reads (a metadata field first, else the ``id`` / ``ref_id`` column), and fields no row holds."""

from __future__ import annotations

import reprlib
import warnings

from .mixed import render_mixed
from .model import (
    COLUMNS,
    DEFAULT_TARGET,
    FIELD_ALIASES,
    RESERVED_FIELDS,
    And,
    Condition,
    FieldTypes,
    Filter,
    Not,
    Or,
    SqlTarget,
    check_depth,
)
from .scalar import GETTERS, quote, render_list, render_scalar, values_of

__all__ = ["UnknownFieldWarning", "field_kinds", "to_sql"]


class UnknownFieldWarning(UserWarning):
    """A filter names a field that no row of the table has ever held (often a misspelt key)."""


_WARNED_FIELDS: set[str] = set()
_KINDS = (*GETTERS, "list", "dict")
_MATCH_MISSING = {"ne": True, "nin": True}
"""Operators a missing field matches (is_empty / exists depend on their value)."""


def to_sql(filter: Filter | None, field_types: FieldTypes, target: SqlTarget = DEFAULT_TARGET) -> str | None:
    """Render ``filter`` as a LanceDB SQL predicate (``None`` for no filter).

    ``field_types`` maps each known metadata field to ``"int"``, ``"float"``, ``"str"``,
    ``"bool"`` or ``"list"``, or to a mix of these such as ``"int|str"`` (rows differ); it picks
    the JSON accessor. Operators not valid for a field's type and values that fit none of its
    types raise ``ValueError``. Every value is validated and quoted, never concatenated raw.
    ``target`` says how the table stores metadata and ids.
    """
    return None if filter is None else _render(filter, field_types, target, 0)


def field_kinds(kind: str) -> tuple[str, ...]:
    """The types of a field map entry: ``"int|str"`` -> ``("int", "str")``; ``"null"`` (only nulls so far) -> ().

    >>> field_kinds("int|str"), field_kinds("float"), field_kinds("null")
    (('int', 'str'), ('float',), ())
    """
    return tuple(k for k in kind.split("|") if k != "null")


def _render(node: Filter, field_types: FieldTypes, target: SqlTarget, depth: int) -> str:
    check_depth(depth)
    if isinstance(node, Condition):
        return _render_condition(node, field_types, target)
    if isinstance(node, (And, Or)):
        if not node.children:
            return "TRUE" if isinstance(node, And) else "FALSE"
        parts = [_render(child, field_types, target, depth + 1) for child in node.children]
        joiner = " AND " if isinstance(node, And) else " OR "
        return parts[0] if len(parts) == 1 else joiner.join(f"({part})" for part in parts)
    if isinstance(node, Not):
        # COALESCE turns SQL NULL ("unknown") into "not matched", making NOT a true complement.
        return f"NOT COALESCE(({_render(node.child, field_types, target, depth + 1)}), FALSE)"
    raise TypeError(f"Not a filter: {reprlib.repr(node)}")


def _is_column(cond: Condition, field_types: FieldTypes) -> bool:
    """Whether ``cond`` reads the ``id`` / ``ref_id`` column: a metadata field of that name comes first."""
    return cond.column or ((cond.field in COLUMNS or cond.field in FIELD_ALIASES) and cond.field not in field_types)


def _field_kinds(cond: Condition, field_types: FieldTypes) -> tuple[str, ...]:
    """The types the field holds (``("str",)`` for the id columns and their aliases); (): no row holds it."""
    field = cond.field
    if field in RESERVED_FIELDS:
        raise ValueError(f"{field!r} is an internal metadata key (LlamaIndex node data), not a filterable field")
    if _is_column(cond, field_types):
        return ("str",)
    kind = field_types.get(field)
    if kind is None and field not in _WARNED_FIELDS:
        _WARNED_FIELDS.add(field)
        known = ", ".join(sorted(k for k in field_types if k not in RESERVED_FIELDS)) or "none"
        warnings.warn(
            f"filter field {field!r} is not a metadata field of any row, so it matches no row "
            f"(only $ne / $nin / $exists: false match); known fields: {known}",
            UnknownFieldWarning,
            stacklevel=4,
        )
    kinds = field_kinds(kind or "null")  # never written, or only null so far: missing on every row
    unknown = next((k for k in kinds if k not in _KINDS), None)
    if unknown is not None or kinds == ("dict",):
        raise ValueError(f"Unsupported type {kind!r} for filter field {field!r}")
    return kinds


def _check_value(cond: Condition) -> None:
    """Type checks that need no field type (so they apply to unknown fields too)."""
    op, value = cond.op, cond.value
    if op in ("is_empty", "exists") and not isinstance(value, (bool, type(None))):
        raise ValueError(f"${op} expects True or False for field {cond.field!r}, got {value!r}")
    if op in ("like", "ilike", "text_match", "text_match_insensitive") and not isinstance(value, str):
        raise ValueError(f"${op} expects a string for field {cond.field!r}, got {value!r}")
    if op in ("in", "nin"):
        values_of(cond)


def _render_missing(cond: Condition) -> str:
    """``cond`` on a field that no row holds (see the package notes)."""
    if cond.op == "is_empty":
        return "FALSE" if cond.value is False else "TRUE"
    if cond.op == "exists":
        return "TRUE" if cond.value is False else "FALSE"
    return "TRUE" if _MATCH_MISSING.get(cond.op) else "FALSE"


def _render_condition(cond: Condition, field_types: FieldTypes, target: SqlTarget) -> str:
    kinds = _field_kinds(cond, field_types)
    _check_value(cond)
    is_column = _is_column(cond, field_types)
    column = target.columns.get(FIELD_ALIASES.get(cond.field, cond.field)) if is_column else None
    if not kinds or (is_column and column is None):
        return _render_missing(cond)
    if len(kinds) > 1:
        return render_mixed(cond, kinds, target)
    kind = kinds[0]
    if kind == "list":
        return render_list(cond, target)
    if column is not None:  # is_column (a column field without its column returned above)
        expr = column
    elif target.struct:
        expr = f"{target.metadata}[{quote(cond.field)}]"
    else:
        expr = f"{GETTERS[kind]}({target.metadata}, {quote(cond.field)})"
    return render_scalar(cond, kind, expr)
