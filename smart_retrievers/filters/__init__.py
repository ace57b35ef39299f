"""Backend-neutral metadata filters and their rendering to LanceDB SQL.

The model and its parsing live in :mod:`.model`, the rendering in :mod:`.sql` (one typed expression:
:mod:`.scalar`; a field whose type differs between rows: :mod:`.mixed`); every public name is here.

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
  only when they share a format and time zone). numpy and pandas scalars are their
  Python values.
* **A field whose type differs between rows** (``1``, ``2``, ``"3"``: the field map records
  ``"int|str"``) stays exact: a comparison matches the rows whose value has a type it can
  compare with (numbers with numbers, strings with strings, bools with bools; ``eq``,
  ``contains`` and ``in`` also find the element in rows holding a list) and no other row, so
  ``{"n": {"$gt": 1}}`` matches ``2`` but not ``"3"``, and ``{"n": "3"}`` matches ``"3"`` only.
  ``ne`` / ``nin`` match every other row (other types too). A value that fits none of the
  field's types raises ``ValueError``, as for a single-typed field.
"""

from __future__ import annotations

from ..validation import LLAMA_INDEX_KEY
from .model import (
    COLUMNS,
    DEFAULT_TARGET,
    FIELD_ALIASES,
    MAX_FILTER_DEPTH,
    OPERATORS,
    RESERVED_FIELDS,
    And,
    Condition,
    FieldTypes,
    Filter,
    Not,
    Or,
    SqlTarget,
    column_in,
    parse_filter,
)
from .sql import UnknownFieldWarning, field_kinds, to_sql

__all__ = [
    "COLUMNS",
    "DEFAULT_TARGET",
    "FIELD_ALIASES",
    "LLAMA_INDEX_KEY",
    "MAX_FILTER_DEPTH",
    "OPERATORS",
    "RESERVED_FIELDS",
    "And",
    "Condition",
    "FieldTypes",
    "Filter",
    "Not",
    "Or",
    "SqlTarget",
    "UnknownFieldWarning",
    "column_in",
    "field_kinds",
    "parse_filter",
    "to_sql",
]
