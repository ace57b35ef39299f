"""The filter model: ``Condition``, ``And``, ``Or``, ``Not``, parsed from Mongo/LangChain/Chroma-style dicts.

What a filter means is told in :mod:`smart_retrievers.filters`; :mod:`.sql` renders it.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..validation import RESERVED_KEYS

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
RESERVED_FIELDS = RESERVED_KEYS
"""Internal metadata keys (``_llama_index``...): never a user field, never filtered on, never shown by
another framework (keys under ``smart_retrievers:`` are internal too; filters refuse them by their ``:``)."""
MAX_FILTER_DEPTH = 64
"""Deepest nesting of logical operators ($and/$or/$not) a filter may have."""

__all__ = [
    "COLUMNS",
    "DEFAULT_TARGET",
    "FIELD_ALIASES",
    "MAX_FILTER_DEPTH",
    "OPERATORS",
    "RESERVED_FIELDS",
    "And",
    "Condition",
    "Filter",
    "Not",
    "Or",
    "SqlTarget",
    "check_depth",
    "column_in",
    "parse_filter",
]

_FIELD_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


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


def check_depth(depth: int) -> None:
    """Raise ValueError past :data:`MAX_FILTER_DEPTH` levels of logical operators."""
    if depth > MAX_FILTER_DEPTH:
        raise ValueError(f"filter is nested deeper than {MAX_FILTER_DEPTH} levels of $and/$or/$not; flatten it")


def _supported_operators() -> str:
    return ", ".join([*LOGICAL_OPERATORS, *("$" + op for op in OPERATORS)])


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
    check_depth(depth)
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
