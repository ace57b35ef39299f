"""Input checks shared by the write, read and delete paths: clear errors before anything is encoded or written.

Every check names the input and, where there is one, its position and id:

* :func:`id_list`: ids / ref_ids given as a sequence of non-empty strings. A single string is
  refused (it is never iterated into characters); pass ``["s1"]`` for one id.
* :func:`check_count`: a count option (k, candidates, batch_size...) is an ``int >= 1``.
* :func:`aligned`: a per-item argument (metadatas, ref_ids, uris...) as a list of length ``n``.
* :func:`check_text`: a text (or query) is a ``str`` holding valid Unicode (no lone surrogate).
* :func:`check_metadata`: one item's metadata is a mapping of JSON values: ``None``, ``bool``,
  ``int`` within int64, finite ``float``, ``str`` (valid Unicode), lists and dicts of these,
  nested at most :data:`MAX_METADATA_DEPTH` levels. ``date`` / ``datetime`` values (LangChain
  loaders produce them) are accepted and stored as ISO 8601 strings (:func:`json_default`), so
  they come back as strings and filter as strings. numpy and pandas scalars (``np.int64``,
  ``np.float32``, ``np.bool_``, ``pd.Timestamp``...) are their Python values
  (:func:`plain_value`); ``pd.NaT`` is ``None``. Keys are not :func:`reserved <check_metadata_key>`.
* :func:`ordered`: a per-item argument is not a ``set`` (its order is arbitrary, so item i
  would not meet its id, metadata...).
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any

MAX_METADATA_DEPTH = 32
"""Deepest nesting of lists/dicts inside one metadata value (the top-level mapping is level 0)."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

LLAMA_INDEX_KEY = "_llama_index"
"""The metadata key under which the LlamaIndex integration keeps what rebuilds a node (its one spelling)."""
INTERNAL_PREFIX = "smart_retrievers:"
"""Metadata keys starting with this are the package's own (e.g. the stored key order)."""
RESERVED_KEYS = frozenset({LLAMA_INDEX_KEY})
"""Internal metadata keys besides those under :data:`INTERNAL_PREFIX`: never a user field, never filtered on,
never shown by another framework."""
_ALLOWED_KEYS: ContextVar[frozenset[str]] = ContextVar("smart_retrievers_internal_keys", default=frozenset())

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlevel = 3


def check_count(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is an int >= 1 (not a bool, float or str); the message names ``name``.

    >>> check_count("k", 0)
    Traceback (most recent call last):
    ValueError: k must be an int >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def short_repr(value: Any) -> str:
    """A bounded ``repr`` for error messages (safe on huge or deeply nested values)."""
    return _short.repr(value)


def _where(position: int | None, item_id: Any, what: str) -> str:
    if position is None:
        return what
    return f"{what} {position}" + (f" (id {item_id!r})" if item_id is not None else "")


def is_reserved_key(key: str) -> bool:
    """Whether ``key`` is one of the package's internal metadata keys.

    >>> is_reserved_key("_llama_index"), is_reserved_key("smart_retrievers:key_order"), is_reserved_key("year")
    (True, True, False)
    """
    return key in RESERVED_KEYS or key.startswith(INTERNAL_PREFIX)


@contextmanager
def internal_keys(keys: Collection[str]) -> Iterator[None]:
    """Let the writes made inside the block (in this thread or task) carry the internal metadata ``keys``.

    Only the package's own integrations use it (the LlamaIndex stores write :data:`LLAMA_INDEX_KEY`);
    everywhere else a reserved key is refused (:func:`check_metadata_key`).
    """
    token = _ALLOWED_KEYS.set(_ALLOWED_KEYS.get() | frozenset(keys))
    try:
        yield
    finally:
        _ALLOWED_KEYS.reset(token)


def check_metadata_key(key: Any, where: str) -> None:
    """Raise ValueError unless ``key`` is a non-empty str of valid Unicode that is not a reserved key."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where}: metadata keys must be non-empty strings, got {short_repr(key)}")
    check_unicode(key, f"{where} key {short_repr(key)}")
    if is_reserved_key(key) and key not in _ALLOWED_KEYS.get():
        raise ValueError(
            f"{where}: metadata key {key!r} is reserved for smart-retrievers' own data "
            f"({'LlamaIndex node data' if key == LLAMA_INDEX_KEY else 'internal bookkeeping'}); rename or drop it"
        )


def ordered(**values: Any) -> None:
    """Raise TypeError for an argument (by name) that is a set: its order is arbitrary, so items would not line up.

    >>> ordered(ids={"a", "b"})
    Traceback (most recent call last):
    TypeError: ids is a set, whose order is arbitrary; pass a list (e.g. sorted(ids))
    """
    for name, value in values.items():
        if isinstance(value, (set, frozenset)):
            raise TypeError(
                f"{name} is a {type(value).__name__}, whose order is arbitrary; pass a list (e.g. sorted({name}))"
            )


def plain_value(value: Any) -> Any:
    """A numpy or pandas scalar as the Python value it holds (``pd.NaT`` / ``np.datetime64("NaT")``: None).

    >>> import numpy as np
    >>> plain_value(np.int64(3)), plain_value(np.bool_(True)), plain_value("x")
    (3, True, 'x')
    """
    kind = type(value)
    if kind.__name__ == "NaTType" and kind.__module__.startswith("pandas"):
        return None
    if kind.__module__ == "numpy" and hasattr(value, "item"):
        if kind.__name__ == "datetime64":  # item() of a nanosecond datetime64 is an int: take microseconds
            value = value.astype("datetime64[us]")
        return value.item()
    return value


def id_list(values: Any, name: str = "ids", *, allow_none: bool = False) -> list[Any]:
    """``values`` as a list of non-empty id strings (``None`` entries too when ``allow_none``).

    Raises:
        TypeError: ``values`` is a single string/bytes, a mapping or not iterable, or an entry is
            not a str (naming its position).
        ValueError: an entry is an empty string or not valid Unicode (naming its position).
    """
    if isinstance(values, (str, bytes)):
        raise TypeError(
            f"{name} must be a sequence of ids, not a single {type(values).__name__} {short_repr(values)}; "
            f"pass [{short_repr(values)}] for one id"
        )
    if isinstance(values, Mapping) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of ids, got {type(values).__name__}")
    values = list(values)
    for i, value in enumerate(values):
        if value is None and allow_none:
            continue
        if not isinstance(value, str):
            raise TypeError(f"{name}[{i}] is {type(value).__name__} {short_repr(value)}, not str")
        if not value:
            raise ValueError(f"{name}[{i}] is an empty string; ids must be non-empty strings")
        check_unicode(value, f"{name}[{i}]")
    return values


def aligned(name: str, n: int, values: Any) -> list[Any]:
    """A per-item argument as a list of ``n`` entries (``None``: ``n`` Nones).

    Raises:
        TypeError: a single string/bytes or a mapping where one entry per item is expected.
        ValueError: the length is not ``n``.
    """
    if values is None:
        return [None] * n
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise TypeError(
            f"{name} must be a sequence with one entry per item, not a single {type(values).__name__} "
            f"{short_repr(values)}"
        )
    values = list(values)
    if len(values) != n:
        raise ValueError(f"got {n} items but {len(values)} {name}")
    return values


def check_unicode(text: str, where: str) -> None:
    """Raise ValueError if ``text`` holds a lone surrogate (it cannot be encoded as UTF-8)."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{where} holds a lone surrogate {text[exc.start]!r} at character {exc.start}; "
            "texts must be valid Unicode (clean it, e.g. with .encode('utf-8', 'replace').decode())"
        ) from None


def check_text(text: Any, position: int | None = None, item_id: Any = None, *, what: str = "text") -> str:
    """``text`` checked to be a str of valid Unicode; errors name ``what``, its position and id."""
    where = _where(position, item_id, what)
    if not isinstance(text, str):
        raise TypeError(f"{where} is {type(text).__name__}, not str")
    check_unicode(text, where)
    return text


def check_metadata(metadata: Any, position: int | None = None, item_id: Any = None) -> dict[str, Any]:
    """One item's metadata (None: ``{}``) as a dict, every value checked to be storable JSON.

    Raises:
        TypeError: not a mapping, or a value of a non-JSON type (set, bytes, a custom object...).
        ValueError: a key that is not a non-empty string or is reserved (:func:`check_metadata_key`),
            an int outside int64, a NaN or infinite float, a string with a lone surrogate, a
            field's list holding lists or dicts, or nesting deeper than :data:`MAX_METADATA_DEPTH`.
    """
    where = _where(position, item_id, "metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(
            f"{where} is {type(metadata).__name__} {short_repr(metadata)}; each metadata must be a mapping (or None)"
        )
    for key, value in metadata.items():
        check_metadata_key(key, where)
        check_metadata_value(value, f"{where} field {key!r}")
        if isinstance(value, (list, tuple)) and any(isinstance(item, (dict, list, tuple)) for item in value):
            raise ValueError(f"{where} field {key!r}: metadata lists may hold only scalars (filters test elements)")
    return dict(metadata)


def _child(where: str, step: str, depth: int) -> str:
    """The path of a nested value for messages: the first levels in full, then ``[...]``."""
    if depth < 8:
        return where + step
    return where if where.endswith("[...]") else where + "[...]"


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for metadata: ``date`` / ``datetime`` as ISO 8601 strings, numpy and pandas
    scalars as their Python values (:func:`plain_value`)."""
    plain = plain_value(value)
    if isinstance(plain, (date, datetime)):
        return plain.isoformat()
    if plain is not value:
        return plain
    raise TypeError(f"{type(value).__name__} value {short_repr(value)} is not JSON")


def check_metadata_value(value: Any, where: str, depth: int = 1) -> None:
    """Raise unless ``value`` is storable JSON (see :func:`check_metadata`); ``where`` names it in errors."""
    value = plain_value(value)
    if isinstance(value, (date, datetime)):  # stored as its ISO 8601 string (json_default)
        return
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str):
            check_unicode(value, where)
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"{where}: integer {short_repr(value)} is outside int64 (filters could not compare it)")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite number")
        return
    if isinstance(value, (list, tuple, dict)):
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"{where}: metadata is nested deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"{where}: metadata keys must be strings, got {short_repr(key)}")
                check_unicode(key, f"{where} key {short_repr(key)}")
                check_metadata_value(item, _child(where, f"[{short_repr(key)}]", depth), depth + 1)
        else:
            for i, item in enumerate(value):
                check_metadata_value(item, _child(where, f"[{i}]", depth), depth + 1)
        return
    raise TypeError(
        f"{where}: {type(value).__name__} value {short_repr(value)} is not JSON; "
        "metadata values must be str, int, float, bool, None, date/datetime (stored as ISO strings), "
        "numpy / pandas scalars (stored as their Python values), or lists/dicts of these"
    )


def corpus_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """One corpus row (a BEIR ``_id``/``title``/``text`` object, or ``id``/``text``/``metadata``)
    as ``{id, text, metadata}``; TypeError/ValueError name the field at fault.

    The text is ``"{title} {text}"`` (BEIR's convention); an integer id becomes a string.
    """
    row_id = row.get("id", row.get("_id"))
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)) or row_id == "":
        raise ValueError(f"each line needs an id (or _id) that is a non-empty string or an integer, got {row_id!r}")
    parts = []
    for name in ("title", "text"):
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            raise TypeError(f'"{name}" must be a string, got {type(value).__name__} {value!r}')
        parts.append(check_text(value or "", what=f'"{name}"'))
    text = " ".join(p for p in parts if p).strip()
    if not text:
        raise ValueError("each line needs an id (or _id) and a non-empty text")
    return {"id": str(row_id), "text": text, "metadata": check_metadata(row.get("metadata"))}
