"""All LanceDB I/O: :class:`SmartStore` and the pieces it is made of.

``table`` (SmartStore: open, create, write, read, delete), ``connection`` (connect, open an
existing table's fingerprint), ``schema`` (schema, metadata keys, field types, key order),
``arrow`` (token states and vectors to and from Arrow), ``codec_table`` (the codec side
table), ``writer`` (the one-commit writer), ``rewrite`` (token rewrites), ``query`` (the
pooled query), ``upkeep`` (compaction, ANN index), ``layout`` (upgraded tables' columns),
``info`` (:class:`TableInfo`), ``errors``, ``format`` (the table format version) and ``migrate``
(bring an older format up to date).
"""

from .arrow import (
    Record,
    is_coded,
    n_tokens_column,
    tokens_from_arrow,
    tokens_to_arrow,
    tokens_type,
    vectors_block,
    vectors_to_arrow,
)
from .codec_table import CODEC_TABLE_SUFFIX, load_codec, save_codec
from .errors import (
    ConcurrentCommitError,
    DuplicateIdError,
    FingerprintMismatchError,
    TableNotFoundError,
    UpgradedTableError,
)
from .format import FORMAT_KEY, FORMAT_VERSION, TableFormatError
from .fulltext import TextIndexSettings
from .info import TableInfo
from .layout import NATIVE, TableLayout
from .migrate import MigrationReport, migrate_table
from .query import DEFAULT_EF, DEFAULT_NPROBES, DEFAULT_REFINE_FACTOR
from .schema import (
    CODEC_KEY,
    FIELDS_KEY,
    FINGERPRINT_KEY,
    META_COLUMNS,
    ORDER_KEY,
    WEIGHTS_KEY,
    FieldTypes,
    describe_mismatch,
    merge_field_types,
    restore_key_order,
    schema_field_types,
    token_dim_of,
    widen_field_types,
    with_key_order,
)
from .table import SmartStore
from .upkeep import ANN_INDEX_TYPES, DEFAULT_ANN_INDEX, DEFAULT_ANN_MIN_ROWS, OptimizeReport
from .writer import stream_into

__all__ = [
    "ANN_INDEX_TYPES",
    "CODEC_KEY",
    "CODEC_TABLE_SUFFIX",
    "DEFAULT_ANN_INDEX",
    "DEFAULT_ANN_MIN_ROWS",
    "DEFAULT_EF",
    "DEFAULT_NPROBES",
    "DEFAULT_REFINE_FACTOR",
    "FIELDS_KEY",
    "FINGERPRINT_KEY",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "META_COLUMNS",
    "NATIVE",
    "ORDER_KEY",
    "WEIGHTS_KEY",
    "ConcurrentCommitError",
    "DuplicateIdError",
    "FieldTypes",
    "FingerprintMismatchError",
    "MigrationReport",
    "OptimizeReport",
    "Record",
    "SmartStore",
    "TableInfo",
    "TableFormatError",
    "TableLayout",
    "TableNotFoundError",
    "TextIndexSettings",
    "UpgradedTableError",
    "describe_mismatch",
    "is_coded",
    "load_codec",
    "merge_field_types",
    "migrate_table",
    "n_tokens_column",
    "restore_key_order",
    "save_codec",
    "schema_field_types",
    "stream_into",
    "token_dim_of",
    "tokens_from_arrow",
    "tokens_to_arrow",
    "tokens_type",
    "vectors_block",
    "vectors_to_arrow",
    "widen_field_types",
    "with_key_order",
]
