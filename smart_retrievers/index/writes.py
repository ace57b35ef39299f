"""The write verbs of :class:`~smart_retrievers.index.SmartIndex`: check, encode, and commit once (see :mod:`.ingest`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..encoders import reads_images
from ..encoders.images import IMAGE_TYPES, ImageInput
from ..encoding import Encoding
from ..store import Record, SmartStore
from ..store.rewrite import ConcurrentRewriteError
from ..validation import aligned, ordered
from . import ingest
from .options import IndexOptions

__all__ = ["REWRITE_RETRIES", "WriteVerbs"]

logger = logging.getLogger(__name__)

REWRITE_RETRIES = 3
"""Times an add verb commits before giving up when other writers' token rewrites keep preempting it."""


class WriteVerbs:
    """add, add_encodings, add_images, add_items, add_records, delete, delete_all."""

    encoder: Any
    store: SmartStore
    options: IndexOptions
    last_truncated: int

    def add(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ref_ids: Sequence[str | None] | None = None,
        upsert: bool = True,
        show_progress: bool | None = None,
    ) -> list[str]:
        """Encode and upsert texts (same id twice leaves one row). Returns the ids.

        The whole call is one LanceDB commit: texts are encoded ``write_batch_size`` at a
        time and streamed into a single ``add``/``merge_insert``, so if validation,
        encoding or the write fails (or the process dies), none of the call's rows appear
        and other writers' commits are untouched. ``upsert=False`` appends without a merge
        (faster for bulk loads) and refuses ids the table already holds
        (:class:`~smart_retrievers.store.DuplicateIdError`). ``last_truncated`` tells how many
        inputs were cut at the encoder's max_length.
        """
        if isinstance(texts, str):
            raise TypeError("add() takes a sequence of texts, not a single string")
        ordered(texts=texts, ids=ids, metadatas=metadatas, ref_ids=ref_ids)
        items = ingest.text_items(list(texts), ids, metadatas, ref_ids)
        self._write(items, ingest.item_encoder(items, self.encoder), upsert, show_progress)
        return items.ids

    def add_encodings(
        self,
        encodings: Sequence[Encoding],
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ref_ids: Sequence[str | None] | None = None,
        upsert: bool = True,
        show_progress: bool | None = None,
    ) -> list[str]:
        """Upsert items encoded elsewhere (by this index's encoder), with their texts; as :meth:`add`, with no forward pass."""
        ordered(encodings=encodings, texts=texts, ids=ids, metadatas=metadatas, ref_ids=ref_ids)
        encodings, texts = list(encodings), list(texts)
        if len(encodings) != len(texts):
            raise ValueError(f"got {len(encodings)} encodings but {len(texts)} texts")
        items = ingest.text_items(texts, ids, metadatas, ref_ids)
        self._write(items, lambda start, stop: encodings[start:stop], upsert, show_progress)
        return items.ids

    def add_images(
        self,
        images: Sequence[ImageInput],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ref_ids: Sequence[str | None] | None = None,
        texts: Sequence[str | None] | None = None,
        uris: Sequence[str | None] | None = None,
        upsert: bool = True,
        show_progress: bool | None = None,
    ) -> list[str]:
        """Encode and upsert images with a vision encoder (rows get modality "image"). Returns the ids.

        ``images``: paths, ``file://``/``http(s)://``/``data:`` URIs, encoded bytes or PIL images.
        ``texts``: an optional caption per image, stored (for display, full-text search and
        framework nodes), not encoded. ``uris``: what the ``image`` column stores per item
        (default: a path's absolute path, a URL as given, a PIL image's ``filename``; None for
        bytes and in-memory images); pixels are never stored. Images are encoded
        ``IMAGE_WRITE_BATCH`` at a time into the call's one commit; an unreadable image raises
        :class:`~smart_retrievers.encoders.ImageLoadError` naming its position and id, and
        nothing is written.
        """
        if isinstance(images, IMAGE_TYPES):
            raise TypeError("add_images() takes a sequence of images, not a single image")
        ordered(images=images, texts=texts, uris=uris)
        images = list(images)
        self._image_encoder()
        missing = next((i for i, im in enumerate(images) if im is None), None)
        if missing is not None:
            raise TypeError(f"image {missing} is None")
        texts = aligned("texts", len(images), texts)
        return self.add_items(
            texts,
            images,
            ids=ids,
            metadatas=metadatas,
            ref_ids=ref_ids,
            uris=uris,
            upsert=upsert,
            show_progress=show_progress,
        )

    def add_items(
        self,
        texts: Sequence[str | None],
        images: Sequence[ImageInput | None] | None = None,
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ref_ids: Sequence[str | None] | None = None,
        uris: Sequence[str | None] | None = None,
        upsert: bool = True,
        show_progress: bool | None = None,
    ) -> list[str]:
        """Upsert a mix of text and image items in one atomic call (one commit, as :meth:`add`). Returns the ids.

        Item i is an image row when ``images[i]`` is given (``texts[i]`` its caption, ``uris[i]``
        its ``image`` column, as in :meth:`add_images`), else a text row encoded from ``texts[i]``.
        """
        if isinstance(texts, str):
            raise TypeError("add_items() takes a sequence of texts, not a single string")
        ordered(texts=texts, images=images, ids=ids, metadatas=metadatas, ref_ids=ref_ids, uris=uris)
        items = ingest.mixed_items(list(texts), images, ids, metadatas, ref_ids, uris)
        encoder = self._image_encoder() if items.has_images else self.encoder
        batch = min(self.options.write_batch_size, ingest.IMAGE_WRITE_BATCH) if items.has_images else None
        self._write(items, ingest.item_encoder(items, encoder), upsert, show_progress, batch_size=batch)
        return items.ids

    def add_records(
        self,
        batches: Iterable[Sequence[Record]],
        *,
        upsert: bool = True,
        total: int | None = None,
        show_progress: bool | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
    ) -> int:
        """Write rows encoded elsewhere (by this index's encoder, e.g. distributed workers), streamed, as one commit.

        The first batch fits the table's codec if it has none yet. ``total`` sizes the progress
        bar; ``metadatas``, when known up front, lets field types be checked before the first
        batch. Returns the number of rows written. The call that creates the table also builds its
        full-text index (an index-only commit after the rows'; ``text_index=None``: none).
        """
        self.last_truncated = 0
        creates = self.store.table is None
        written, self.last_truncated = ingest.write_records(
            self.store,
            self.encoder,
            batches,
            upsert=upsert,
            total=total,
            show_progress=show_progress,
            metadatas=metadatas,
        )
        if creates and written and self.options.text_index is not None:
            self._build_first_text_index()
        return written

    def _build_first_text_index(self) -> None:
        """Build the full-text index of the table this call created; a writer that created the same table at
        the same moment may have built it first (its CreateIndex commit then preempts this one), which is kept."""
        try:
            self.store.build_text_index(self.options.text_index)
        except RuntimeError:
            if self.store.text_index is None:
                raise

    def _write(
        self, items: ingest.Items, encode: Any, upsert: bool, show_progress: bool | None, batch_size: int | None = None
    ) -> None:
        """Encode and commit the items; a commit lost to another writer's token rewrite (nothing written) is
        encoded and committed again, coded by the table's new codec."""
        metadatas = [m or {} for m in items.metadatas]
        for attempt in range(1, REWRITE_RETRIES + 1):
            batches = ingest.batches_of(items, encode, batch_size or self.options.write_batch_size)
            try:
                self.add_records(
                    batches, upsert=upsert, total=len(items), show_progress=show_progress, metadatas=metadatas
                )
                return
            except ConcurrentRewriteError:
                if attempt == REWRITE_RETRIES:
                    raise
                logger.info("a token rewrite committed during this write (nothing written); writing again")

    def _image_encoder(self) -> Any:
        """The encoder, checked to be able to encode images."""
        if not reads_images(self.encoder):
            raise TypeError(
                f"{type(self.encoder).__name__} cannot encode images; open the index with a vision encoder "
                "(smart_retrievers.encoders.QwenVLEncoder or ClipEncoder)"
            )
        return self.encoder

    def delete(
        self, ids: Sequence[str] | None = None, *, ref_ids: Sequence[str] | None = None, where: Any = None
    ) -> int:
        """Delete by ids, by source-document ids (ref_ids) and/or by filter (ANDed); returns rows deleted.

        A call with no condition, ``where={}`` or a filter matching every row is refused
        (``ValueError``): emptying the table takes an explicit :meth:`delete_all`.
        """
        return self.store.delete(ids=ids, ref_ids=ref_ids, where=where)

    def delete_all(self) -> int:
        """Delete every row, in one commit (the table and its codec stay); returns rows deleted."""
        return self.store.delete_all()
