"""BEIR-layout datasets: loading one qrels split, and encoding the corpus.

A BEIR dataset directory looks like::

    <name>/corpus.jsonl      {"_id": ..., "title": ..., "text": ..., ["image": "images/x.jpg"]}
    <name>/queries.jsonl     {"_id": ..., "text": ...}
    <name>/qrels/<split>.tsv header "query-id<TAB>corpus-id<TAB>score", then one row per judgement
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..encoders import reads_images

if TYPE_CHECKING:
    from ..encoding import Encoding

__all__ = ["BeirDataset", "encode_corpus", "load_beir", "read_jsonl"]

_CORPUS_FIELDS = {"_id", "title", "text", "image", "metadata"}


@dataclass
class BeirDataset:
    """A BEIR dataset restricted to one qrels split.

    Attributes:
        name: Dataset directory name.
        corpus: Doc id -> ``{"text": str, "title": str, "image": str | None,
            "metadata": dict}``; ``image`` is an absolute path.
        queries: Query id -> query text, only for queries judged in the split.
        qrels: Query id -> {doc id: relevance}.
    """

    name: str
    corpus: dict[str, dict]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def doc_text(self, doc_id: str) -> str:
        """Return ``"{title} {text}".strip()`` for a document (BEIR convention)."""
        doc = self.corpus[doc_id]
        return f"{doc['title']} {doc['text']}".strip()


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSONL file.

    Raises:
        ValueError: A line is not valid JSON or not a JSON object (naming file and line).
    """
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: malformed JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{line_no}: expected a JSON object")  # noqa: TRY004 (bad data, like malformed JSON)
            yield line_no, row


def _load_by_id(path: Path, parse: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Map ``str(row["_id"])`` to ``parse(row)`` for each row of a JSONL file.

    Raises:
        ValueError: Malformed line, a row without ``_id``, or a duplicate id.
    """
    items: dict[str, Any] = {}
    for line_no, row in read_jsonl(path):
        if "_id" not in row:
            raise ValueError(f"{path}:{line_no}: expected a JSON object with an '_id' field")
        item_id = str(row["_id"])
        if item_id in items:
            raise ValueError(f"{path}:{line_no}: duplicate _id {item_id!r}")
        items[item_id] = parse(row)
    return items


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (``query-id, corpus-id, score``; a header line is skipped).

    Raises:
        ValueError: A row does not have three fields or its score is not an integer.
    """
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if line_no == 1 and not fields[-1].strip().lstrip("-").isdigit():
                continue  # header, e.g. "query-id\tcorpus-id\tscore"
            if len(fields) != 3:
                raise ValueError(
                    f"{path}:{line_no}: expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}"
                )
            qid, doc_id, score = fields
            try:
                qrels.setdefault(qid, {})[doc_id] = int(score)
            except ValueError as exc:
                raise ValueError(f"{path}:{line_no}: score {score!r} is not an integer") from exc
    return qrels


def load_beir(path: str | Path, split: str = "test") -> BeirDataset:
    """Load a BEIR-layout dataset directory for one qrels split.

    Image paths in the corpus are resolved relative to the dataset directory.
    Judgements that reference unknown query or doc ids are dropped with a
    warning; queries not judged in the split are left out.

    Args:
        path: Dataset directory holding ``corpus.jsonl``, ``queries.jsonl`` and
            ``qrels/<split>.tsv``.
        split: Qrels split name, e.g. ``"test"``, ``"train"``, ``"dev"``.

    Raises:
        FileNotFoundError: The directory or one of its files is missing (for a
            missing split, the message lists the available ones).
        ValueError: A malformed line (with file and line number), or no usable
            judgements in the split.
    """
    root = Path(path).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"BEIR dataset directory not found: {root}")
    corpus_path = root / "corpus.jsonl"
    queries_path = root / "queries.jsonl"
    qrels_path = root / "qrels" / f"{split}.tsv"
    for required in (corpus_path, queries_path):
        if not required.is_file():
            raise FileNotFoundError(f"BEIR file not found: {required}")
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        raise FileNotFoundError(
            f"qrels split {split!r} not found: {qrels_path}; "
            f"available splits: {', '.join(splits) if splits else 'none'}"
        )

    def parse_doc(row: dict[str, Any]) -> dict[str, Any]:
        """Normalise a corpus row; extra fields are folded into ``metadata``."""
        metadata = dict(row.get("metadata") or {})
        metadata.update({k: v for k, v in row.items() if k not in _CORPUS_FIELDS})
        image = row.get("image")
        return {
            "text": row.get("text") or "",
            "title": row.get("title") or "",
            "image": str(root / image) if image else None,
            "metadata": metadata,
        }

    corpus = _load_by_id(corpus_path, parse_doc)
    all_queries = _load_by_id(queries_path, lambda row: row.get("text") or "")
    raw_qrels = _read_qrels(qrels_path)

    qrels: dict[str, dict[str, int]] = {}
    unknown_queries: set[str] = set()
    unknown_docs: set[str] = set()
    dropped = 0
    for qid, judged in raw_qrels.items():
        if qid not in all_queries:
            unknown_queries.add(qid)
            dropped += len(judged)
            continue
        known = {doc_id: rel for doc_id, rel in judged.items() if doc_id in corpus}
        unknown_docs.update(doc_id for doc_id in judged if doc_id not in corpus)
        dropped += len(judged) - len(known)
        if known:
            qrels[qid] = known
    if dropped:
        warnings.warn(
            f"{qrels_path}: dropped {dropped} judgement(s) referencing "
            f"{len(unknown_queries)} unknown query id(s) {sorted(unknown_queries)[:5]} and "
            f"{len(unknown_docs)} unknown doc id(s) {sorted(unknown_docs)[:5]}",
            stacklevel=2,
        )
    if not qrels:
        raise ValueError(f"{qrels_path}: no usable judgements for split {split!r}")

    queries = {qid: all_queries[qid] for qid in qrels}
    return BeirDataset(name=root.name, corpus=corpus, queries=queries, qrels=qrels)


def encode_corpus(
    dataset: BeirDataset,
    encoder: Any,
    *,
    batch_size: int | None = None,
    show_progress: bool | None = None,
) -> tuple[list[str], list[Encoding]]:
    """Encode every corpus document of a BEIR dataset, texts and images alike, in corpus order.

    A document with an ``image`` (an absolute path, as :func:`load_beir` gives) is encoded
    from its image alone, the others from their ``doc_text``: one ``encoder.encode_items``
    call, which encodes the texts in one pass and the images (decoded one batch at a time)
    in another.

    Args:
        dataset: a loaded BEIR dataset.
        encoder: an encoder from :mod:`smart_retrievers.encoders`; a vision encoder when
            the corpus has images.
        batch_size: encoder batch size (default: the encoder's).
        show_progress: progress bars (default: the encoder's rule).

    Returns:
        ``(doc_ids, encodings)``, aligned, in corpus order.

    Raises:
        TypeError: the corpus has images but the encoder cannot encode images.
        ImageLoadError: an image cannot be read (naming its corpus position and doc id).
    """
    doc_ids = list(dataset.corpus)
    images = [dataset.corpus[d].get("image") for d in doc_ids]
    n_images = sum(image is not None for image in images)
    if n_images and not reads_images(encoder):
        raise TypeError(
            f"{dataset.name} has {n_images} image documents but {type(encoder).__name__} cannot "
            "encode images; use a vision encoder (smart_retrievers.encoders.load_encoder)"
        )
    texts = [None if image is not None else dataset.doc_text(d) for d, image in zip(doc_ids, images)]
    return doc_ids, encoder.encode_items(texts, images, batch_size=batch_size, show_progress=show_progress, ids=doc_ids)
