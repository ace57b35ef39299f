"""The write doors' work: check every item before anything is encoded, turn encodings into rows,
and stream them into the store as one commit (fitting the table's codec on the first batch).

``SmartIndex.add`` / ``add_encodings`` / ``add_images`` / ``add_items`` / ``add_records`` are thin
verbs over these functions; what they guarantee (one call, one commit) is the store's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from ..encoders.images import IMAGE_TYPES, image_policy_of, image_uri
from ..encoding import Encoding
from ..progress import progress_on
from ..store import Record, SmartStore
from ..validation import aligned, check_metadata, check_text, id_list
from .upkeep import code_first_batch

logger = logging.getLogger(__name__)

__all__ = ["IMAGE_WRITE_BATCH", "Items", "check_items", "new_ids", "text_items", "write_records"]

IMAGE_WRITE_BATCH = 128
"""Most images encoded (and held in memory) at a time: image token states are large (hundreds per image)."""

Encode = Callable[[int, int], list[Encoding]]


def new_ids(n: int, ids: Sequence[str] | None) -> list[str]:
    """``ids`` checked (n distinct strings, never a single string split into characters), or n fresh uuids."""
    if ids is None:
        return [uuid.uuid4().hex for _ in range(n)]
    ids = id_list(ids, "ids")
    if len(ids) != n:
        raise ValueError(f"got {n} items but {len(ids)} ids")
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise ValueError(f"duplicate id {item_id!r} in one call")
        seen.add(item_id)
    return ids


def check_items(
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


@dataclass
class Items:
    """One write call's checked items: item i becomes a row by :meth:`record` from its encoding."""

    texts: list[Any]
    ids: list[str]
    metadatas: list[Mapping[str, Any] | None]
    ref_ids: list[str | None]
    images: list[Any] | None = None
    uris: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def has_images(self) -> bool:
        return self.images is not None and any(image is not None for image in self.images)

    def record(self, i: int, encoding: Encoding) -> Record:
        """Item i's row: a text row, or an image row whose ``image`` column holds its uri (and ``text`` its caption)."""
        image = None if self.images is None else self.images[i]
        metadata = dict(self.metadatas[i] or {})
        if image is None:
            return Record(
                id=self.ids[i], text=self.texts[i], encoding=encoding, ref_id=self.ref_ids[i], metadata=metadata
            )
        uri = self.uris[i] if self.uris is not None and self.uris[i] is not None else image_uri(image)
        return Record(
            id=self.ids[i],
            text=self.texts[i] or "",
            encoding=encoding,
            ref_id=self.ref_ids[i],
            metadata=metadata,
            image=uri,
        )


def text_items(
    texts: list[str],
    ids: Sequence[str] | None,
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    ref_ids: Sequence[str | None] | None,
) -> Items:
    """Checked text items (``add``, ``add_encodings``)."""
    n = len(texts)
    items = Items(texts, new_ids(n, ids), aligned("metadatas", n, metadatas), aligned("ref_ids", n, ref_ids))
    check_items(items.texts, items.ids, items.metadatas, items.ref_ids)
    return items


def mixed_items(
    texts: list[Any],
    images: Sequence[Any] | None,
    ids: Sequence[str] | None,
    metadatas: Sequence[Mapping[str, Any] | None] | None,
    ref_ids: Sequence[str | None] | None,
    uris: Sequence[str | None] | None,
) -> Items:
    """Checked text and image items (``add_items``): each image a readable kind, each text a str (or an image's None)."""
    n = len(texts)
    images_in = aligned("images", n, images)
    items = Items(
        texts,
        new_ids(n, ids),
        aligned("metadatas", n, metadatas),
        aligned("ref_ids", n, ref_ids),
        images=images_in,
        uris=aligned("uris", n, uris),
    )
    for i, (text, image) in enumerate(zip(items.texts, images_in)):
        if image is not None and not isinstance(image, IMAGE_TYPES):
            raise TypeError(
                f"image {i} (id {items.ids[i]!r}) is {type(image).__name__}; expected a path, URI, bytes or PIL.Image"
            )
        if not isinstance(text, str) and (image is None or text is not None):
            raise TypeError(f"text {i} (id {items.ids[i]!r}) is {type(text).__name__}, not str")
    check_items(items.texts, items.ids, items.metadatas, items.ref_ids, captions=True)
    return items


def item_encoder(items: Items, encoder: Any) -> Encode:
    """Encodes items ``[start, stop)`` (text rows as documents, image rows alone); refuses a forbidden image source first."""
    if items.images is None:  # text items only: documents
        return lambda start, stop: encoder.encode_documents(items.texts[start:stop], show_progress=False)
    images = items.images
    if items.has_images:  # the encoder's ImagePolicy refuses a source before anything is encoded or written
        image_policy_of(encoder).check_all(images, ids=items.ids)

    def encode(start: int, stop: int) -> list[Encoding]:
        window = slice(start, stop)
        return encoder.encode_items(
            items.texts[window],
            images[window],
            show_progress=False,
            ids=items.ids[window],
            positions=range(start, stop),
        )

    return encode


def batches_of(items: Items, encode: Encode, batch_size: int) -> Iterator[list[Record]]:
    """The items' rows, encoded ``batch_size`` at a time."""
    for start in range(0, len(items), batch_size):
        stop = min(len(items), start + batch_size)
        yield [items.record(start + j, enc) for j, enc in enumerate(encode(start, stop))]


def write_records(
    store: SmartStore,
    encoder: Any,
    batches: Iterable[Sequence[Record]],
    *,
    upsert: bool = True,
    total: int | None = None,
    show_progress: bool | None = None,
    metadatas: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[int, int]:
    """Stream ``batches`` into one store commit; the first batch fits the table's codec if it has none.

    Returns (rows written, inputs truncated at the encoder's max_length). A failure leaves the
    table as it was, and a codec fitted for a table that was never created is dropped.
    """
    written = truncated = 0

    def fitted() -> Iterator[Sequence[Record]]:
        nonlocal written, truncated
        with tqdm(total=total, disable=not progress_on(show_progress, total or 0), desc="Indexing", unit="doc") as bar:
            for records in batches:
                if store.needs_codec:  # the first batch fits the codec and comes back coded (pooled once)
                    records = code_first_batch(store, records, encoder)
                truncated += sum(r.encoding.truncated for r in records)
                yield records
                written += len(records)
                bar.update(len(records))

    try:
        store.write(fitted(), metadatas, upsert=upsert)
    except BaseException:
        if store.table is None:
            store.codec = None
        raise
    if truncated:
        logger.warning("%d of %d inputs were truncated at max_length=%d", truncated, written, encoder.max_length)
    return written, truncated
