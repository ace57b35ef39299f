"""The read verbs of :class:`~smart_retrievers.store.SmartStore`: filters rendered for its table, and rows
read through its layout as the logical SMART columns."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..codec import TokenCodec
from ..filters import column_in, parse_filter, to_sql
from ..validation import id_list
from .arrow import in_order
from .fulltext import text_index, text_query
from .layout import TableLayout, logical_rows, read_columns
from .query import pooled_query
from .schema import META_COLUMNS, FieldTypes
from .upkeep import index_type_name, vector_index


class TableReads:
    """Reads of one table (None until created) through its :class:`TableLayout`; a base of ``SmartStore``."""

    # provided by SmartStore
    _table: Any
    table: Any
    layout: TableLayout
    codec: TokenCodec | None
    _schema: Callable[..., pa.Schema]
    _at_version: Callable[[str, Callable[[Any], Any]], Any]
    if TYPE_CHECKING:  # SmartStore's read-only properties

        @property
        def field_types(self) -> FieldTypes: ...

        @property
        def token_dim(self) -> int: ...

    def where_sql(self, where: Any) -> str | None:
        """Render a filter dict / Filter to SQL against this table's metadata fields."""
        if where is None:
            return None
        return to_sql(parse_filter(where), self.field_types, self.layout.sql_target)

    def _in_sql(self, column: str, values: Sequence[str]) -> str | None:
        """The condition: the ``id`` / ``ref_id`` column (never a metadata field of that name) is one of ``values``."""
        return to_sql(column_in(column, id_list(values, f"{column}s")), self.field_types, self.layout.sql_target)

    def modality_sql(self, modality: str) -> str | None:
        """The condition selecting rows of ``modality`` ("text" / "image"; None: every row is of it)."""
        return self.layout.modality_sql(modality)

    def count(self, where: Any = None) -> int:
        """Number of rows, optionally matching a filter."""
        if self.table is None:
            return 0
        if where is None:  # every search of a hybrid query asks this: once per table version
            return int(self._at_version("count", lambda table: table.count_rows()))
        return self._table.count_rows(self.where_sql(where))

    def get(self, ids: Sequence[str], columns: Sequence[str] = META_COLUMNS) -> pa.Table:
        """Rows for these ids (missing ids are absent), in the order given."""
        ids = id_list(ids, "ids")
        if self.table is None or not ids:
            return self._empty(columns)
        query = self._table.search().where(self._in_sql("id", ids)).select(self._physical(columns)).limit(len(ids))
        return in_order(self._logical(query.to_arrow(), columns), "id", ids)

    def pooled_query(self, vector: np.ndarray, k: int, *, columns: Sequence[str] = META_COLUMNS, **options: Any) -> Any:
        """The LanceDB query of :meth:`search_pooled` (for ``explain_plan`` and the like).

        ``options``: :func:`~smart_retrievers.store.query.pooled_query`'s (``where``, the ANN
        knobs ``nprobes`` / ``refine_factor`` / ``ef``, ``with_row_id``, ``flat``); the knobs
        left None take the defaults of the table's index type.
        """
        select = self._physical(columns)
        return pooled_query(
            self._table, self.layout.vector, vector, k, select=select, index_type=self.vector_index_type, **options
        )

    def search_pooled(
        self, vector: np.ndarray, k: int, *, columns: Sequence[str] = META_COLUMNS, **query_options: Any
    ) -> pa.Table:
        """Top-k rows by pooled cosine, filter applied before the search, with the asked columns.

        ``query_options`` are :meth:`pooled_query`'s (``where``, the ANN knobs, ``flat``);
        ``with_row_id=True`` adds the ``_rowid`` column (for :meth:`take_rows`).
        """
        if self.table is None:
            return self._empty(columns)
        found = self.pooled_query(vector, k, columns=columns, **query_options).to_arrow()
        return self._logical(found, columns, extra=["_rowid"] if "_rowid" in found.column_names else [])

    def vector_index(self) -> Any:
        """The LanceDB index config on the pooled vectors (name, type, indexed / unindexed rows), or None."""
        if self.table is None:
            return None
        return self._at_version("vector_index", lambda table: vector_index(table, self.layout.vector))

    @property
    def vector_index_type(self) -> str | None:
        """The type of the ANN index on the pooled vectors (one of ``ANN_INDEX_TYPES``), or None."""
        return index_type_name(self.vector_index())

    @property
    def text_index(self) -> Any:
        """The full-text (BM25) index on the text column (LanceDB's index config), or None."""
        if self.table is None:
            return None
        return self._at_version("text_index", lambda table: text_index(table, self.layout.text))

    def search_text(
        self,
        text: str,
        k: int,
        *,
        columns: Sequence[str] = META_COLUMNS,
        where: str | None = None,
        with_row_id: bool = False,
    ) -> pa.Table:
        """Top-k rows by BM25 on the text column (needs :attr:`text_index`), filter applied first, plus ``_score``.

        Rows written since the index was last updated are searched too. ``with_row_id=True``
        adds ``_rowid`` (for :meth:`take_rows`).
        """
        if self.table is None:
            return self._empty(columns).append_column("_score", pa.array([], pa.float32()))
        found = text_query(
            self._table, self.layout.text, text, k, select=self._physical(columns), where=where, with_row_id=with_row_id
        ).to_arrow()
        extra = ["_score", *(["_rowid"] if with_row_id else [])]
        return self._logical(found, columns, extra=extra)

    def take_rows(self, row_ids: Sequence[int], columns: Sequence[str]) -> pa.Table:
        """The ``columns`` of the rows with these LanceDB ``_rowid`` values, in the order given."""
        if self.table is None or not len(row_ids):
            return self._empty(columns)
        ids = [int(r) for r in row_ids]
        found = self._table.take_row_ids(ids).with_row_id().select(self._physical(columns)).to_arrow()
        return self._logical(in_order(found, "_rowid", ids), columns)

    def scan(
        self, columns: Sequence[str], *, where: str | None = None, batch_size: int = 2048
    ) -> Iterator[pa.RecordBatch]:
        """Stream every (matching) row in record batches."""
        if self.table is None:
            return
        query = self._table.search().select(self._physical(columns)).limit(None)
        if where:
            query = query.where(where)
        for batch in query.to_batches(batch_size):
            if self.layout.native:
                yield batch
            else:
                yield from self._logical(pa.Table.from_batches([batch]), columns).to_batches()

    def _physical(self, columns: Sequence[str]) -> list[str]:
        return read_columns(self.layout, columns)

    def _logical(self, found: pa.Table, columns: Sequence[str], *, extra: Sequence[str] = ()) -> pa.Table:
        return logical_rows(found, self.layout, columns, extra=extra, token_dim=self.token_dim, codec=self.codec)

    def _empty(self, columns: Sequence[str]) -> pa.Table:
        schema = self._schema()
        return pa.table({c: pa.array([], schema.field(c).type) for c in columns})
