"""Calibrating an index's fusion weights: each judged query's candidates scored by the index's own searches,
then :func:`~smart_retrievers.evaluation.calibrate.calibrate_scores` (what ``SmartIndex.calibrate`` runs)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..lexical import DEFAULT_LAMBDA_LEX
from ..options import DEFAULT_TEXT_CANDIDATES
from ..progress import progress_on
from ..validation import check_count, check_text
from .calibrate import DEFAULT_GRID, DEFAULT_LEX_GRID, Calibration, CandidateScores, calibrate_scores, missing_message

__all__ = ["calibrate_index", "candidate_scores", "missing_documents"]


def calibrate_index(
    index: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    candidates: int,
    grid: Sequence[Sequence[float]] | None = None,
    lex_grid: Sequence[float] = DEFAULT_LEX_GRID,
    folds: int = 5,
    min_gain: float = 0.0,
    seed: int = 0,
    where: Any = None,
    show_progress: bool | None = None,
) -> Calibration:
    """Calibrate the fusion weights of an index (a :class:`~smart_retrievers.index.SmartIndex`) on judged queries.

    Each query is encoded once and searched twice: "rerank" (its pooled top-``candidates``, the
    candidates of a search without the lexical term) and "hybrid" (those ∪ the BM25
    top-``candidates``, with their lexical term); :func:`calibrate_scores` then re-fuses the
    candidates' pooled, late and lexical scores for every setting of ``grid`` (default
    :data:`DEFAULT_GRID`) × ``lex_grid``. Judged documents missing from the index are warned
    about (``UserWarning``) and listed in the result.

    Args:
        queries: query id -> text (ids not in ``qrels`` are ignored).
        qrels: query id -> {doc id (the index's row id): relevance}.
        candidates: pooled (and full-text) candidates per query.
        grid / lex_grid / folds / min_gain / seed: as in :func:`calibrate_scores`.
        where: a metadata filter applied to every query's search.
    """
    missing = [qid for qid in qrels if qid not in queries]
    if missing:
        raise ValueError(f"{len(missing)} judged query id(s) have no text in queries, e.g. {missing[:3]}")
    qids = list(qrels)
    for qid in qids:
        check_text(queries[qid], what=f"query {qid!r}")
    check_count("candidates", candidates)
    judged = list(dict.fromkeys(doc for qid in qids for doc in qrels[qid]))
    absent = missing_documents(index, judged)
    if absent:
        warnings.warn(missing_message(absent, len(judged)), UserWarning, stacklevel=3)
    encoded = index.encoder.encode_queries([queries[q] for q in qids], show_progress=show_progress)
    scores = {}
    bar = not progress_on(show_progress, len(qids))
    for qid, query in tqdm(list(zip(qids, encoded)), desc="Scoring candidates", disable=bar):
        scores[qid] = candidate_scores(index, query, queries[qid], candidates=candidates, where=where)
    result = calibrate_scores(
        scores,
        qrels,
        grid=DEFAULT_GRID if grid is None else grid,
        lex_grid=lex_grid,
        folds=folds,
        min_gain=min_gain,
        seed=seed,
        candidates=candidates,
    )
    result.missing_judged, result.judged = absent, len(judged)
    return result


def candidate_scores(index: Any, query: Any, text: str, *, candidates: int, where: Any = None) -> CandidateScores:
    """One encoded query's candidates in ``index``: the pooled top-``candidates`` in "rerank" order, then
    the full-text candidates a "hybrid" search adds, with their pooled, late and lexical scores."""
    common = {"candidates": candidates, "lambda_pool": 1.0, "lambda_late": 1.0, "where": where}
    pooled = index.search_encoded(query, k=candidates, mode="rerank", **common)
    hybrid = index.search_encoded(
        query,
        k=2 * candidates,  # every row of the union
        mode="hybrid",
        text_candidates=DEFAULT_TEXT_CANDIDATES,  # what a default search adds
        lambda_lex=DEFAULT_LAMBDA_LEX,  # any value > 0: the candidates and lexical terms do not depend on it
        text=text,
        **common,
    )
    lex = {h.id: h.lex_score for h in hybrid}
    pooled_ids = {h.id for h in pooled}
    hits = pooled + [h for h in hybrid if h.id not in pooled_ids]
    return CandidateScores(
        doc_ids=[h.id for h in hits],
        pooled=np.array([h.pooled_score for h in hits]),
        late=np.array([h.late_score for h in hits]),
        lex=np.array([lex.get(h.id, 0.0) for h in hits]),
        pooled_candidate=np.arange(len(hits)) < len(pooled),
    )


def missing_documents(index: Any, doc_ids: Sequence[str], chunk: int = 1000) -> list[str]:
    """The ``doc_ids`` that are not rows of ``index`` (looked up ``chunk`` ids at a time)."""
    found: set[str] = set()
    for start in range(0, len(doc_ids), chunk):
        part = doc_ids[start : start + chunk]
        found.update(index.store.get(part, columns=["id"]).column("id").to_pylist())
    return [d for d in doc_ids if d not in found]
