"""SmartStore: one LanceDB table of SMART rows, opened or created, and the verbs on it.

One row per item: ``id`` (unique), ``ref_id`` (source document), ``text``, ``image``
(a URI/path or null), ``modality``, ``metadata`` (LanceDB JSON, filterable through
:mod:`smart_retrievers.filters`), ``vector`` (pooled, float32) and ``tokens`` (a list of
float16 token states, or a codec's codes). The encoder fingerprint lives in the schema
metadata; the known metadata fields and their types live in the ``metadata`` field's metadata.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pyarrow as pa

from ..codec import DEFAULT_COMPRESSION, TokenCodec, parse_preset
from ..options import DEFAULT_READ_CONSISTENCY
from ..validation import short_repr
from .arrow import Record
from .codec_table import load_codec, save_codec
from .connection import connect, existing_fingerprint
from .creation import create_or_open, table_names
from .errors import FingerprintMismatchError, UpgradedTableError, retry_preempted
from .format import check_format
from .fulltext import TextIndexSettings, create_text_index
from .info import TableInfo, table_info
from .layout import NATIVE, TableLayout
from .reads import TableReads
from .rewrite import TokenTransform, overwrite_tokens
from .schema import (
    WEIGHTS_KEY,
    FieldTypes,
    check_fingerprint,
    merge_field_types,
    native_schema,
    schema_field_types,
    stored_codec_ref,
    stored_fusion_weights,
    token_dim_of,
)
from .upkeep import OptimizeReport, optimize_table
from .writer import record_field_types, reset_field_types, write_records


class SmartStore(TableReads):
    """LanceDB table I/O for SMART rows.

    Args:
        uri: a local directory (embedded LanceDB), an object-store URI
            (``s3://``, ``gs://``, ``az://``) or a LanceDB Cloud ``db://`` URI.
        table: table name.
        fingerprint: the encoder fingerprint; checked against an existing table.
        compression: the token codec preset (:mod:`smart_retrievers.codec`) of a new table;
            ``"none"`` stores float16 states. For an existing table None means "whatever it
            was built with", and any other value must match it.
        storage_options: passed to ``lancedb.connect`` (object-store credentials...).
        read_consistency_interval: how often a read looks for other writers' commits.
            The default ``timedelta(0)`` checks on every read, so every read sees every
            commit made before it (free on a local table; on object storage it costs a
            round trip per read, which a few seconds' interval saves). None never re-checks.
        **connect_kwargs: other ``lancedb.connect`` arguments (api_key, region...).
    """

    def __init__(
        self,
        uri: str,
        table: str,
        fingerprint: Mapping[str, Any],
        *,
        compression: str | None = None,
        storage_options: Mapping[str, str] | None = None,
        read_consistency_interval: timedelta | None = DEFAULT_READ_CONSISTENCY,
        **connect_kwargs: Any,
    ) -> None:
        if compression is not None and compression != "none":
            parse_preset(compression)
        self.uri = str(uri)
        self.table_name = table
        self.fingerprint = dict(fingerprint)
        self.db = connect(self.uri, storage_options, read_consistency_interval, **connect_kwargs)
        self._table: Any = None
        self.layout: TableLayout = NATIVE
        self.codec: TokenCodec | None = None
        self.codec_ref: str | None = None
        """The schema's reference to :attr:`codec` in the codec table (None until saved, or float16 states)."""
        self.compression = compression or DEFAULT_COMPRESSION
        self._requested = compression
        self._seen: dict[str, tuple[int, Any]] = {}
        """What was read of the table per version (schema, vector and full-text indices, row count): see :meth:`_at_version`."""
        self._open_existing()

    @classmethod
    def open_existing(
        cls,
        uri: str,
        table: str,
        *,
        storage_options: Mapping[str, str] | None = None,
        read_consistency_interval: timedelta | None = DEFAULT_READ_CONSISTENCY,
        **connect_kwargs: Any,
    ) -> SmartStore:
        """Open an existing table with the fingerprint it records (no encoder needed: info, delete, upkeep).

        Raises :class:`TableNotFoundError` naming the tables that do exist when ``table``
        is not one of them, and :class:`FingerprintMismatchError` for a table that
        smart-retrievers did not write or upgrade.
        """
        db = connect(str(uri), storage_options, read_consistency_interval, **connect_kwargs)
        fingerprint = existing_fingerprint(db, str(uri), table)
        return cls(
            uri,
            table,
            fingerprint,
            storage_options=storage_options,
            read_consistency_interval=read_consistency_interval,
            **connect_kwargs,
        )

    def _open_existing(self) -> None:
        """Open the table if it exists (now, or since another writer created it), checking it fits."""
        if self._table is None and self.table_name in table_names(self.db):
            self._adopt(self.db.open_table(self.table_name))
        elif self._table is not None and self.layout.native:
            self._follow_rewrite()

    def _at_version(self, what: str, read: Callable[[Any], Any]) -> Any:
        """``read(table)``, read again only when the table's version has moved since it was last read.

        A version number names one state of the table, so what was read at it still holds; asking
        LanceDB for the version is one cheap call, where the schema or the index list cost more on
        every search.
        """
        version = self._table.version
        seen = self._seen.get(what)
        if seen is None or seen[0] != version:
            seen = self._seen[what] = (version, read(self._table))
        return seen[1]

    def _current_schema(self) -> pa.Schema:
        """The table's schema at its latest version (read once per version)."""
        return self._at_version("schema", lambda table: table.schema)

    def _follow_rewrite(self) -> None:
        """Take up the codec another handle's ``recompress`` committed (a changed adapter is refused)."""
        schema = self._current_schema()
        codec_ref = stored_codec_ref(schema)
        if codec_ref != self.codec_ref and (codec_ref is not None or self.codec is not None):
            check_fingerprint(schema, self.fingerprint, f"table {self.table_name!r} at {self.uri}")
            self.codec, self.codec_ref = load_codec(self.db, codec_ref), codec_ref
            self.compression = self.codec.preset if self.codec else "none"

    def _adopt(self, table: Any) -> None:
        """Use ``table`` (opened, or created first by another writer) with its own codec."""
        check_fingerprint(table.schema, self.fingerprint, f"table {self.table_name!r} at {self.uri}")
        check_format(table.schema, self.uri, self.table_name)  # older: migrate; newer: upgrade the package
        layout = TableLayout.from_schema(table.schema)
        if not layout.native and "tokens" not in table.schema.names:
            raise ValueError(
                f"table {self.table_name!r} at {self.uri} is being upgraded to SMART and has no token states yet; "
                "run upgrade() (smart-retrievers upgrade) again to finish it"
            )
        codec_ref = stored_codec_ref(table.schema)
        codec = load_codec(self.db, codec_ref)
        stored = codec.preset if codec else "none"
        if self._requested is not None and self._requested != stored:
            raise FingerprintMismatchError(
                f"table {self.table_name!r} at {self.uri} stores tokens with compression {stored!r}, "
                f"not {self._requested!r}; open it without compression= (or with {stored!r}), "
                "or convert it with recompress()"
            )
        self._table, self.codec, self.compression, self.layout = table, codec, stored, layout
        self.codec_ref = codec_ref
        self._seen = {}

    @property
    def token_dim(self) -> int:
        """The width of the token states the fingerprint records."""
        return token_dim_of(self.fingerprint)

    @property
    def needs_codec(self) -> bool:
        """True while the table's codec is still to be fitted (before the first write)."""
        return self.codec is None and self.compression != "none"

    def set_codec(self, codec: TokenCodec) -> None:
        """Use a fitted codec for the first write (the table must not exist yet)."""
        if self._table is not None:
            raise ValueError(f"table {self.table_name!r} exists; change its codec with recompress()")
        if codec.dim != self.token_dim or codec.preset != self.compression:
            raise ValueError(
                f"codec {codec.preset!r} for dim {codec.dim} does not fit this table "
                f"({self.compression!r}, dim {self.token_dim})"
            )
        self.codec, self.codec_ref = codec, None  # saved beside the table by the first write

    def describe(self) -> TableInfo:
        """Rows, fingerprint, codec, layout, field types and bytes of the table (:class:`TableInfo`)."""
        return table_info(self)

    def _schema(self, field_types: FieldTypes | None = None) -> pa.Schema:
        return native_schema(self.fingerprint, self.codec, self.codec_ref, field_types)

    @property
    def field_types(self) -> FieldTypes:
        """Known metadata fields and their JSON types."""
        return {} if self.table is None else schema_field_types(self._current_schema(), self.layout)

    @property
    def fusion_weights(self) -> dict[str, float] | None:
        """The weights saved with the table (:meth:`set_fusion_weights`): ``lambda_pool``, ``lambda_late`` and, if
        saved, ``lambda_lex``; None when none were saved."""
        return None if self.table is None else stored_fusion_weights(self._current_schema(), self.layout)

    def set_fusion_weights(
        self, lambda_pool: float, lambda_late: float, lambda_lex: float | None = None, **info: Any
    ) -> None:
        """Save default fusion weights in the table's schema (field metadata of ``vector``; a metadata-only commit).

        ``info`` (JSON values: how they were chosen) is stored beside them. The table must exist.
        """
        if self.table is None:
            raise ValueError(f"table {self.table_name!r} does not exist yet: write rows before saving weights")
        lex = {} if lambda_lex is None else {"lambda_lex": float(lambda_lex)}
        value = {"lambda_pool": float(lambda_pool), "lambda_late": float(lambda_late), **lex, **info}
        update = {"path": self.layout.vector, "metadata": {WEIGHTS_KEY: json.dumps(value)}}
        retry_preempted(
            self._table,
            lambda: self._table.update_field_metadata(update),
            f"saving fusion weights on table {self.table_name!r}",
        )

    @property
    def table(self) -> Any:
        """The underlying ``lancedb`` table (None until some writer creates it)."""
        self._open_existing()
        return self._table

    @property
    def version(self) -> int | None:
        """The table's current version (None before the first write)."""
        return None if self._table is None else self._table.version

    # ---- writes --------------------------------------------------------

    def write(
        self,
        batches: Iterable[Sequence[Record]],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        *,
        upsert: bool = True,
    ) -> None:
        """Write every record of ``batches`` as one LanceDB commit: all rows appear, or none.

        ``batches`` (lists of records; an id may appear once in the call) is consumed lazily
        and streamed into LanceDB while the next batch is produced (:func:`write_records`).
        ``metadatas``: every record's metadata when known before encoding (its field types are
        then checked and recorded first; without it each batch's are checked as it comes and
        recorded just before the commit). ``upsert`` False appends and refuses ids the table
        holds (:class:`DuplicateIdError`). Nothing is ever restored: other writers' commits stay.
        """
        self._open_existing()
        self.require_native("add rows to")
        types = merge_field_types(self.field_types, metadatas or [])
        batches = iter(batches)
        first = next(batches, None)  # may fit the codec (see SmartIndex), so before the schema
        if first is None:
            return
        streamed = metadatas is None  # field types known only batch by batch
        if streamed:
            types = merge_field_types(types, [r.metadata for r in first], [r.id for r in first])
        if self._table is None:
            self._create(types)
        record_field_types(self._table, types)
        write_records(
            self._table,
            itertools.chain([first], batches),
            self._schema(self.field_types),
            self.codec,
            streamed_types=types if streamed else None,
            upsert=upsert,
            table_name=self.table_name,
        )

    def _create(self, types: FieldTypes) -> None:
        """Create the empty table (a concurrent creator's table is adopted, not clobbered)."""
        if self.needs_codec:
            raise ValueError(f"the {self.compression!r} codec must be fitted (set_codec) before the first write")
        if self.codec is not None and self.codec_ref is None:
            self.codec_ref = save_codec(self.db, self.table_name, self.codec)
        schema = self._schema(types)
        table = create_or_open(self.db, self.table_name, schema)
        if table.schema.metadata == schema.metadata:
            self._table = table
        else:
            self._adopt(table)

    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or replace these rows by id, in one commit (:meth:`write` of one batch)."""
        self.write([records], [r.metadata for r in records])

    def require_native(self, action: str) -> None:
        """Raise :class:`UpgradedTableError` for ``action`` ("add rows to"...) if the table was upgraded in place."""
        if not self.layout.native:
            raise UpgradedTableError.refusing(action, self.table_name, self.layout.owner)

    def replace_tokens(
        self, transform: TokenTransform, fingerprint: Mapping[str, Any], *, codec: TokenCodec | None, **options: Any
    ) -> int:
        """Rewrite ``tokens`` / ``n_tokens`` of every row, swapped in by one commit; returns the number of rows.

        ``transform`` maps a batch of stored rows to its new columns, coded by ``codec`` (None:
        float16 states); ``codec`` and ``fingerprint`` become the table's. ``options``:
        ``batch_size``, ``show_progress``, ``desc``. See :func:`~smart_retrievers.store.rewrite.overwrite_tokens`.
        """
        if self._table is None:  # nothing stored: the next first write fits the codec of the same preset
            self.fingerprint, self.codec, self.codec_ref = dict(fingerprint), codec, None
            return 0
        self.require_native("rewrite the token states of")
        n_rows, codec_ref = overwrite_tokens(
            self.db, self.table_name, self._table, transform, fingerprint, codec, **options
        )
        self._table = self.db.open_table(self.table_name)
        self.fingerprint, self.codec, self.codec_ref = dict(fingerprint), codec, codec_ref
        self.compression = codec.preset if codec else "none"
        return n_rows

    def delete(
        self, *, ids: Sequence[str] | None = None, ref_ids: Sequence[str] | None = None, where: Any = None
    ) -> int:
        """Delete rows by ids, by ref_ids and/or by a metadata filter; returns how many went.

        The conditions are ANDed. A call without any condition (or with ``where={}``, or a
        filter that matches every row, such as ``{"$and": []}``) is refused: use
        :meth:`delete_all` to empty the table.
        """
        clauses = [
            self._in_sql(name, values) for name, values in (("id", ids), ("ref_id", ref_ids)) if values is not None
        ]
        if where is not None:
            sql = self.where_sql(where)
            if sql is not None:  # {} is "no filter", not a condition
                clauses.append(sql)
        if all(c == "TRUE" for c in clauses):
            raise ValueError(
                f"delete() needs ids, ref_ids or where (a filter that selects rows; got where={short_repr(where)}); "
                "it never deletes every row by accident: call delete_all() for that"
            )
        if self.table is None or "FALSE" in clauses:  # e.g. ids=[]: nothing selected, no commit
            return 0
        predicate = " AND ".join(f"({c})" for c in clauses)
        return self._table.delete(predicate).num_deleted_rows  # counted in the delete's own commit

    def delete_all(self) -> int:
        """Delete every row in one commit (the table, its schema and codec stay); returns how many went.

        The field map is then narrowed to the fields the rows left hold (none, unless another writer
        added rows meanwhile), in a metadata-only commit that keeps concurrent writers' fields.
        """
        if self.table is None:
            return 0
        deleted = self._table.delete("TRUE").num_deleted_rows
        if self.layout.native:
            reset_field_types(self._table)
        return deleted

    # ---- upkeep --------------------------------------------------------

    def optimize(self, **options: Any) -> OptimizeReport:
        """Compact the table, drop old versions, and create or update the pooled ANN index.

        ``options``: :func:`~smart_retrievers.store.upkeep.optimize_table`'s (``cleanup_older_than``,
        ``delete_unverified``, ``ann_min_rows``, ``index_type``, ``num_partitions``, ``rebuild_index``).
        """
        return optimize_table(self.table, self.layout.vector, **{"text_column": self.layout.text, **options})

    def build_text_index(self, settings: TextIndexSettings | None = None) -> None:
        """Build the full-text (BM25) index on the text column over every row (one index commit).

        ``optimize()`` builds it when missing and keeps it up to date; rows written since are
        searched exhaustively until then.
        """
        if self.table is not None:
            create_text_index(self._table, self.layout.text, settings or TextIndexSettings())
