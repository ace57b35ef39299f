"""SmartIndex: encoder + LanceDB store + two-stage SMART search. Every integration calls this."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from .codec import DEFAULT_COMPRESSION, TokenCodec, fit_codec
from .encoders import as_encoder, reads_images
from .encoders.base import load_adapter
from .encoders.images import IMAGE_TYPES, ImageInput, image_policy_of, image_uri
from .encoding import Encoder, Encoding
from .options import (
    DEFAULT_READ_CONSISTENCY,
    MODALITIES,
    SEARCH_MODES,
    Modality,
    SearchMode,
    SearchOptions,
    check_count,
    check_weights,
)
from .progress import progress_on
from .scoring import Ranking, rank, relevance
from .store import (
    ANN_INDEX_TYPES,
    DEFAULT_ANN_INDEX,
    DEFAULT_ANN_MIN_ROWS,
    META_COLUMNS,
    OptimizeReport,
    Record,
    SmartStore,
    restore_key_order,
    tokens_from_arrow,
    tokens_to_arrow,
    vectors_block,
)
from .upgrade import upgrade_table
from .validation import aligned, check_metadata, check_text, id_list

logger = logging.getLogger(__name__)

TokenFetch = Literal["query", "take"]
DEFAULT_TOKEN_FETCH: TokenFetch = "query"
"""How "rerank" gets its candidates' tokens: in the pooled search itself ("query"), or by a
second ``take`` of the candidates' rows by row id ("take"). Measured in benchmarks/scale.py."""

IMAGE_WRITE_BATCH = 128
"""Most images encoded (and held in memory) at a time: image token states are large (hundreds per image)."""

__all__ = [
    "MODALITIES",
    "SEARCH_MODES",
    "Hit",
    "Modality",
    "SearchMode",
    "SearchOptions",
    "SmartIndex",
    "load_metadata",
]


@dataclass
class Hit:
    """One search result. ``score`` is the fused SMART score used for ranking.

    ``relevance`` is the fused score mapped into [0, 1] by :func:`~smart_retrievers.scoring.relevance`
    (``clip(score / (lambda_pool + lambda_late), 0, 1)`` with the search's weights): what score
    thresholds and framework relevance functions use. 0 for rows read without a search.
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    score: float = 0.0
    pooled_score: float = 0.0
    late_score: float = 0.0
    ref_id: str | None = None
    image: str | None = None
    modality: str = "text"
    relevance: float = 0.0


class SmartIndex:
    """A SMART late-interaction index on a single-vector embedder, stored in LanceDB.

    Args:
        uri: where the LanceDB database lives: a local directory (embedded, the
            default), ``s3://``/``gs://``/``az://`` object storage, or ``db://`` LanceDB Cloud.
        encoder: a :class:`SmartEncoder` (or vision encoder); the bundled
            all-MiniLM-L6-v2 when None; a hub id or local model directory (str or path) is
            loaded through :func:`~smart_retrievers.encoders.load_encoder` (text or vision).
        table: table name inside the database.
        lambda_pool / lambda_late: default fusion weights; None takes the weights saved in the
            table by :meth:`calibrate` (``save=True``), else 1.
        candidates: default number of pooled candidates re-scored in "rerank" mode.
        write_batch_size: rows encoded (and held in memory) at a time in ``add``; a call is
            always one LanceDB commit, however many batches it takes.
        compression: how token states are stored (:mod:`smart_retrievers.codec`):
            ``"pca128-sign"`` (16 bytes per token, the default for a new table),
            another preset such as ``"pca64-sign"`` or ``"pca128-int4"``, or ``"none"``
            (float16, 2 bytes per dimension). The codec is fitted on the first write
            and stored in the table; an existing table keeps its own (None), and any
            other value must match it.
        ann_min_rows: :meth:`optimize` builds the ANN index on the pooled vectors once the
            table holds this many rows (None: never). Below it, the pooled search is flat
            (exact) and fast enough.
        ann_index_type: the LanceDB index type :meth:`optimize` builds (cosine distance);
            one of :data:`~smart_retrievers.store.ANN_INDEX_TYPES`.
        read_consistency_interval: how often a read looks for other processes' commits:
            by default on every read (``timedelta(0)``), so a long-lived index sees every
            write committed before a search; a few seconds saves a round trip per read on
            object storage; None never looks again (README "Guarantees").
        storage_options / **connect_kwargs: passed to ``lancedb.connect``.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()  # or "./smart_db", "s3://bucket/db"...
        >>> index = SmartIndex(tmp.name)  # the bundled all-MiniLM-L6-v2
        >>> index.add(
        ...     ["The red star is K7.", "The blue circle is P2.", "The red star was K9."],
        ...     ids=["a", "b", "c"],
        ...     metadatas=[{"year": 2021}, {"year": 2022}, {"year": 2019}],
        ... )
        ['a', 'b', 'c']
        >>> hits = index.search("which code labels the red star?", k=1, where={"year": {"$gte": 2020}})
        >>> [(hit.id, hit.metadata) for hit in hits]
        [('a', {'year': 2021})]
        >>> tmp.cleanup()
    """

    def __init__(
        self,
        uri: str = "./smart_db",
        encoder: Encoder | str | Path | None = None,
        table: str = "smart",
        *,
        lambda_pool: float | None = None,
        lambda_late: float | None = None,
        candidates: int = 100,
        write_batch_size: int = 1024,
        compression: str | None = None,
        ann_min_rows: int | None = DEFAULT_ANN_MIN_ROWS,
        ann_index_type: str = DEFAULT_ANN_INDEX,
        storage_options: Mapping[str, str] | None = None,
        read_consistency_interval: timedelta | None = DEFAULT_READ_CONSISTENCY,
        **connect_kwargs: Any,
    ) -> None:
        if lambda_pool is not None or lambda_late is not None:  # a bad weight fails before the model loads
            check_weights(1.0 if lambda_pool is None else lambda_pool, 1.0 if lambda_late is None else lambda_late)
        if ann_min_rows is not None:
            check_count("ann_min_rows", ann_min_rows)
        if ann_index_type not in ANN_INDEX_TYPES:
            raise ValueError(f"ann_index_type must be one of {ANN_INDEX_TYPES}, got {ann_index_type!r}")
        check_count("candidates", candidates)
        check_count("write_batch_size", write_batch_size)
        self.encoder = as_encoder(encoder)  # None: the bundled model; a str/path: load_encoder (hub id or directory)
        self.store = SmartStore(
            uri,
            table,
            self.encoder.fingerprint,
            compression=compression,
            storage_options=storage_options,
            read_consistency_interval=read_consistency_interval,
            **connect_kwargs,
        )
        saved = self.store.fusion_weights or (1.0, 1.0)  # saved by calibrate(save=True), else 1/1
        self.lambda_pool = saved[0] if lambda_pool is None else lambda_pool
        self.lambda_late = saved[1] if lambda_late is None else lambda_late
        check_weights(self.lambda_pool, self.lambda_late)
        self.candidates = candidates
        self.write_batch_size = write_batch_size
        self.last_truncated = 0
        self.ann_min_rows = ann_min_rows
        self.ann_index_type = ann_index_type
        self.token_fetch: TokenFetch = DEFAULT_TOKEN_FETCH

    @classmethod
    def upgrade(
        cls,
        uri: str,
        table: str,
        *,
        encoder: Encoder | str | Path | None = None,
        text_column: str = "text",
        vector_column: str = "vector",
        id_column: str = "id",
        storage_options: Mapping[str, str] | None = None,
        **options: Any,
    ) -> SmartIndex:
        """Upgrade an existing single-vector LanceDB table to SMART in place, and open it.

        The table (written by LanceDB's LlamaIndex or LangChain store, or plain LanceDB
        code) gains ``tokens`` / ``n_tokens`` columns; its rows stay, and its own store keeps
        reading and writing it. Rows that store writes later are searched with their pooled
        vector as their one token until ``upgrade`` runs again. ``options`` are
        :func:`smart_retrievers.upgrade.upgrade_table`'s (``metadata_column``,
        ``reencode_vectors``, ``compression``, ``batch_size``...), which also returns a report
        of what was done. The returned index searches the table; writes go through the
        user's store (``add`` raises :class:`~smart_retrievers.store.UpgradedTableError`).
        """
        encoder = as_encoder(encoder)
        upgrade_table(
            uri,
            table,
            encoder,
            text_column=text_column,
            vector_column=vector_column,
            id_column=id_column,
            storage_options=storage_options,
            **options,
        )
        return cls(uri, encoder=encoder, table=table, storage_options=storage_options)

    # ---- writes --------------------------------------------------------

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
        (:class:`~smart_retrievers.store.DuplicateIdError`); a new or empty table is always
        appended to. ``last_truncated`` tells how many inputs were cut at the encoder's
        max_length.
        """
        if isinstance(texts, str):
            raise TypeError("add() takes a sequence of texts, not a single string")
        texts = list(texts)
        ids, metadatas, record = self._text_records(texts, ids, metadatas, ref_ids)

        def encode(start: int, stop: int) -> list[Encoding]:
            return self.encoder.encode_documents(texts[start:stop], show_progress=False)

        self._write(len(texts), encode, record, metadatas, upsert=upsert, show_progress=show_progress)
        return ids

    upsert = add

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
        """Upsert items encoded elsewhere (by this index's encoder), with their texts. Returns the ids.

        For encodings computed once and written to several tables (benchmarks, distributed
        encoding): no forward pass here. The codec is fitted and applied, and the call committed,
        exactly as in :meth:`add`.
        """
        encodings, texts = list(encodings), list(texts)
        if len(encodings) != len(texts):
            raise ValueError(f"got {len(encodings)} encodings but {len(texts)} texts")
        ids, metadatas, record = self._text_records(texts, ids, metadatas, ref_ids)
        self._write(
            len(texts),
            lambda start, stop: encodings[start:stop],
            record,
            metadatas,
            upsert=upsert,
            show_progress=show_progress,
        )
        return ids

    def _text_records(
        self,
        texts: list[str],
        ids: Sequence[str] | None,
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        ref_ids: Sequence[str | None] | None,
    ) -> tuple[list[str], list[Mapping[str, Any] | None], Callable[[int, Encoding], Record]]:
        """Checked ids and metadatas, and the function that makes item i's row from its encoding."""
        ids = self._ids(len(texts), ids)
        metadatas = self._aligned("metadatas", len(texts), metadatas)
        ref_ids = self._aligned("ref_ids", len(texts), ref_ids)
        self._check_items(texts, ids, metadatas, ref_ids)

        def record(i: int, enc: Encoding) -> Record:
            return Record(id=ids[i], text=texts[i], encoding=enc, ref_id=ref_ids[i], metadata=dict(metadatas[i] or {}))

        return ids, metadatas, record

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

        Args:
            images: paths, ``file://``/``http(s)://``/``data:`` URIs, encoded bytes or PIL
                images (see :mod:`smart_retrievers.encoders.images`).
            ids / metadatas / ref_ids: as in :meth:`add`.
            texts: optional text per image (a caption, alt text, OCR...), stored in the
                ``text`` column for display, full-text search and framework nodes. It is
                not encoded: the row's vectors are the image's alone. Default "".
            uris: what to store in the ``image`` column per item. By default a path's
                absolute path, a URL or ``file://`` URI as given, a PIL image's
                ``filename``; bytes, ``data:`` URIs and in-memory PIL images store None
                unless given a uri here. Pixels are never stored.
            upsert: as in :meth:`add`.
            show_progress: a progress bar (default: for more than 256 images).

        Images are decoded and encoded at most ``IMAGE_WRITE_BATCH`` at a time and streamed
        into the call's one commit, so pixels and token states of the whole call are
        never in memory together. The call is atomic like :meth:`add`: an unreadable or
        corrupt image raises :class:`~smart_retrievers.encoders.ImageLoadError` naming its
        position and id, and the table is left as it was before the call.
        """
        if isinstance(images, IMAGE_TYPES):
            raise TypeError("add_images() takes a sequence of images, not a single image")
        images = list(images)
        self._image_encoder()
        missing = next((i for i, im in enumerate(images) if im is None), None)
        if missing is not None:
            raise TypeError(f"image {missing} is None")
        texts = self._aligned("texts", len(images), texts)
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

        Item i is an image row when ``images[i]`` is given (``texts[i]``, if any, is then
        its stored caption, not encoded; ``uris[i]`` what its ``image`` column holds, as
        in :meth:`add_images`), else a text row encoded from ``texts[i]`` (as in
        :meth:`add`). Images need a vision encoder. Frameworks use this to insert text and
        image nodes/documents together: all of them are written, or none.
        """
        if isinstance(texts, str):
            raise TypeError("add_items() takes a sequence of texts, not a single string")
        texts = list(texts)
        n = len(texts)
        images = self._aligned("images", n, images)
        ids = self._ids(n, ids)
        metadatas = self._aligned("metadatas", n, metadatas)
        ref_ids = self._aligned("ref_ids", n, ref_ids)
        uris = self._aligned("uris", n, uris)
        for i, (text, image) in enumerate(zip(texts, images)):
            if image is not None and not isinstance(image, IMAGE_TYPES):
                raise TypeError(
                    f"image {i} (id {ids[i]!r}) is {type(image).__name__}; expected a path, URI, bytes or PIL.Image"
                )
            if not isinstance(text, str) and (image is None or text is not None):
                raise TypeError(f"text {i} (id {ids[i]!r}) is {type(text).__name__}, not str")
        self._check_items(texts, ids, metadatas, ref_ids, captions=True)
        has_images = any(image is not None for image in images)
        encoder = self._image_encoder() if has_images else self.encoder
        if has_images:  # the encoder's ImagePolicy refuses a source before anything is encoded or written
            image_policy_of(encoder).check_all(images, ids=ids)

        def encode(start: int, stop: int) -> list[Encoding]:
            window = slice(start, stop)
            return encoder.encode_items(
                texts[window], images[window], show_progress=False, ids=ids[window], positions=range(start, stop)
            )

        def record(i: int, enc: Encoding) -> Record:
            if images[i] is None:
                return Record(
                    id=ids[i], text=texts[i], encoding=enc, ref_id=ref_ids[i], metadata=dict(metadatas[i] or {})
                )
            uri = uris[i] if uris[i] is not None else image_uri(images[i])
            return Record(
                id=ids[i],
                text=texts[i] or "",
                encoding=enc,
                ref_id=ref_ids[i],
                metadata=dict(metadatas[i] or {}),
                image=uri,
            )

        batch_size = min(self.write_batch_size, IMAGE_WRITE_BATCH) if has_images else self.write_batch_size
        self._write(n, encode, record, metadatas, upsert=upsert, show_progress=show_progress, batch_size=batch_size)
        return ids

    def _image_encoder(self) -> Any:
        """The encoder, checked to be able to encode images."""
        if not reads_images(self.encoder):
            raise TypeError(
                f"{type(self.encoder).__name__} cannot encode images; open the index with a vision encoder "
                "(smart_retrievers.encoders.QwenVLEncoder or ClipEncoder)"
            )
        return self.encoder

    def _write(
        self,
        n: int,
        encode: Callable[[int, int], list[Encoding]],
        record: Callable[[int, Encoding], Record],
        metadatas: Sequence[Mapping[str, Any] | None],
        *,
        upsert: bool,
        show_progress: bool | None,
        batch_size: int | None = None,
    ) -> None:
        """Encode in batches (default ``write_batch_size``) and write them all as one LanceDB commit."""
        batch_size = batch_size or self.write_batch_size

        def batches() -> Iterator[list[Record]]:
            for start in range(0, n, batch_size):
                stop = min(n, start + batch_size)
                yield [record(start + j, enc) for j, enc in enumerate(encode(start, stop))]

        self.add_records(
            batches(), upsert=upsert, total=n, show_progress=show_progress, metadatas=[m or {} for m in metadatas]
        )

    def add_records(
        self,
        batches: Iterable[Sequence[Record]],
        *,
        upsert: bool = True,
        total: int | None = None,
        show_progress: bool | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
    ) -> int:
        """Write rows encoded elsewhere (e.g. by distributed workers), streamed, as one LanceDB commit.

        ``batches`` yields lists of :class:`~smart_retrievers.store.Record` whose encodings
        come from this index's encoder (same fingerprint). The first batch fits the table's
        codec if it has none yet; every batch is then coded and written as in :meth:`add`
        (one commit, all rows or none; ``upsert=False`` appends). ``total`` sizes the progress
        bar; ``metadatas``, when known up front, lets field types be checked before the
        first batch. Returns the number of rows written.
        """
        self.last_truncated = 0
        written = 0

        def fitted() -> Iterator[Sequence[Record]]:
            nonlocal written
            show = progress_on(show_progress, total or 0)
            with tqdm(total=total, disable=not show, desc="Indexing", unit="doc") as bar:
                for records in batches:
                    encodings = [r.encoding for r in records]
                    if self.store.needs_codec:  # the first batch fits the table's codec
                        tokens = [e.tokens for e in encodings]
                        self.store.set_codec(fit_codec(self.store.compression, tokens, self.encoder))
                    self.last_truncated += sum(e.truncated for e in encodings)
                    yield records
                    written += len(records)
                    bar.update(len(records))

        try:
            self.store.write(fitted(), metadatas, upsert=upsert)
        except BaseException:
            if self.store.table is None:  # the codec fitted for a table that was never created
                self.store.codec = None
            raise
        if self.last_truncated:
            logger.warning(
                "%d of %d inputs were truncated at max_length=%d",
                self.last_truncated,
                written,
                self.encoder.max_length,
            )
        return written

    @staticmethod
    def _ids(n: int, ids: Sequence[str] | None) -> list[str]:
        if ids is None:
            return [uuid.uuid4().hex for _ in range(n)]
        ids = id_list(ids, "ids")  # a single string is refused, never split into characters
        if len(ids) != n:
            raise ValueError(f"got {n} items but {len(ids)} ids")
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dup = next(i for i in ids if i in seen or seen.add(i))
            raise ValueError(f"duplicate id {dup!r} in one call")
        return ids

    @staticmethod
    def _aligned(name: str, n: int, values: Sequence[Any] | None) -> list[Any]:
        return aligned(name, n, values)  # a single str or mapping is refused, never iterated

    @staticmethod
    def _check_items(
        texts: Sequence[Any],
        ids: Sequence[str],
        metadatas: Sequence[Any],
        ref_ids: Sequence[Any],
        *,
        captions: bool = False,
    ) -> None:
        """Check every item before anything is encoded or written; errors name the position and id.

        Texts are str of valid Unicode (``captions``: None too, for image items), each metadata a
        mapping (or None) of storable JSON (:func:`~smart_retrievers.validation.check_metadata`),
        each ref_id a non-empty str or None.
        """
        for i, text in enumerate(texts):
            if text is not None or not captions:
                check_text(text, i, ids[i])
        for i, metadata in enumerate(metadatas):
            check_metadata(metadata, i, ids[i])
        id_list(ref_ids, "ref_ids", allow_none=True)

    def delete(
        self, ids: Sequence[str] | None = None, *, ref_ids: Sequence[str] | None = None, where: Any = None
    ) -> int:
        """Delete by ids, by source-document ids (ref_ids) and/or by filter (ANDed); returns rows deleted.

        ``ids`` and ``ref_ids`` are lists (a single string is refused, not split into characters).
        A call with no condition, ``where={}`` or a filter matching every row is refused
        (``ValueError``): emptying the table takes an explicit :meth:`delete_all`.
        """
        return self.store.delete(ids=ids, ref_ids=ref_ids, where=where)

    def delete_all(self) -> int:
        """Delete every row, in one commit (the table and its codec stay); returns rows deleted."""
        return self.store.delete_all()

    # ---- upkeep ----------------------------------------------------------

    def optimize(
        self,
        *,
        cleanup_older_than: timedelta | None = timedelta(days=7),
        delete_unverified: bool = False,
        rebuild_index: bool = False,
        num_partitions: int | None = None,
    ) -> OptimizeReport:
        """Compact the table, drop old versions, and build or update the pooled ANN index.

        Call it after bulk loads and then every so often as writes accumulate (LanceDB's rule
        of thumb: after 100,000 changed rows or 20 write calls). It

        - merges small data files (every row and value is kept);
        - removes table versions older than ``cleanup_older_than`` (``timedelta(0)``: every
          version but the latest, only safe when no other process reads the table; None:
          LanceDB's default, 7 days);
        - builds the ANN index on the pooled ``vector`` column (``ann_index_type``, cosine)
          once the table holds ``ann_min_rows`` rows, or again with ``rebuild_index=True``
          (retrains its partitions, e.g. after the table grew many times over);
        - adds the rows written since the index was built to it.

        Until then, rows written after the last build are still found: the search covers
        them exhaustively and merges them with the index's hits. Returns what it did as an
        :class:`~smart_retrievers.store.OptimizeReport`.
        """
        return self.store.optimize(
            cleanup_older_than=cleanup_older_than,
            delete_unverified=delete_unverified,
            ann_min_rows=self.ann_min_rows,
            index_type=self.ann_index_type,
            num_partitions=num_partitions,
            rebuild_index=rebuild_index,
        )

    # ---- reads ---------------------------------------------------------

    def count(self, where: Any = None) -> int:
        """Number of rows (matching ``where`` if given)."""
        return self.store.count(where)

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored items for these ids, in the given order (missing ids are skipped; scores are 0)."""
        return [self._hit(row) for row in self.store.get(ids).to_pylist()]

    def rows(self, where: Any = None, *, batch_size: int = 2048) -> Iterator[Hit]:
        """Every stored item (matching ``where``), streamed in table order, without vectors (scores are 0)."""
        if self.store.table is None:
            return
        for batch in self.store.scan(META_COLUMNS, where=self.store.where_sql(where), batch_size=batch_size):
            yield from (self._hit(row) for row in batch.to_pylist())

    def search(
        self, query: str, k: int | None = None, *, options: SearchOptions | None = None, **settings: Any
    ) -> list[Hit]:
        """Search with SMART scoring.

        Args:
            query: the query text.
            k: number of hits (default 10).
            options: a :class:`~smart_retrievers.options.SearchOptions`; ``k`` and
                ``settings`` override its fields.
            **settings: any :class:`SearchOptions` field: ``where`` (metadata filter,
                applied before search), ``candidates`` (pooled candidates re-scored in
                "rerank" mode), ``mode`` ("rerank", "exhaustive" or "pooled"),
                ``lambda_pool`` / ``lambda_late`` and ``modality``. None means the
                index's default.
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        check_text(query, what="query")  # a lone surrogate: a clear error, not the tokenizer's
        opts = (options or SearchOptions()).updated(k=k, **settings)
        return self.search_encoded(self.encoder.encode_queries([query], show_progress=False)[0], options=opts)

    def search_image(
        self,
        image: ImageInput,
        k: int | None = None,
        *,
        text: str | None = None,
        options: SearchOptions | None = None,
        **settings: Any,
    ) -> list[Hit]:
        """Search with an image as the query (image-to-image or image-to-text retrieval).

        The image is encoded as a query (with the query instruction where the model
        takes one) by the index's vision encoder. ``text``, if given, is encoded with the
        image as one interleaved query (Qwen-VL encoders; CLIP/SigLIP take one or the
        other and raise). The other arguments are those of :meth:`search`. Each hit's
        ``modality`` says whether it is a text or an image row.
        """
        if not isinstance(image, IMAGE_TYPES):
            raise TypeError(f"image must be a path, URI, bytes or PIL.Image, got {type(image).__name__}")
        if text is not None and not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if text is not None:
            check_text(text, what="text")
        opts = (options or SearchOptions()).updated(k=k, **settings)
        query = self._image_encoder().encode_inputs(texts=[text], images=[image], query=True, show_progress=False)[0]
        return self.search_encoded(query, options=opts)

    def search_encoded(
        self, query: Encoding, k: int | None = None, *, options: SearchOptions | None = None, **settings: Any
    ) -> list[Hit]:
        """:meth:`search` for an already encoded query (text or image)."""
        opts = self.resolve(options, k=k, **settings)
        if self.store.table is None:  # nothing written yet: no fields to filter on, no hits
            return []
        where_sql = self.store.where_sql(opts.where)
        modality_sql = None if opts.modality is None else self.store.modality_sql(opts.modality)
        if modality_sql is not None:
            where_sql = f"({where_sql}) AND {modality_sql}" if where_sql else modality_sql
        if opts.mode == "exhaustive":
            return self._search_exhaustive(query, where_sql, opts)
        pooled_only = opts.mode == "pooled"
        n_candidates = opts.k if pooled_only else max(opts.k, opts.candidates)
        ann = {"nprobes": opts.nprobes, "refine_factor": opts.refine_factor, "ef": opts.ef, "flat": opts.flat}
        if pooled_only or self.token_fetch == "query":
            columns = [*META_COLUMNS, "vector", *([] if pooled_only else ["tokens"])]
            rows = self.store.search_pooled(query.pooled, n_candidates, where=where_sql, columns=columns, **ann)
        else:  # "take": the candidates' ids first, then only their rows' tokens
            found = self.store.search_pooled(
                query.pooled, n_candidates, where=where_sql, columns=[*META_COLUMNS, "vector"], with_row_id=True, **ann
            )
            tokens = self.store.take_rows(found.column("_rowid").to_pylist(), ["tokens"])
            rows = found.drop_columns(["_rowid"]).append_column("tokens", tokens.column("tokens"))
        if pooled_only:
            opts = opts.updated(lambda_pool=1.0, lambda_late=0.0)
        ranking = self._rank(query, rows, opts)
        meta = rows.select(META_COLUMNS).to_pylist()
        weights = (opts.lambda_pool, opts.lambda_late)
        return [
            self._hit(meta[i], ranking.fused[i], ranking.pooled[i], ranking.late[i], weights=weights)
            for i in ranking.order
        ]

    def resolve(self, options: SearchOptions | None = None, **settings: Any) -> SearchOptions:
        """``options`` with ``settings`` applied and every default taken from this index."""
        opts = (options or SearchOptions()).updated(**settings)
        return opts.resolved(candidates=self.candidates, lambda_pool=self.lambda_pool, lambda_late=self.lambda_late)

    def _rank(
        self, query: Encoding, rows: pa.Table | pa.RecordBatch, opts: SearchOptions, k: int | None = None
    ) -> Ranking:
        late = opts.lambda_late != 0
        return rank(
            query.pooled,
            query.tokens,
            vectors_block(rows.column("vector")),
            tokens_from_arrow(rows.column("tokens")) if late and len(rows) else None,
            lambda_pool=opts.lambda_pool,
            lambda_late=opts.lambda_late,
            k=opts.k if k is None else k,
            codec=self.store.codec,
        )

    def _search_exhaustive(self, query: Encoding, where_sql: str | None, opts: SearchOptions) -> list[Hit]:
        best: list[tuple[float, int, dict, float, float]] = []
        seen = 0
        for batch in self.store.scan([*META_COLUMNS, "vector", "tokens"], where=where_sql):
            ranking = self._rank(query, batch, opts)
            meta = batch.select(META_COLUMNS).to_pylist()
            best.extend(
                (float(ranking.fused[i]), seen + i, meta[i], float(ranking.pooled[i]), float(ranking.late[i]))
                for i in ranking.order
            )
            best = sorted(best, key=lambda b: (-b[0], b[1]))[: opts.k]
            seen += len(batch)
        return [self._hit(m, f, p, late, weights=(opts.lambda_pool, opts.lambda_late)) for f, _, m, p, late in best]

    @staticmethod
    def _hit(
        row: Mapping[str, Any],
        fused: Any = 0.0,
        pooled: Any = 0.0,
        late: Any = 0.0,
        *,
        weights: tuple[float, float] | None = None,
    ) -> Hit:
        return Hit(
            id=row["id"],
            text=row["text"],
            metadata=load_metadata(row.get("metadata")),
            score=float(fused),
            pooled_score=float(pooled),
            late_score=float(late),
            ref_id=row.get("ref_id"),
            image=row.get("image"),
            modality=row.get("modality") or "text",
            relevance=0.0 if weights is None else relevance(float(fused), *weights),
        )

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"SmartIndex(uri={self.store.uri!r}, table={self.store.table_name!r}, rows={self.count()}, encoder={self.encoder!r})"

    def explain(
        self,
        query: str,
        doc_id_or_hit: str | Hit,
        *,
        lambda_pool: float | None = None,
        lambda_late: float | None = None,
        image: ImageInput | None = None,
    ) -> Any:
        """Why a stored row matched ``query``: an :class:`~smart_retrievers.explain.Evidence`.

        ``doc_id_or_hit`` is a row id or a :class:`Hit` (its text is used). The row's text is
        re-encoded for exact per-token evidence (stored token states may be pooled or coded by
        the codec); each query token gets its best document token with the character span in
        the stored text, its cosine and its share of the late score (see
        :mod:`smart_retrievers.explain`). Weights default to the index's.

        An image row (vision encoder) is re-encoded from its stored ``image`` location, or from
        ``image`` when given (rows added from bytes or in-memory images store none); each match
        names a patch, and ``Evidence.heatmap_png()`` draws them over the image.
        """
        from .explain import explain_image, explain_text

        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        check_text(query, what="query")
        if isinstance(doc_id_or_hit, Hit):
            hit = doc_id_or_hit
        else:
            found = self.get([doc_id_or_hit])
            if not found:
                raise KeyError(f"no row with id {doc_id_or_hit!r} in table {self.store.table_name!r}")
            hit = found[0]
        weights = {
            "lambda_pool": self.lambda_pool if lambda_pool is None else lambda_pool,
            "lambda_late": self.lambda_late if lambda_late is None else lambda_late,
        }
        if hit.modality != "text" or hit.image is not None:
            source = image if image is not None else hit.image
            if source is None:
                raise ValueError(f"row {hit.id!r} is an image stored without a location: pass image= to explain it")
            return explain_image(self._image_encoder(), query, source, doc_id=hit.id, text=hit.text, **weights)
        if image is not None:
            raise ValueError(f"row {hit.id!r} is a text row: image= is for image rows")
        return explain_text(self.encoder, query, hit.text, doc_id=hit.id, **weights)

    def calibrate(
        self,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        *,
        grid: Sequence[Sequence[float]] | None = None,
        folds: int = 5,
        candidates: int | None = None,
        min_gain: float = 0.0,
        seed: int = 0,
        where: Any = None,
        save: bool = False,
        show_progress: bool | None = None,
    ) -> Any:
        """Choose ``lambda_pool`` / ``lambda_late`` for this table by cross-validated nDCG@10 on judged queries.

        Each query is searched once in "rerank" mode (its pooled top-``candidates`` with their
        pooled and late scores); every setting of ``grid`` (default
        :data:`~smart_retrievers.evaluation.calibrate.DEFAULT_GRID`: pooled only, late only and
        ratios between) then re-fuses those scores. See
        :func:`~smart_retrievers.evaluation.calibrate.calibrate_scores` for the folds and the rule
        that keeps the default 1/1 unless calibrating wins under cross-validation.

        Args:
            queries: query id -> text (ids not in ``qrels`` are ignored).
            qrels: query id -> {doc id (the index's row id): relevance}.
            grid / folds / min_gain / seed: as in :func:`calibrate_scores`.
            candidates: pooled candidates per query (default: the index's ``candidates``).
            where: a metadata filter applied to every query's search.
            save: store the chosen weights in the table (schema metadata); this index and any
                index opened on the table later without explicit weights then default to them.

        Returns:
            a :class:`~smart_retrievers.evaluation.calibrate.Calibration` (``.table()`` prints the report).
        """
        from .evaluation.calibrate import DEFAULT_GRID, CandidateScores, calibrate_scores

        missing = [qid for qid in qrels if qid not in queries]
        if missing:
            raise ValueError(f"{len(missing)} judged query id(s) have no text in queries, e.g. {missing[:3]}")
        qids = list(qrels)
        for qid in qids:
            check_text(queries[qid], what=f"query {qid!r}")
        n_candidates = self.candidates if candidates is None else candidates
        check_count("candidates", n_candidates)
        encoded = self.encoder.encode_queries([queries[q] for q in qids], show_progress=show_progress)
        scores = {}
        for qid, query in tqdm(
            list(zip(qids, encoded)), desc="Scoring candidates", disable=not progress_on(show_progress, len(qids))
        ):
            hits = self.search_encoded(
                query,
                k=n_candidates,
                mode="rerank",
                candidates=n_candidates,
                lambda_pool=1.0,
                lambda_late=1.0,
                where=where,
            )
            scores[qid] = CandidateScores(
                doc_ids=[h.id for h in hits],
                pooled=np.array([h.pooled_score for h in hits]),
                late=np.array([h.late_score for h in hits]),
            )
        result = calibrate_scores(
            scores,
            qrels,
            grid=DEFAULT_GRID if grid is None else grid,
            folds=folds,
            min_gain=min_gain,
            seed=seed,
            candidates=n_candidates,
        )
        if save:
            self.store.set_fusion_weights(
                result.lambda_pool,
                result.lambda_late,
                cv_ndcg_at_10=result.cv_selected,
                default_cv_ndcg_at_10=result.cv_ndcg[result.default],
                folds=folds,
                n_queries=result.n_queries,
            )
            self.lambda_pool, self.lambda_late = result.chosen
        return result

    def reindex_tokens(
        self, adapter_or_encoder: Any, *, batch_size: int = 1024, show_progress: bool | None = None
    ) -> int:
        """Re-encode the stored token states with another SMART adapter, keeping everything else.

        Use it after training an adapter (:mod:`smart_retrievers.training`): the table's
        token column is rebuilt with the adapter, and the index then searches with it.

        Args:
            adapter_or_encoder: a :class:`~smart_retrievers.adapter.SmartAdapter`, an
                adapter directory, None (back to the plain final-layer states), or an encoder
                that differs from the index's only by its adapter.
            batch_size: rows re-encoded (and held in memory) at a time.
            show_progress: a progress bar (default: for more than 256 rows).

        Every stored text is run through the encoder again (document prompt, same token
        policy); ids, ref_ids, texts, metadata and pooled vectors are kept exactly as
        stored. The new token column and the new fingerprint (adapter, token_dim) are
        written as one LanceDB overwrite commit: readers see the old table or the new
        one, never a mix, and a failure leaves the old version in place (older versions
        stay restorable until cleanup). The overwrite does not carry table indices over;
        they are logged and must be rebuilt. Image rows cannot be re-encoded from
        stored text yet: NotImplementedError, before anything is written.

        Returns:
            The number of rows re-encoded.
        """
        import copy

        if hasattr(adapter_or_encoder, "encode_documents"):
            encoder = adapter_or_encoder
        else:
            adapter = load_adapter(
                adapter_or_encoder,
                self.encoder.base_fingerprint,
                self.encoder.device,
                state_dim=getattr(self.encoder, "_state_dim", None),
            )
            encoder = copy.copy(self.encoder)  # shares the loaded model
            encoder.adapter = adapter
        old_fp, new_fp = self.store.fingerprint, dict(encoder.fingerprint)
        changed = sorted(
            k
            for k in set(old_fp) | set(new_fp)
            if k not in ("adapter", "token_dim", "model") and old_fp.get(k) != new_fp.get(k)
        )
        if changed:
            raise ValueError(
                f"reindex_tokens only swaps the adapter, but the new encoder also changes {changed}; build a new index for another model"
            )
        table = self.store.table
        images = 0 if table is None else table.count_rows("image IS NOT NULL OR modality <> 'text'")
        if images:
            raise NotImplementedError(
                f"reindex_tokens re-encodes stored texts; the table holds {images} image rows, which it cannot re-encode yet"
            )

        preset = self.store.compression
        codec = (
            None
            if preset == "none"
            else self._fit_stored(preset, lambda texts: encoder.encode_documents(texts, show_progress=False), encoder)
        )

        def transform(batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array]:
            encodings = encoder.encode_documents(batch.column("text").to_pylist(), show_progress=False)
            column = tokens_to_arrow([e.tokens for e in encodings], encoder.token_dim, codec)
            return column, pa.array(np.diff(column.offsets.to_numpy()).astype(np.int32))

        n_rows = self.store.replace_tokens(
            transform,
            new_fp,
            codec=codec,
            batch_size=batch_size,
            show_progress=show_progress,
            desc="Re-encoding tokens",
        )
        self.encoder = encoder
        return n_rows

    # ---- token codec -----------------------------------------------------

    @property
    def codec(self) -> TokenCodec | None:
        """The table's token codec (None: float16 token states, or not fitted yet)."""
        return self.store.codec

    def fit_codec(self, sample_texts: Sequence[str]) -> TokenCodec:
        """Fit the table's codec on ``sample_texts`` (encoded as documents) before the first write.

        Without it, the first :meth:`add` fits the codec on its own first batch (topped up
        with a built-in generic sample when that holds fewer than
        :data:`~smart_retrievers.codec.MIN_FIT_TOKENS` tokens). Later writes reuse it.
        """
        if self.store.table is not None:
            raise ValueError("the table already holds rows and a codec; use recompress() to change it")
        if self.store.compression == "none":
            raise ValueError("this index stores float16 token states (compression='none'); there is no codec to fit")
        texts = list(sample_texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("fit_codec() needs a non-empty sequence of texts")
        codec = fit_codec(
            self.store.compression, [e.tokens for e in self.encoder.encode_documents(texts)], self.encoder
        )
        self.store.set_codec(codec)
        return codec

    def recompress(
        self,
        compression: str = DEFAULT_COMPRESSION,
        *,
        batch_size: int = 1024,
        sample_rows: int = 1024,
        show_progress: bool | None = None,
    ) -> int:
        """Rewrite a float16 table's token states into ``compression``, without re-encoding.

        The codec is fitted on the stored token states of the first ``sample_rows`` rows,
        then every row's tokens are coded batch by batch, as one overwrite commit (readers
        see the old table or the new one; a failure leaves the old one). Returns the rows
        rewritten. A table that is already coded is refused: its float states are gone.
        """
        if compression == "none" or self.store.compression != "none":
            raise ValueError(
                f"recompress() codes a float16 table; this one is {self.store.compression!r} and "
                f"{compression!r} was asked (re-encode into a new table to change a codec)"
            )
        dim = self.encoder.token_dim
        codec = self._fit_stored(compression, None, self.encoder, sample_rows=sample_rows)

        def transform(batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array]:
            stored = tokens_from_arrow(batch.column("tokens"))
            column = tokens_to_arrow([stored.item(i).numpy() for i in range(len(stored))], dim, codec)
            return column, pa.array(np.diff(column.offsets.to_numpy()).astype(np.int32))

        if self.store.table is None:
            self.store.compression = compression
            return 0
        return self.store.replace_tokens(
            transform,
            self.store.fingerprint,
            codec=codec,
            batch_size=batch_size,
            show_progress=show_progress,
            desc="Compressing tokens",
        )

    def _fit_stored(self, preset: str, encode: Any, encoder: Any, *, sample_rows: int = 1024) -> TokenCodec | None:
        """Fit ``preset`` on the first ``sample_rows`` stored rows: their stored float states, or re-encoded texts."""
        first = next(iter(self.store.scan(["text", "tokens"], batch_size=sample_rows)), None)
        if first is None:
            return None
        if encode is None:
            stored = tokens_from_arrow(first.column("tokens"))
            tokens = [stored.item(i).numpy() for i in range(len(stored))]
        else:
            tokens = [e.tokens for e in encode(first.column("text").to_pylist())]
        return fit_codec(preset, tokens, encoder)


def load_metadata(raw: Any) -> dict[str, Any]:
    """A stored ``metadata`` value (JSON text, bytes, a mapping or None) as a dict, in the key order it was written in."""
    if raw is None:
        return {}
    if isinstance(raw, (bytes, str)):
        return restore_key_order(json.loads(raw))
    return restore_key_order(dict(raw))


def open_index(
    index: SmartIndex | None,
    uri: str | None,
    *,
    table: str | None = None,
    encoder: Any = None,
    owner: str = "this class",
    **index_kwargs: Any,
) -> SmartIndex:
    """``index`` when one is given (then nothing else may be), else a :class:`SmartIndex` opened at ``uri``.

    The one rule of every integration class built "on an open index, or on a uri": errors name ``owner``.
    """
    if index is not None:
        if uri is not None or table is not None or encoder is not None or index_kwargs:
            raise ValueError("pass either index= (an open SmartIndex) or uri=/table=/encoder=/index options, not both")
        if not isinstance(index, SmartIndex):
            raise TypeError(f"index must be a SmartIndex, got {type(index).__name__}")
        return index
    if uri is None:
        raise ValueError(f"{owner} needs uri= (a LanceDB directory or object-store URI) or index= (an open SmartIndex)")
    return SmartIndex(str(uri), encoder=encoder, table=table or "smart", **index_kwargs)
