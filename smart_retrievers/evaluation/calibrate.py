"""Cross-validated calibration of the fusion weights ``lambda_pool`` / ``lambda_late`` on judged queries.

Each query's candidates are scored **once** (their pooled and late cosines); every weight
setting of the grid then only re-fuses ``lambda_pool * pooled + lambda_late * late`` and
re-sorts, so a grid of any size costs one search per query.

The queries are split into ``folds`` folds (shuffled with a fixed seed). For each fold the
setting with the best mean nDCG@10 on the *other* folds is chosen and scored on the held-out
fold; the mean of those held-out scores is the cross-validated nDCG@10 of calibrating at all
(``cv_selected``). The recommended setting is the one that is best on all queries, but only
when ``cv_selected`` beats the cross-validated nDCG@10 of the default (1, 1) by more than
``min_gain``: otherwise the default is kept. A setting that only wins on the queries it was
chosen on is therefore never recommended.

:func:`calibrate_scores` takes plain arrays; :func:`calibrate_index` gets them from an index's own
search (what :meth:`SmartIndex.calibrate <smart_retrievers.index.SmartIndex.calibrate>` runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..progress import progress_on
from ..validation import check_count, check_text
from .metrics import ndcg_at_k

__all__ = ["DEFAULT_GRID", "Calibration", "CandidateScores", "calibrate_index", "calibrate_scores", "fold_assignment"]

Weights = tuple[float, float]

DEFAULT_WEIGHTS: Weights = (1.0, 1.0)
DEFAULT_GRID: tuple[Weights, ...] = (
    (1.0, 0.0),  # pooled only: the single-vector ranking of the candidates
    (1.0, 0.25),
    (1.0, 0.5),
    (1.0, 1.0),  # the default
    (1.0, 2.0),
    (1.0, 4.0),
    (0.0, 1.0),  # late only
)
"""(lambda_pool, lambda_late) settings tried by default. Rankings depend only on the ratio
lambda_late / lambda_pool, so the grid spans ratios from 0 (pooled only) to infinity (late only)."""


@dataclass(frozen=True)
class CandidateScores:
    """One query's scored candidates: their doc ids, pooled cosines and late (MaxSim) scores, aligned."""

    doc_ids: Sequence[str]
    pooled: np.ndarray
    late: np.ndarray


@dataclass
class Calibration:
    """The result of a cross-validated λ calibration.

    Attributes:
        grid: the (lambda_pool, lambda_late) settings tried, in order.
        cv_ndcg: setting -> mean over folds of its held-out nDCG@10 (every query held out once).
        fold_choices: per fold, ``{"fold", "n_queries", "chosen", "train_ndcg", "test_ndcg",
            "default_test_ndcg"}``: the setting chosen on the other folds and how it scored.
        cv_selected: mean held-out nDCG@10 of the per-fold choices (the honest estimate of calibrating).
        default: the default setting, (1, 1).
        best_all: the setting with the best nDCG@10 on all queries.
        chosen: ``best_all`` when ``cv_selected - cv_ndcg[default] > min_gain``, else ``default``.
        folds / n_queries / candidates / min_gain / seed: how it was run.
    """

    grid: list[Weights]
    cv_ndcg: dict[Weights, float]
    fold_choices: list[dict[str, Any]]
    cv_selected: float
    default: Weights
    best_all: Weights
    chosen: Weights
    folds: int
    n_queries: int
    candidates: int = 0
    min_gain: float = 0.0
    seed: int = 0
    full_ndcg: dict[Weights, float] = field(default_factory=dict)

    @property
    def lambda_pool(self) -> float:
        """The chosen lambda_pool."""
        return self.chosen[0]

    @property
    def lambda_late(self) -> float:
        """The chosen lambda_late."""
        return self.chosen[1]

    @property
    def kept_default(self) -> bool:
        """True when calibration kept the default weights."""
        return self.chosen == self.default

    def table(self) -> str:
        """A plain-text report: CV nDCG@10 of each setting against the default, then the per-fold choices."""
        base = self.cv_ndcg[self.default]
        lines = [f"{'lambda_pool':>11} {'lambda_late':>11} {'CV ndcg@10':>11} {'Δ vs 1/1':>9}  note"]
        for w in self.grid:
            notes = []
            if w == self.default:
                notes.append("default")
            if w[1] == 0:
                notes.append("pooled only")
            if w[0] == 0:
                notes.append("late only")
            if w == self.chosen:
                notes.append("CHOSEN")
            lines.append(
                f"{w[0]:>11g} {w[1]:>11g} {self.cv_ndcg[w]:>11.4f} {self.cv_ndcg[w] - base:>+9.4f}  {', '.join(notes)}"
            )
        lines.append("")
        lines.append(f"{'fold':>4} {'queries':>7} {'chosen (pool/late)':>19} {'train':>8} {'test':>8} {'test 1/1':>9}")
        for f in self.fold_choices:
            lp, ll = f["chosen"]
            lines.append(
                f"{f['fold']:>4} {f['n_queries']:>7} {f'{lp:g}/{ll:g}':>19} {f['train_ndcg']:>8.4f} "
                f"{f['test_ndcg']:>8.4f} {f['default_test_ndcg']:>9.4f}"
            )
        lines.append("")
        lines.append(
            f"cross-validated nDCG@10 of calibrating: {self.cv_selected:.4f} vs {base:.4f} at 1/1 "
            f"({self.cv_selected - base:+.4f}; {self.folds} folds, {self.n_queries} queries)"
        )
        verdict = (
            "kept the default"
            if self.kept_default
            else f"best on all queries: {self.best_all[0]:g}/{self.best_all[1]:g}"
        )
        lines.append(f"chosen: lambda_pool={self.chosen[0]:g}, lambda_late={self.chosen[1]:g} ({verdict})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (settings as ``"pool/late"`` strings)."""

        def key(w: Weights) -> str:
            return f"{w[0]:g}/{w[1]:g}"

        return {
            "grid": [list(w) for w in self.grid],
            "cv_ndcg@10": {key(w): v for w, v in self.cv_ndcg.items()},
            "ndcg@10_all_queries": {key(w): v for w, v in self.full_ndcg.items()},
            "folds": [{**f, "chosen": list(f["chosen"])} for f in self.fold_choices],
            "cv_selected": self.cv_selected,
            "default": list(self.default),
            "best_all": list(self.best_all),
            "chosen": list(self.chosen),
            "kept_default": self.kept_default,
            "n_folds": self.folds,
            "n_queries": self.n_queries,
            "candidates": self.candidates,
            "min_gain": self.min_gain,
            "seed": self.seed,
        }


def fold_assignment(n: int, folds: int, seed: int = 0) -> np.ndarray:
    """Fold number (0..folds-1) of each of ``n`` items: a seeded shuffle cut into near-equal folds."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if n < folds:
        raise ValueError(f"{n} judged queries cannot be split into {folds} folds")
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.arange(n) % folds
    return out


def _check_grid(grid: Sequence[Sequence[float]]) -> list[Weights]:
    out: list[Weights] = []
    for w in grid:
        if len(w) != 2:
            raise ValueError(f"each grid entry is (lambda_pool, lambda_late), got {w!r}")
        lp, ll = float(w[0]), float(w[1])
        if not (np.isfinite(lp) and np.isfinite(ll)) or lp < 0 or ll < 0 or lp + ll == 0:
            raise ValueError(f"grid weights must be finite, non-negative and not both 0, got {w!r}")
        if (lp, ll) not in out:
            out.append((lp, ll))
    return out


def _ranked(scores: CandidateScores, weights: Weights, k: int) -> list[str]:
    fused = weights[0] * np.asarray(scores.pooled, dtype=np.float64) + weights[1] * np.asarray(
        scores.late, dtype=np.float64
    )
    order = np.argsort(-fused, kind="stable")[:k]  # ties keep the candidates' own order
    return [scores.doc_ids[i] for i in order]


def ndcg_grid(
    scores: Mapping[str, CandidateScores], qrels: Mapping[str, Mapping[str, int]], grid: Sequence[Weights], k: int = 10
) -> np.ndarray:
    """nDCG@k of every (setting, query): shape (len(grid), len(qrels)), queries in ``qrels`` order.

    A judged query without candidates scores 0 under every setting.
    """
    qids = list(qrels)
    out = np.zeros((len(grid), len(qids)))
    for j, qid in enumerate(qids):
        cand = scores.get(qid)
        if cand is None or len(cand.doc_ids) == 0:
            continue
        one = {qid: qrels[qid]}
        for i, w in enumerate(grid):
            out[i, j] = ndcg_at_k({qid: _ranked(cand, w, k)}, one, k)
    return out


def calibrate_scores(
    scores: Mapping[str, CandidateScores],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    grid: Sequence[Sequence[float]] = DEFAULT_GRID,
    folds: int = 5,
    min_gain: float = 0.0,
    seed: int = 0,
    candidates: int = 0,
) -> Calibration:
    """Choose (lambda_pool, lambda_late) by ``folds``-fold cross-validated nDCG@10.

    Args:
        scores: query id -> its candidates' pooled and late scores (scored once).
        qrels: query id -> {doc id: relevance}; every judged query counts (one without
            candidates scores 0).
        grid: settings to try; the default (1, 1) is always added.
        folds: number of folds (>= 2, at most the number of judged queries).
        min_gain: how much the cross-validated nDCG@10 of calibrating must beat the
            default's before another setting is recommended.
        seed: the fold shuffle's seed.
        candidates: recorded in the result (how many candidates each query had).

    Within a fold, ties on the training nDCG go to the default, then to the earlier grid entry.
    """
    settings = _check_grid(grid)
    if DEFAULT_WEIGHTS not in settings:
        settings.append(DEFAULT_WEIGHTS)
    if not qrels:
        raise ValueError("qrels is empty: calibration needs judged queries")
    if min_gain < 0:
        raise ValueError(f"min_gain must be >= 0, got {min_gain}")
    matrix = ndcg_grid(scores, qrels, settings)
    fold_of = fold_assignment(matrix.shape[1], folds, seed)
    d = settings.index(DEFAULT_WEIGHTS)

    def best(columns: np.ndarray) -> int:
        means = matrix[:, columns].mean(axis=1)
        top = means.max()
        return d if means[d] >= top - 1e-12 else int(np.flatnonzero(means >= top - 1e-12)[0])

    choices = []
    for f in range(folds):
        test, train = np.flatnonzero(fold_of == f), np.flatnonzero(fold_of != f)
        i = best(train)
        choices.append(
            {
                "fold": f,
                "n_queries": len(test),
                "chosen": settings[i],
                "train_ndcg": float(matrix[i, train].mean()),
                "test_ndcg": float(matrix[i, test].mean()),
                "default_test_ndcg": float(matrix[d, test].mean()),
            }
        )
    # every query is held out exactly once: the mean over folds of fold means, weighted by fold size
    cv = {w: float(np.mean([matrix[i, fold_of == f].mean() for f in range(folds)])) for i, w in enumerate(settings)}
    cv_selected = float(np.mean([c["test_ndcg"] for c in choices]))
    best_all = settings[best(np.arange(matrix.shape[1]))]
    chosen = best_all if cv_selected - cv[DEFAULT_WEIGHTS] > min_gain else DEFAULT_WEIGHTS
    return Calibration(
        grid=settings,
        cv_ndcg=cv,
        fold_choices=choices,
        cv_selected=cv_selected,
        default=DEFAULT_WEIGHTS,
        best_all=best_all,
        chosen=chosen,
        folds=folds,
        n_queries=matrix.shape[1],
        candidates=candidates,
        min_gain=min_gain,
        seed=seed,
        full_ndcg={w: float(matrix[i].mean()) for i, w in enumerate(settings)},
    )


def calibrate_index(
    index: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    candidates: int,
    grid: Sequence[Sequence[float]] | None = None,
    folds: int = 5,
    min_gain: float = 0.0,
    seed: int = 0,
    where: Any = None,
    show_progress: bool | None = None,
) -> Calibration:
    """Calibrate the fusion weights of an index (a :class:`~smart_retrievers.index.SmartIndex`) on judged queries.

    Each query is searched once in "rerank" mode (its pooled top-``candidates`` with their pooled and
    late scores, weights 1/1); :func:`calibrate_scores` then re-fuses them for every setting of
    ``grid`` (default :data:`DEFAULT_GRID`).

    Args:
        queries: query id -> text (ids not in ``qrels`` are ignored).
        qrels: query id -> {doc id (the index's row id): relevance}.
        candidates: pooled candidates per query.
        grid / folds / min_gain / seed: as in :func:`calibrate_scores`.
        where: a metadata filter applied to every query's search.
    """
    missing = [qid for qid in qrels if qid not in queries]
    if missing:
        raise ValueError(f"{len(missing)} judged query id(s) have no text in queries, e.g. {missing[:3]}")
    qids = list(qrels)
    for qid in qids:
        check_text(queries[qid], what=f"query {qid!r}")
    check_count("candidates", candidates)
    encoded = index.encoder.encode_queries([queries[q] for q in qids], show_progress=show_progress)
    scores = {}
    bar = not progress_on(show_progress, len(qids))
    for qid, query in tqdm(list(zip(qids, encoded)), desc="Scoring candidates", disable=bar):
        hits = index.search_encoded(
            query, k=candidates, mode="rerank", candidates=candidates, lambda_pool=1.0, lambda_late=1.0, where=where
        )
        scores[qid] = CandidateScores(
            doc_ids=[h.id for h in hits],
            pooled=np.array([h.pooled_score for h in hits]),
            late=np.array([h.late_score for h in hits]),
        )
    return calibrate_scores(
        scores,
        qrels,
        grid=DEFAULT_GRID if grid is None else grid,
        folds=folds,
        min_gain=min_gain,
        seed=seed,
        candidates=candidates,
    )
