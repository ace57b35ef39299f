"""The table schema and what its metadata records: the encoder fingerprint, the codec reference, the
metadata fields and their types, the fusion weights, and the user's metadata key order."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import pyarrow as pa

from ..codec import TokenCodec
from ..validation import INTERNAL_PREFIX, check_metadata_key, check_metadata_value, plain_value
from .arrow import tokens_type
from .errors import FingerprintMismatchError
from .format import format_metadata
from .layout import LAYOUT_KEY, NATIVE, TableLayout, struct_field_types

FINGERPRINT_KEY = "smart_retrievers.fingerprint"
"""Schema metadata key of the encoder fingerprint (JSON)."""
CODEC_KEY = "smart_retrievers.codec"
"""Schema metadata key of a coded table's codec reference (:func:`save_codec`; older tables: the codec inline)."""
FIELDS_KEY = "smart_retrievers.fields"
"""Field metadata key of ``metadata``: the known metadata fields and their types (JSON)."""
WEIGHTS_KEY = "smart_retrievers.weights"
"""Field metadata of ``vector``: the default fusion weights saved by ``SmartIndex.calibrate(save=True)``."""
META_COLUMNS = ["id", "ref_id", "text", "image", "modality", "metadata"]
"""The columns a row's non-vector content comes back in."""
ORDER_KEY = INTERNAL_PREFIX + "key_order"
"""Internal key of a stored metadata JSON holding the user's key order.

LanceDB stores JSON as JSONB, which sorts object keys. LlamaIndex hashes ``str(metadata)``
(``node.hash``) and fusion (``QueryFusionRetriever``) matches nodes by hash, so the order the
user gave is recorded here when it is not already sorted, and restored on read
(:func:`restore_key_order`). The ``:`` keeps it out of the filterable field names, and the
prefix (:data:`~smart_retrievers.validation.INTERNAL_PREFIX`) is refused in users' metadata."""
FieldTypes = dict[str, str]


def token_dim_of(fingerprint: Mapping[str, Any]) -> int:
    """The token states' width an encoder fingerprint records (older fingerprints: the pooled ``dim``).

    >>> token_dim_of({"dim": 384}), token_dim_of({"dim": 384, "token_dim": 128})
    (384, 128)
    """
    return int(fingerprint.get("token_dim", fingerprint["dim"]))


def native_schema(
    fingerprint: Mapping[str, Any],
    codec: TokenCodec | None,
    codec_ref: str | None,
    field_types: FieldTypes | None = None,
) -> pa.Schema:
    """The schema of a table written by smart-retrievers; ``field_types`` go on the ``metadata`` field."""
    fields_meta = {FIELDS_KEY: json.dumps(field_types, sort_keys=True)} if field_types else None
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("ref_id", pa.string()),
            pa.field("text", pa.string()),
            pa.field("image", pa.string()),
            pa.field("modality", pa.string()),
            pa.field("metadata", pa.json_(pa.utf8()), metadata=fields_meta),
            pa.field("vector", pa.list_(pa.float32(), fingerprint["dim"])),
            pa.field("tokens", tokens_type(token_dim_of(fingerprint), codec)),
            pa.field("n_tokens", pa.int32()),
        ],
        metadata=schema_metadata(fingerprint, codec_ref if codec is not None else None),
    )


def schema_metadata(
    fingerprint: Mapping[str, Any], codec_ref: str | None, layout: TableLayout = NATIVE
) -> dict[str, str]:
    """The schema metadata recording an encoder ``fingerprint``, a codec reference and a non-native layout."""
    metadata = {FINGERPRINT_KEY: json.dumps(dict(fingerprint), sort_keys=True), **format_metadata()}
    if codec_ref is not None:
        metadata[CODEC_KEY] = codec_ref
    if not layout.native:
        metadata[LAYOUT_KEY] = layout.to_json()
    return metadata


def stored_fingerprint(schema: pa.Schema) -> dict[str, Any] | None:
    """The encoder fingerprint a table's schema records (None: not written or upgraded by smart-retrievers)."""
    raw = (schema.metadata or {}).get(FINGERPRINT_KEY.encode())
    return None if raw is None else json.loads(raw)


def stored_codec_ref(schema: pa.Schema) -> str | None:
    """The codec reference a table's schema records (None: float16 states)."""
    return (schema.metadata or {}).get(CODEC_KEY.encode(), b"").decode() or None


def describe_mismatch(stored: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """What differs between a table's fingerprint and an encoder's ("": they fit)."""
    diffs = [
        f"{k}: table={stored.get(k)!r} encoder={current.get(k)!r}"
        for k in sorted(set(stored) | set(current))
        # a key the stored fingerprint lacks was not recorded by the version that wrote it (max_length...)
        if k in stored and stored.get(k) != current.get(k) and k != "model"
    ]
    return "; ".join(diffs)


def check_fingerprint(schema: pa.Schema, fingerprint: Mapping[str, Any], where: str) -> None:
    """Raise :class:`FingerprintMismatchError` unless the table (named by ``where``) fits ``fingerprint``."""
    stored = stored_fingerprint(schema)
    if stored is None:
        raise FingerprintMismatchError(
            f"{where} was not written by smart-retrievers (no fingerprint); if it is a single-vector LanceDB "
            "table, SmartIndex.upgrade() (smart-retrievers upgrade) gives it token states in place"
        )
    if describe_mismatch(stored, fingerprint):
        raise FingerprintMismatchError(
            f"{where} was built with encoder {stored}, but this encoder is {dict(fingerprint)} "
            f"({describe_mismatch(stored, fingerprint)}). "
            "Open it with the same model, pooling, token policy, prompt and adapter, or use another table."
        )


def schema_field_types(schema: pa.Schema, layout: TableLayout) -> FieldTypes:
    """A table's filterable metadata fields and their types: the field map a native table records, or an
    upgraded table's struct children."""
    if not layout.native:
        if layout.metadata is None:
            return {}
        return struct_field_types(schema.field(layout.metadata).type, layout.hidden_keys)
    raw = (schema.field("metadata").metadata or {}).get(FIELDS_KEY.encode())
    return json.loads(raw) if raw else {}


FUSION_WEIGHTS = ("lambda_pool", "lambda_late", "lambda_lex")
"""The weights ``SmartIndex.calibrate(save=True)`` saves (tables saved before hybrid search have no ``lambda_lex``)."""


def stored_fusion_weights(schema: pa.Schema, layout: TableLayout) -> dict[str, float] | None:
    """The fusion weights saved on the table's vector field (name -> value, of :data:`FUSION_WEIGHTS`), or None."""
    raw = (schema.field(layout.vector).metadata or {}).get(WEIGHTS_KEY.encode())
    if not raw:
        return None
    saved = json.loads(raw)
    return {name: float(saved[name]) for name in FUSION_WEIGHTS if name in saved}


# ---- metadata field types ------------------------------------------------------------


def merge_field_types(
    known: Mapping[str, str], metadatas: Sequence[Mapping[str, Any]], ids: Sequence[Any] | None = None
) -> FieldTypes:
    """Union of metadata field types; int and float merge to float, other types are recorded as a mix.

    A field whose type differs between rows is recorded as its types joined by ``|`` in sorted
    order (``"int|str"``), which filters read exactly (:mod:`smart_retrievers.filters`). Errors
    (a reserved or non-string key, a value that is not storable JSON) name the row's position in
    ``metadatas`` and its id (``ids``).

    >>> merge_field_types({"year": "int"}, [{"year": 2.5, "tags": ["a"]}, {"year": "MMXX"}])
    {'year': 'float|str', 'tags': 'list'}
    """
    merged = dict(known)
    for i, meta in enumerate(metadatas):
        where = f"metadata {i}" + (f" (id {ids[i]!r})" if ids is not None else "")
        for key, value in meta.items():
            check_metadata_key(key, where)
            _widen(merged, key, _json_type(value, f"{where} field {key!r}"))
    return merged


def held_field_types(metadatas: Iterable[Mapping[str, Any]]) -> FieldTypes:
    """The field types of stored metadata dicts (read back, so no key checks: internal keys count too)."""
    merged: FieldTypes = {}
    for meta in metadatas:
        for key, value in meta.items():
            _widen(merged, key, _json_type(value, f"field {key!r}"))
    return merged


def widen_field_types(known: Mapping[str, str], types: Mapping[str, str]) -> FieldTypes:
    """``known`` widened to cover the field types ``types`` (same rules as :func:`merge_field_types`)."""
    merged = dict(known)
    for key, new in types.items():
        _widen(merged, key, new)
    return merged


def _widen(merged: FieldTypes, key: str, new: str) -> None:
    kinds = {k for k in (merged.get(key) or "null").split("|") + new.split("|") if k != "null"}
    if {"int", "float"} <= kinds:
        kinds.discard("int")
    merged[key] = "|".join(sorted(kinds)) or "null"


def _json_type(value: Any, where: str) -> str:
    check_metadata_value(value, where)  # int64 range, NaN/inf, JSON types and depth, nested too
    value = plain_value(value)  # numpy / pandas scalars: their Python values
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, (str, date)):  # date / datetime: stored as ISO 8601 strings
        return "str"
    if isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, (dict, list, tuple)):
                raise ValueError(f"{where}: metadata lists may hold only scalars")
        return "list"
    if value is None:
        return "null"
    return "dict"


# ---- the user's key order ----------------------------------------------------------------


def with_key_order(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """``metadata`` plus :data:`ORDER_KEY` when JSONB would reorder its keys (what a row stores).

    >>> with_key_order({"b": 1, "a": 2})
    {'b': 1, 'a': 2, 'smart_retrievers:key_order': [['b', 'a']]}
    >>> restore_key_order({"a": 2, "b": 1, ORDER_KEY: [["b", "a"]]})
    {'b': 1, 'a': 2}
    """
    order = _key_order(metadata)
    return metadata if order is None else {**metadata, ORDER_KEY: order}


def restore_key_order(metadata: dict[str, Any]) -> dict[str, Any]:
    """A stored metadata dict in the user's key order (:data:`ORDER_KEY` removed)."""
    order = metadata.pop(ORDER_KEY, None)
    return metadata if order is None else _reorder(metadata, order)


def _key_order(value: Any) -> Any:
    """``[keys, {child: order}]`` for a dict whose keys (or a nested dict's) are not sorted, else None."""
    if not isinstance(value, Mapping):
        return None
    keys = list(value)
    children = {k: order for k, v in value.items() if (order := _key_order(v)) is not None}
    if not children and keys == sorted(keys):
        return None
    return [keys, children] if children else [keys]


def _reorder(value: Any, order: Any) -> Any:
    if not isinstance(value, dict) or not isinstance(order, list) or not order:
        return value
    keys, children = order[0], (order[1] if len(order) > 1 else {})
    out = {k: value[k] for k in keys if k in value}
    out.update((k, v) for k, v in value.items() if k not in out)
    for key, child in children.items():
        if key in out:
            out[key] = _reorder(out[key], child)
    return out
