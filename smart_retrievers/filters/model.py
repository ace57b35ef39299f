"""Backend-neutral metadata filters and their rendering to LanceDB SQL.

LlamaIndex ``MetadataFilters`` and LangChain filter dicts are translated into
the small model below (``Condition``, ``And``, ``Or``, ``Not``); ``to_sql``
renders it as a predicate over the JSON ``metadata`` column (plus the real
``id`` / ``ref_id`` columns) for ``table.search().where(...)``, or, for a table upgraded
in place (:class:`SqlTarget`), over its struct metadata column and its own id columns.

Semantics:

* A row whose field is missing or JSON ``null`` never matches ``eq``, ``gt``,
  ``gte``, ``lt``, ``lte``, ``in``, ``contains`` or ``text_match``, and always
  matches ``ne`` and ``nin`` ("missing counts as not equal").
* ``Not`` is the exact complement of its child: ``Not(c)`` matches every row
  that ``c`` does not match, including rows missing the field.
* ``is_empty`` with value ``True`` (or ``None``) matches a missing or ``null``
  field, an empty string for ``str`` fields and an empty list for ``list``
  fields; with ``False`` it matches every other row.
* ``list`` fields: ``eq``/``contains`` mean "the list has this element",
  ``ne`` "does not have it", ``in`` "has any of these", ``nin`` "has none of
  these". Elements are compared by their JSON text, so ``2`` matches ``2``
  and ``"2"`` but not ``2.0`` (in an upgraded table's struct metadata, lists are
  typed and compared by value).
* ``contains`` on a ``str`` field and ``text_match`` are case-sensitive
  substring matches; ``%``, ``_`` and ``\\`` in the value are literal.
* Nesting of ``$and`` / ``$or`` / ``$not`` (and of ``And`` / ``Or`` / ``Not`` objects) is
  limited to ``MAX_FILTER_DEPTH`` (64) levels; a deeper filter raises ``ValueError``.
* Field names are literal top-level keys (``"a.b"`` is the key ``a.b``, not a
  nested path) made of ``[A-Za-z0-9_.-]``. **A metadata field comes first**: a key
  that some row has held as metadata is that metadata field; otherwise ``id`` and
  ``ref_id`` mean the table columns, ``doc_id``, ``ref_doc_id`` and ``document_id``
  (LlamaIndex's names) mean ``ref_id``, and ``node_id`` means ``id``
  (:data:`FIELD_ALIASES`). So ``{"id": "a"}`` filters a metadata ``id`` where the
  documents carry one (as Chroma, Qdrant and LlamaIndex's simple store do), and the
  row id otherwise; :func:`column_in` always means the column.
* An empty list matches nothing: ``$in: []`` matches no row, ``$nin: []`` every row
  (so an empty ``doc_ids`` / ``node_ids`` / ``ids`` scope is no row, never "no scope").
* A field that no row holds (never written, or only ``null`` so far, on an empty
  table too) is missing on every row, so the rules above apply: ``eq``, ``gt``...,
  ``in``, ``contains``, ``like`` and ``exists`` match no row, ``ne`` and ``nin``
  every row. This is what Chroma and LanceDB give for an unknown key: no match,
  not an error. A field that no row has ever held (not in the field map) also gives an
  :class:`UnknownFieldWarning`, once per field and process: usually a misspelt key.
  The key :data:`LLAMA_INDEX_KEY` is internal (LlamaIndex node data)
  and cannot be filtered on.
* ``exists``: ``True`` matches rows where the field is set to a non-null value,
  ``False`` rows where it is missing or ``null``.
* ``like`` / ``ilike``: a SQL ``LIKE`` pattern (``%`` any run of characters, ``_``
  one character, ``\\`` escapes them), case-sensitive / case-insensitive, on a
  ``str`` field. ``text_match_insensitive`` is a case-insensitive substring match
  (LlamaIndex's ``TEXT_MATCH_INSENSITIVE``).
* Values are never coerced between types: comparing a ``str`` value with a
  numeric field (or the reverse) raises ``ValueError`` naming the field and both
  types. ``date`` / ``datetime`` values are compared as their ISO 8601 strings,
  which is how metadata stores them (so ``datetime`` values compare in time order
  only when they share a format and time zone).
"""

from __future__ import annotations

import json
import math
import re
import reprlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

FieldTypes = Mapping[str, str]

OPERATORS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "nin",
    "contains",
    "text_match",
    "text_match_insensitive",
    "like",
    "ilike",
    "is_empty",
    "exists",
)
LOGICAL_OPERATORS = ("$and", "$or", "$not")
COLUMNS = ("id", "ref_id")
FIELD_ALIASES = {"doc_id": "ref_id", "ref_doc_id": "ref_id", "document_id": "ref_id", "node_id": "id"}
"""LlamaIndex names of the ``ref_id`` / ``id`` columns, used when the table has no metadata field of that name."""
LLAMA_INDEX_KEY = "_llama_index"
"""The metadata key under which the LlamaIndex integration keeps what rebuilds a node (its one spelling)."""
RESERVED_FIELDS = frozenset({LLAMA_INDEX_KEY})
"""Internal metadata keys: never a user field, never filtered on, never shown by another framework."""


@dataclass(frozen=True)
class SqlTarget:
    """Where a table keeps what filters read.

    ``metadata``: the metadata column; ``struct`` False means LanceDB JSON (a SMART table),
    True an Arrow struct with one child per field (the layout of LanceDB's LlamaIndex and
    LangChain stores). ``columns``: the physical column of ``id`` and ``ref_id`` (None: the
    table has none, so every row misses it).
    """

    metadata: str = "metadata"
    struct: bool = False
    columns: Mapping[str, str | None] = field(default_factory=lambda: {c: c for c in COLUMNS})


DEFAULT_TARGET = SqlTarget()
"""A SMART table: JSON ``metadata``, ``id`` and ``ref_id`` columns."""

_FIELD_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_COMPARISONS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_GETTERS = {"int": "json_get_int", "float": "json_get_float", "str": "json_get_string", "bool": "json_get_bool"}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_LIKE_ESCAPES = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})
MAX_FILTER_DEPTH = 64
"""Deepest nesting of logical operators ($and/$or/$not) a filter may have."""


def _check_depth(depth: int) -> None:
    if depth > MAX_FILTER_DEPTH:
        raise ValueError(f"filter is nested deeper than {MAX_FILTER_DEPTH} levels of $and/$or/$not; flatten it")


def _supported_operators() -> str:
    return ", ".join([*LOGICAL_OPERATORS, *("$" + op for op in OPERATORS)])


class UnknownFieldWarning(UserWarning):
    """A filter names a field that no row of the table has ever held (often a misspelt key)."""


_WARNED_FIELDS: set[str] = set()


@dataclass(frozen=True)
class Condition:
    """``field op value``; ``op`` is one of ``OPERATORS``.

    ``column`` True: ``field`` (``id`` or ``ref_id``) is the table column even where a metadata
    field has that name (see :func:`column_in`).
    """

    field: str
    op: str
    value: Any = None
    column: bool = False

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"Unknown filter operator {self.op!r}; supported operators: {', '.join(OPERATORS)}")
        if not isinstance(self.field, str) or not _FIELD_NAME.fullmatch(self.field):
            raise ValueError(f"Invalid filter field name {self.field!r}; allowed characters are [A-Za-z0-9_.-]")
        if self.column and self.field not in COLUMNS:
            raise ValueError(f"column=True needs a column field ({', '.join(COLUMNS)}), got {self.field!r}")


def column_in(column: str, values: Any) -> Condition:
    """``column`` (``"id"`` or ``"ref_id"``, the table column even where metadata has a field of that name)
    is one of ``values``; an empty list matches no row."""
    return Condition(column, "in", list(values), column=True)


@dataclass(frozen=True)
class And:
    """Matches rows matching every child (no children: every row)."""

    children: tuple[Filter, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", tuple(self.children))


@dataclass(frozen=True)
class Or:
    """Matches rows matching at least one child (no children: no row)."""

    children: tuple[Filter, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", tuple(self.children))


@dataclass(frozen=True)
class Not:
    """Matches exactly the rows its child does not match."""

    child: Filter


Filter = Condition | And | Or | Not
_FILTER_CLASSES = (Condition, And, Or, Not)


def parse_filter(spec: Mapping[str, Any] | Filter | None) -> Filter | None:
    """Parse a Mongo/LangChain/Chroma-style filter dict; ``None`` or ``{}`` give ``None``.

    ``{"year": 2020}`` is ``eq``; ``{"year": {"$gte": 2020, "$lt": 2024}}`` and
    several top-level keys are ANDed; ``$and``/``$or`` take a list of dicts and
    ``$not`` one dict. Field operators are ``$`` + any of ``OPERATORS``.
    A ``Filter`` object is returned unchanged.
    """
    if spec is None or isinstance(spec, _FILTER_CLASSES):
        return spec
    if isinstance(spec, Mapping) and not spec:
        return None
    return _parse_mapping(spec, 0)


def _parse_mapping(spec: Any, depth: int) -> Filter:
    _check_depth(depth)
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"Expected a non-empty filter dict, got {reprlib.repr(spec)}")
    return _all([_parse_entry(key, value, depth) for key, value in spec.items()])


def _all(parts: list[Filter]) -> Filter:
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _parse_entry(key: Any, value: Any, depth: int) -> Filter:
    if not isinstance(key, str):
        raise ValueError(f"Filter keys must be strings, got {key!r}")
    if key in ("$and", "$or"):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} expects a list of filter dicts, got {value!r}")
        children = tuple(_parse_mapping(item, depth + 1) for item in value)
        return And(children) if key == "$and" else Or(children)
    if key == "$not":
        return Not(_parse_mapping(value, depth + 1))
    if key.startswith("$"):
        raise ValueError(f"Unknown filter operator {key!r}; supported operators: {_supported_operators()}")
    if not isinstance(value, Mapping):
        return Condition(key, "eq", value)
    if not value:
        raise ValueError(f"Empty operator dict for filter field {key!r}")
    return _all([_parse_condition(key, op, operand) for op, operand in value.items()])


def _parse_condition(field: str, op: Any, value: Any) -> Condition:
    if not (isinstance(op, str) and op.startswith("$") and op[1:] in OPERATORS):
        raise ValueError(f"Unknown filter operator {op!r}; supported operators: {_supported_operators()}")
    return Condition(field, op[1:], value)


def to_sql(filter: Filter | None, field_types: FieldTypes, target: SqlTarget = DEFAULT_TARGET) -> str | None:
    """Render ``filter`` as a LanceDB SQL predicate (``None`` for no filter).

    ``field_types`` maps each known metadata field to ``"int"``, ``"float"``,
    ``"str"``, ``"bool"`` or ``"list"``; it picks the JSON accessor. Unknown
    fields, operators not valid for a field's type and values that do not fit
    it raise ``ValueError``. Every value is validated and quoted, never
    concatenated raw. ``target`` says how the table stores metadata and ids.
    """
    return None if filter is None else _render(filter, field_types, target, 0)


def _render(node: Filter, field_types: FieldTypes, target: SqlTarget, depth: int) -> str:
    _check_depth(depth)
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


def _field_type(cond: Condition, field_types: FieldTypes) -> str | None:
    """The field's type (``"str"`` for the id columns and their aliases); None: no row holds it."""
    field = cond.field
    if field in RESERVED_FIELDS:
        raise ValueError(f"{field!r} is an internal metadata key (LlamaIndex node data), not a filterable field")
    if _is_column(cond, field_types):
        return "str"
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
    if kind in (None, "null"):  # never written, or only null so far: missing on every row
        return None
    if kind not in (*_GETTERS, "list"):
        raise ValueError(f"Unsupported type {kind!r} for filter field {field!r}")
    return kind


_STRING_OPS = ("contains", "text_match", "text_match_insensitive", "like", "ilike")
_MATCH_MISSING = {"ne": True, "nin": True}
"""Operators a missing field matches (is_empty / exists depend on their value)."""


def _check_value(cond: Condition) -> None:
    """Type checks that need no field type (so they apply to unknown fields too)."""
    op, value = cond.op, cond.value
    if op in ("is_empty", "exists") and not isinstance(value, (bool, type(None))):
        raise ValueError(f"${op} expects True or False for field {cond.field!r}, got {value!r}")
    if op in ("like", "ilike", "text_match", "text_match_insensitive") and not isinstance(value, str):
        raise ValueError(f"${op} expects a string for field {cond.field!r}, got {value!r}")
    if op in ("in", "nin"):
        _values(cond)


def _render_missing(cond: Condition) -> str:
    """``cond`` on a field that no row holds (see the module notes)."""
    if cond.op == "is_empty":
        return "FALSE" if cond.value is False else "TRUE"
    if cond.op == "exists":
        return "TRUE" if cond.value is False else "FALSE"
    return "TRUE" if _MATCH_MISSING.get(cond.op) else "FALSE"


def _render_condition(cond: Condition, field_types: FieldTypes, target: SqlTarget) -> str:
    kind = _field_type(cond, field_types)
    _check_value(cond)
    is_column = _is_column(cond, field_types)
    column = target.columns.get(FIELD_ALIASES.get(cond.field, cond.field)) if is_column else None
    if kind is None or (is_column and column is None):
        return _render_missing(cond)
    if kind == "list":
        return _render_list(cond, target)
    if is_column:
        expr = column
    elif target.struct:
        expr = f"{target.metadata}[{_quote(cond.field)}]"
    else:
        expr = f"{_GETTERS[kind]}({target.metadata}, {_quote(cond.field)})"
    op, value = cond.op, cond.value
    if op == "is_empty":
        empty = value is not False
        if kind == "str":
            return f"COALESCE({expr}, '') {'=' if empty else '<>'} ''"
        return f"{expr} IS {'' if empty else 'NOT '}NULL"
    if op == "exists":
        return f"{expr} IS {'NOT ' if value is not False else ''}NULL"
    if op in _STRING_OPS:
        if kind != "str":
            raise ValueError(f"${op} needs a str or list field; {cond.field!r} holds {kind} values")
        if not isinstance(value, str):
            raise ValueError(f"${op} expects a string for field {cond.field!r}, got {value!r}")
        if op in ("like", "ilike"):
            return f"{expr} {op.upper()} {_quote(value)} ESCAPE '\\'"
        pattern = _quote("%" + value.translate(_LIKE_ESCAPES) + "%")
        if op == "text_match_insensitive":
            return f"lower({expr}) LIKE lower({pattern}) ESCAPE '\\'"
        return f"{expr} LIKE {pattern} ESCAPE '\\'"
    if kind == "bool" and op in ("gt", "gte", "lt", "lte"):
        raise ValueError(f"${op} is not supported on bool field {cond.field!r}")
    if op in _COMPARISONS:
        return f"{expr} {_COMPARISONS[op]} {_literal(value, kind, cond.field)}"
    if op == "ne":
        return f"({expr} IS NULL OR {expr} <> {_literal(value, kind, cond.field)})"
    items = ", ".join(_literal(item, kind, cond.field) for item in _values(cond))
    if op == "in":
        return f"{expr} IN ({items})" if items else "FALSE"
    return f"({expr} IS NULL OR {expr} NOT IN ({items}))" if items else "TRUE"


def _render_list(cond: Condition, target: SqlTarget) -> str:
    if target.struct:  # a typed Arrow list: compared by value
        column = f"{target.metadata}[{_quote(cond.field)}]"
        length = f"array_length({column})"

        def member_of(value: Any) -> str:
            return f"array_has({column}, {_literal(value, 'list', cond.field)})"
    else:  # JSON: compared by JSON text
        path = _quote(f'$["{cond.field}"]')
        length = f"json_array_length({target.metadata}, {path})"

        def member_of(value: Any) -> str:
            # the element's JSON text is compared: escape `"`, `\` and control characters as the JSON does
            escaped = json.dumps(value, ensure_ascii=False)[1:-1] if isinstance(value, str) else value
            return f"json_array_contains({target.metadata}, {path}, {_literal(escaped, 'list', cond.field)})"

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
    members = [member_of(v) for v in _values(cond)]
    if not members:
        return "FALSE" if op == "in" else "TRUE"
    any_member = members[0] if len(members) == 1 else "(" + " OR ".join(members) + ")"
    return any_member if op == "in" else f"NOT COALESCE({any_member}, FALSE)"


def _values(cond: Condition) -> list[Any]:
    if not isinstance(cond.value, (list, tuple, set, frozenset)):
        raise ValueError(f"${cond.op} expects a list of values for field {cond.field!r}, got {cond.value!r}")
    return list(cond.value)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _literal(value: Any, kind: str, field: str) -> str:
    """Validate ``value`` against the field type ``kind`` and render it as SQL."""
    if isinstance(value, (date, datetime)):  # stored as ISO 8601 strings (smart_retrievers.validation)
        value = value.isoformat()
    if kind == "bool" and isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if kind in ("str", "list") and isinstance(value, str):
        return _quote(value)
    if kind in ("int", "float", "list") and isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
            return repr(int(value))
        if isinstance(value, float) and math.isfinite(value):
            return repr(float(value))
        raise ValueError(f"Filter value {value!r} for field {field!r} is out of range or not finite")
    raise ValueError(
        f"Filter value {reprlib.repr(value)} ({type(value).__name__}) does not fit the type {kind!r} of field "
        f"{field!r}: the field holds {kind} values and filters do not convert between types; "
        f"pass a{'n' if kind[0] in 'aeiou' else ''} {kind} value"
    )
