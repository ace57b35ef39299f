"""The upkeep verbs of :class:`~smart_retrievers.index.SmartIndex`: compaction and the ANN index, the token
codec, re-encoding with another adapter (see :mod:`.upkeep`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from ..codec import DEFAULT_COMPRESSION, TokenCodec
from ..store import OptimizeReport, SmartStore
from . import upkeep
from .options import IndexOptions

__all__ = ["UpkeepVerbs"]


class UpkeepVerbs:
    """optimize, reindex_tokens, codec, fit_codec, recompress."""

    encoder: Any
    store: SmartStore
    options: IndexOptions

    def optimize(
        self,
        *,
        cleanup_older_than: timedelta | None = timedelta(days=7),
        delete_unverified: bool = False,
        rebuild_index: bool = False,
        num_partitions: int | None = None,
    ) -> OptimizeReport:
        """Compact the table, drop versions older than ``cleanup_older_than``, and build or update the pooled ANN index.

        Call it after bulk loads and then every so often (LanceDB's rule of thumb: after 100,000
        changed rows or 20 write calls). The ANN index (``ann_index_type``, cosine) is built once
        the table holds ``ann_min_rows`` rows, or again with ``rebuild_index=True``; rows written
        since are still found (searched exhaustively and merged). See
        :meth:`SmartStore.optimize <smart_retrievers.store.SmartStore.optimize>`.
        """
        return self.store.optimize(
            cleanup_older_than=cleanup_older_than,
            delete_unverified=delete_unverified,
            ann_min_rows=self.options.ann_min_rows,
            index_type=self.options.ann_index_type,
            num_partitions=num_partitions,
            rebuild_index=rebuild_index,
            text_column=None if self.options.text_index is None else self.store.layout.text,
            text_settings=self.options.text_index,
        )

    def reindex_tokens(
        self, adapter_or_encoder: Any, *, batch_size: int = 1024, show_progress: bool | None = None
    ) -> int:
        """Re-encode the stored token states with another SMART adapter (after training one), keeping everything else.

        ``adapter_or_encoder``: a :class:`~smart_retrievers.adapter.SmartAdapter`, its directory,
        None (the plain final-layer states), or an encoder differing from the index's only by
        its adapter. One overwrite commit (see :func:`.upkeep.reindex_tokens`); the index then
        searches with the new encoder. Returns the number of rows re-encoded.
        """
        encoder = upkeep.adapter_encoder(self.encoder, adapter_or_encoder)
        n_rows = upkeep.reindex_tokens(self.store, encoder, batch_size=batch_size, show_progress=show_progress)
        self.encoder = encoder
        return n_rows

    @property
    def codec(self) -> TokenCodec | None:
        """The table's token codec (None: float16 token states, or not fitted yet)."""
        return self.store.codec

    def fit_codec(self, sample_texts: Sequence[str]) -> TokenCodec:
        """Fit the table's codec on ``sample_texts`` (encoded as documents) before the first write.

        Without it, the first :meth:`add` fits the codec on its own first batch. Later writes reuse it.
        """
        return upkeep.fit_texts_codec(self.store, self.encoder, sample_texts)

    def recompress(
        self,
        compression: str = DEFAULT_COMPRESSION,
        *,
        batch_size: int = 1024,
        sample_rows: int = 1024,
        show_progress: bool | None = None,
    ) -> int:
        """Rewrite a float16 table's token states into ``compression``, without re-encoding; returns the rows rewritten.

        The codec is fitted on the stored states of the first ``sample_rows`` rows; one
        overwrite commit. A table that is already coded is refused: its float states are gone.
        """
        return upkeep.recompress(
            self.store,
            self.encoder,
            compression,
            batch_size=batch_size,
            sample_rows=sample_rows,
            show_progress=show_progress,
        )
