"""BEIR-layout dataset loading and information-retrieval metrics.

A BEIR dataset directory looks like::

    <name>/corpus.jsonl      {"_id": ..., "title": ..., "text": ..., ["image": "images/x.jpg"]}
    <name>/queries.jsonl     {"_id": ..., "text": ...}
    <name>/qrels/<split>.tsv header "query-id<TAB>corpus-id<TAB>score", then one row per judgement

The metrics follow the conventions BEIR gets from ``pytrec_eval`` (``ndcg_cut``,
``recall``) and from its own ``mrr``: linear gains, ideal DCG computed from the
query's judgements, and relevance ``<= 0`` treated as non-relevant. They average
over every query in ``qrels``; a query absent from the ranking scores 0 (BEIR's
pytrec_eval path would instead skip it, which only matters for incomplete runs).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .encoding import Encoding

__all__ = [
    "BeirDataset",
    "load_beir",
    "ndcg_at_k",
    "recall_at_k",
    "mrr_at_k",
    "evaluate_ranking",
    "encode_corpus",
]

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


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSONL file.

    Raises:
        ValueError: A line is not valid JSON, not an object, or has no ``_id``.
    """
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: malformed JSON: {exc.msg}") from exc
            if not isinstance(row, dict) or "_id" not in row:
                raise ValueError(f"{path}:{line_no}: expected a JSON object with an '_id' field")
            yield line_no, row


def _load_by_id(path: Path, parse: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Map ``str(row["_id"])`` to ``parse(row)`` for each row of a JSONL file.

    Raises:
        ValueError: Malformed line or duplicate id.
    """
    items: dict[str, Any] = {}
    for line_no, row in _read_jsonl(path):
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
                    f"{path}:{line_no}: expected 3 tab-separated fields "
                    f"(query-id, corpus-id, score), got {len(fields)}"
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


def _per_query_mean(
    ranking: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    k: int,
    score: Callable[[list[str], Mapping[str, int]], float],
) -> float:
    """Average ``score(top-k doc ids, judgements)`` over every query in ``qrels``.

    A query missing from ``ranking`` gets an empty ranking. Duplicate doc ids
    count once, at their first position (a pytrec_eval run cannot hold them).

    Raises:
        ValueError: ``k < 1`` or ``qrels`` is empty.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not qrels:
        raise ValueError("qrels is empty")
    total = 0.0
    for qid, judged in qrels.items():
        top_k = list(dict.fromkeys(ranking.get(qid, ())))[:k]
        total += score(top_k, judged)
    return total / len(qrels)


def _ndcg(top_k: list[str], judged: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranking with linear gain ``rel / log2(rank + 1)``."""
    dcg = sum(
        max(judged.get(doc_id, 0), 0) / math.log2(rank + 1)
        for rank, doc_id in enumerate(top_k, start=1)
    )
    ideal = sorted((rel for rel in judged.values() if rel > 0), reverse=True)[:k]
    idcg = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def _recall(top_k: list[str], judged: Mapping[str, int]) -> float:
    """Relevant docs in the top k over all relevant docs (0 when none is relevant)."""
    relevant = {doc_id for doc_id, rel in judged.items() if rel > 0}
    return len(relevant.intersection(top_k)) / len(relevant) if relevant else 0.0


def _reciprocal_rank(top_k: list[str], judged: Mapping[str, int]) -> float:
    """1 / rank of the first relevant doc in the top k, else 0."""
    return next(
        (1.0 / rank for rank, doc_id in enumerate(top_k, start=1) if judged.get(doc_id, 0) > 0),
        0.0,
    )


def ndcg_at_k(
    ranking: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    k: int = 10,
) -> float:
    """Mean nDCG@k as pytrec_eval's ``ndcg_cut`` computes it.

    DCG uses linear gain ``rel / log2(rank + 1)``; the ideal DCG sorts the
    query's judged relevances descending and cuts at ``k``. Relevance <= 0 and
    unjudged docs give no gain.

    Args:
        ranking: Query id -> doc ids, best first.
        qrels: Query id -> {doc id: relevance}; every query here is averaged.
        k: Rank cutoff (>= 1).
    """
    return _per_query_mean(ranking, qrels, k, lambda top_k, judged: _ndcg(top_k, judged, k))


def recall_at_k(
    ranking: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    k: int = 100,
) -> float:
    """Mean recall@k: relevant (relevance > 0) docs in the top k over all relevant docs.

    Args:
        ranking: Query id -> doc ids, best first.
        qrels: Query id -> {doc id: relevance}; every query here is averaged.
        k: Rank cutoff (>= 1).
    """
    return _per_query_mean(ranking, qrels, k, _recall)


def mrr_at_k(
    ranking: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    k: int = 10,
) -> float:
    """Mean reciprocal rank of the first relevant (relevance > 0) doc in the top k.

    Args:
        ranking: Query id -> doc ids, best first.
        qrels: Query id -> {doc id: relevance}; every query here is averaged.
        k: Rank cutoff (>= 1).
    """
    return _per_query_mean(ranking, qrels, k, _reciprocal_rank)


def evaluate_ranking(
    ranking: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
) -> dict[str, float]:
    """Return the standard BEIR summary: ``ndcg@10``, ``recall@100`` and ``mrr@10``."""
    return {
        "ndcg@10": ndcg_at_k(ranking, qrels, 10),
        "recall@100": recall_at_k(ranking, qrels, 100),
        "mrr@10": mrr_at_k(ranking, qrels, 10),
    }


def encode_corpus(
    dataset: BeirDataset,
    encoder: Any,
    *,
    batch_size: int | None = None,
    show_progress: bool | None = None,
) -> tuple[list[str], list[Encoding]]:
    """Encode every corpus document of a BEIR dataset, texts and images alike.

    Documents with an ``image`` (an absolute path, as :func:`load_beir` gives) go through
    ``encoder.encode_images`` (their title/text is not encoded); the others through
    ``encoder.encode_documents(doc_text)``. A mixed corpus is encoded in two passes and
    returned in corpus order. Images are decoded one encoder batch at a time.

    Args:
        dataset: a loaded BEIR dataset.
        encoder: a :class:`~smart_retrievers.encoder.SmartEncoder`, or a vision encoder
            (``smart_retrievers.vision``) when the corpus has images.
        batch_size: encoder batch size (default: the encoder's).
        show_progress: progress bars (default: the encoder's rule).

    Returns:
        ``(doc_ids, encodings)``, aligned, in corpus order.

    Raises:
        TypeError: the corpus has images but the encoder cannot encode images.
        ImageLoadError: an image cannot be read (naming its corpus position and doc id).
    """
    doc_ids = list(dataset.corpus)
    image_ids = [d for d in doc_ids if dataset.corpus[d].get("image")]
    text_ids = [d for d in doc_ids if not dataset.corpus[d].get("image")]
    if image_ids and not callable(getattr(encoder, "encode_images", None)):
        raise TypeError(
            f"{dataset.name} has {len(image_ids)} image documents but {type(encoder).__name__} cannot "
            "encode images; use a vision encoder (smart_retrievers.vision.load_encoder)"
        )
    encoded: dict[str, Encoding] = {}
    if text_ids:
        texts = [dataset.doc_text(d) for d in text_ids]
        encoded.update(zip(text_ids, encoder.encode_documents(texts, batch_size=batch_size, show_progress=show_progress)))
    if image_ids:
        from .vision.images import ImageLoadError

        images = [dataset.corpus[d]["image"] for d in image_ids]
        try:
            encoded.update(zip(image_ids, encoder.encode_images(images, batch_size=batch_size, show_progress=show_progress)))
        except ImageLoadError as exc:
            if exc.index is None:
                raise
            raise exc.at(doc_ids.index(image_ids[exc.index]), image_ids[exc.index]) from exc
    return doc_ids, [encoded[d] for d in doc_ids]
