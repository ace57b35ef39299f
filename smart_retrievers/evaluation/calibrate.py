"""Cross-validated calibration of the fusion weights ``lambda_pool`` / ``lambda_late`` / ``lambda_lex`` on judged queries.

Each query's candidates are scored **once** (their pooled and late cosines, and their lexical
term from a "hybrid" search: the pooled top-K ∪ the BM25 top-K); every weight setting of the
grid then only re-fuses ``lambda_pool * pooled + lambda_late * late + lambda_lex * lex`` and
re-sorts, so a grid of any size costs one scoring per query. A setting with ``lambda_lex = 0``
ranks the pooled candidates alone, as a search with it does ("rerank").

The queries are split into ``folds`` folds (shuffled with a fixed seed). For each fold the
setting with the best mean nDCG@10 on the *other* folds is chosen and scored on the held-out
fold; the mean of those held-out scores is the cross-validated nDCG@10 of calibrating at all
(``cv_selected``). The recommended setting is the one that is best on all queries, but only
when ``cv_selected`` beats the cross-validated nDCG@10 of the default (1, 1, λ_lex default) by
more than ``min_gain``: otherwise the default is kept. A setting that only wins on the queries it
was chosen on is therefore never recommended.

:func:`calibrate_scores` takes plain arrays;
:func:`~smart_retrievers.evaluation.index_calibration.calibrate_index` gets them from an index's own
searches (what :meth:`SmartIndex.calibrate <smart_retrievers.index.SmartIndex.calibrate>` runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..lexical import DEFAULT_LAMBDA_LEX
from ..options import check_lambda_lex
from .metrics import ndcg_at_k

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_LEX_GRID",
    "Calibration",
    "CandidateScores",
    "calibrate_scores",
    "fold_assignment",
    "missing_message",
]

Weights = tuple[float, float, float]
"""(lambda_pool, lambda_late, lambda_lex)."""

DEFAULT_WEIGHTS: Weights = (1.0, 1.0, DEFAULT_LAMBDA_LEX)
DEFAULT_GRID: tuple[tuple[float, float], ...] = (
    (1.0, 0.0),  # pooled only: the single-vector ranking of the candidates
    (1.0, 0.25),
    (1.0, 0.5),
    (1.0, 1.0),  # the default
    (1.0, 2.0),
    (1.0, 4.0),
    (0.0, 1.0),  # late only
)
"""(lambda_pool, lambda_late) settings tried by default, each with every ``lambda_lex`` of
:data:`DEFAULT_LEX_GRID`. Without the lexical term rankings depend only on the ratio
lambda_late / lambda_pool, so the grid spans ratios from 0 (pooled only) to infinity (late only)."""
DEFAULT_LEX_GRID: tuple[float, ...] = tuple(sorted({0.0, 0.25, DEFAULT_LAMBDA_LEX, 1.0}))
"""lambda_lex settings tried by default: 0 (no lexical term: "rerank"), the default
(:data:`~smart_retrievers.lexical.DEFAULT_LAMBDA_LEX`) and values around it."""


@dataclass(frozen=True)
class CandidateScores:
    """One query's scored candidates: their doc ids, pooled cosines and late (MaxSim) scores, aligned.

    ``lex`` is each candidate's lexical term (``Hit.lex_score``: trusted BM25 over the query's best;
    None: no lexical evidence). ``pooled_candidate`` marks the pooled top-K, the candidates a search
    without the lexical term ranks (None: all of them).
    """

    doc_ids: Sequence[str]
    pooled: np.ndarray
    late: np.ndarray
    lex: np.ndarray | None = None
    pooled_candidate: np.ndarray | None = None


@dataclass
class Calibration:
    """The result of a cross-validated λ calibration.

    Attributes:
        grid: the (lambda_pool, lambda_late, lambda_lex) settings tried, in order.
        cv_ndcg: setting -> mean over folds of its held-out nDCG@10 (every query held out once).
        fold_choices: per fold, ``{"fold", "n_queries", "chosen", "train_ndcg", "test_ndcg",
            "default_test_ndcg"}``: the setting chosen on the other folds and how it scored.
        cv_selected: mean held-out nDCG@10 of the per-fold choices (the honest estimate of calibrating).
        default: the default setting, (1, 1, :data:`~smart_retrievers.lexical.DEFAULT_LAMBDA_LEX`).
        best_all: the setting with the best nDCG@10 on all queries.
        chosen: ``best_all`` when ``cv_selected - cv_ndcg[default] > min_gain``, else ``default``.
        folds / n_queries / candidates / min_gain / seed: how it was run.
        lexical: whether any candidate had lexical evidence (without it, only the default
            ``lambda_lex`` is tried: every value ranks alike).
        missing_judged: judged documents absent from the index (each costs its queries nDCG under
            every setting); ``judged``: how many judged documents there are.
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
    lexical: bool = True
    missing_judged: list[str] = field(default_factory=list)
    judged: int = 0

    @property
    def lambda_pool(self) -> float:
        """The chosen lambda_pool."""
        return self.chosen[0]

    @property
    def lambda_late(self) -> float:
        """The chosen lambda_late."""
        return self.chosen[1]

    @property
    def lambda_lex(self) -> float:
        """The chosen lambda_lex."""
        return self.chosen[2]

    @property
    def kept_default(self) -> bool:
        """True when calibration kept the default weights."""
        return self.chosen == self.default

    def table(self) -> str:
        """A plain-text report: CV nDCG@10 of each setting against the default, then the per-fold choices."""
        base = self.cv_ndcg[self.default]
        lines = [
            f"{'lambda_pool':>11} {'lambda_late':>11} {'lambda_lex':>10} {'CV ndcg@10':>11} {'Δ vs default':>12}  note"
        ]
        for w in self.grid:
            notes = []
            if w == self.default:
                notes.append("default")
            no_lex = w[2] == 0 or not self.lexical
            if w[1] == 0 and no_lex:
                notes.append("pooled only")
            if w[0] == 0 and no_lex:
                notes.append("late only")
            if w == self.chosen:
                notes.append("CHOSEN")
            lines.append(
                f"{w[0]:>11g} {w[1]:>11g} {w[2]:>10g} {self.cv_ndcg[w]:>11.4f} {self.cv_ndcg[w] - base:>+12.4f}  "
                + ", ".join(notes)
            )
        lines.append("")
        lines.append(
            f"{'fold':>4} {'queries':>7} {'chosen (pool/late/lex)':>23} {'train':>8} {'test':>8} {'default':>8}"
        )
        for f in self.fold_choices:
            lines.append(
                f"{f['fold']:>4} {f['n_queries']:>7} {_key(f['chosen']):>23} {f['train_ndcg']:>8.4f} "
                f"{f['test_ndcg']:>8.4f} {f['default_test_ndcg']:>8.4f}"
            )
        lines.append("")
        lines.append(
            f"cross-validated nDCG@10 of calibrating: {self.cv_selected:.4f} vs {base:.4f} at the default "
            f"{_key(self.default)} ({self.cv_selected - base:+.4f}; {self.folds} folds, {self.n_queries} queries)"
        )
        if not self.lexical:
            lines.append(
                "no candidate had lexical evidence (short texts, or no full-text index): "
                f"lambda_lex kept at {self.default[2]:g}"
            )
        if self.missing_judged:
            lines.append(f"warning: {missing_message(self.missing_judged, self.judged)}")
        verdict = "kept the default" if self.kept_default else f"best on all queries: {_key(self.best_all)}"
        lines.append(
            f"chosen: lambda_pool={self.chosen[0]:g}, lambda_late={self.chosen[1]:g}, "
            f"lambda_lex={self.chosen[2]:g} ({verdict})"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (settings as ``"pool/late/lex"`` strings)."""
        return {
            "grid": [list(w) for w in self.grid],
            "cv_ndcg@10": {_key(w): v for w, v in self.cv_ndcg.items()},
            "ndcg@10_all_queries": {_key(w): v for w, v in self.full_ndcg.items()},
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
            "lexical": self.lexical,
            "judged_documents": self.judged,
            "missing_judged_documents": self.missing_judged,
        }


def _key(w: Weights) -> str:
    return "/".join(f"{x:g}" for x in w)


def missing_message(missing: Sequence[str], judged: int) -> str:
    """What :func:`~smart_retrievers.evaluation.index_calibration.calibrate_index` warns when judged documents are not
    in the index."""
    return (
        f"{len(missing)} of {judged} judged documents are not in the index (e.g. {list(missing[:3])}): "
        "their queries score lower under every setting; index the whole corpus with its ids as row ids"
    )


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


def _lambda_lex(value: float) -> float:
    check_lambda_lex(value)
    return float(value)


def _check_grid(grid: Sequence[Sequence[float]], lex_grid: Sequence[float]) -> list[Weights]:
    """The settings to try: each (pool, late) entry with every ``lex_grid`` value; (pool, late, lex) entries as given."""
    lexes = [_lambda_lex(x) for x in lex_grid]
    if not lexes:
        raise ValueError("lex_grid is empty: give at least one lambda_lex")
    out: list[Weights] = []
    for w in grid:
        if len(w) not in (2, 3):
            raise ValueError(f"each grid entry is (lambda_pool, lambda_late[, lambda_lex]), got {w!r}")
        lp, ll = float(w[0]), float(w[1])
        if not (np.isfinite(lp) and np.isfinite(ll)) or lp < 0 or ll < 0 or lp + ll == 0:
            raise ValueError(f"grid weights must be finite, non-negative and not both 0, got {w!r}")
        for lx in [_lambda_lex(w[2])] if len(w) == 3 else lexes:
            if (lp, ll, lx) not in out:
                out.append((lp, ll, lx))
    return out


def _ranked(scores: CandidateScores, weights: Weights, k: int) -> list[str]:
    fused = weights[0] * np.asarray(scores.pooled, dtype=np.float64) + weights[1] * np.asarray(
        scores.late, dtype=np.float64
    )
    if weights[2] and scores.lex is not None:
        fused = fused + weights[2] * np.asarray(scores.lex, dtype=np.float64)
    rows = np.arange(len(fused))
    if not weights[2] and scores.pooled_candidate is not None:  # no lexical term: the pooled candidates alone
        rows = np.flatnonzero(scores.pooled_candidate)
    order = rows[np.argsort(-fused[rows], kind="stable")][:k]  # ties keep the candidates' own order
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
    lex_grid: Sequence[float] = DEFAULT_LEX_GRID,
    folds: int = 5,
    min_gain: float = 0.0,
    seed: int = 0,
    candidates: int = 0,
) -> Calibration:
    """Choose (lambda_pool, lambda_late, lambda_lex) by ``folds``-fold cross-validated nDCG@10.

    Args:
        scores: query id -> its candidates' pooled, late and lexical scores (scored once).
        qrels: query id -> {doc id: relevance}; every judged query counts (one without
            candidates scores 0).
        grid: (lambda_pool, lambda_late) settings, each tried with every ``lex_grid`` value, or
            (lambda_pool, lambda_late, lambda_lex) settings tried as given; the default
            (1, 1, ``DEFAULT_LAMBDA_LEX``) is always added.
        lex_grid: the lambda_lex values for the (pool, late) entries; when no candidate has
            lexical evidence every value ranks alike, and only the default's is tried.
        folds: number of folds (>= 2, at most the number of judged queries).
        min_gain: how much the cross-validated nDCG@10 of calibrating must beat the
            default's before another setting is recommended.
        seed: the fold shuffle's seed.
        candidates: recorded in the result (how many candidates each query had).

    Within a fold, ties on the training nDCG go to the default, then to the earlier grid entry.
    """
    lexical = any(c.lex is not None and np.any(np.asarray(c.lex) > 0) for c in scores.values())
    settings = _check_grid(grid, lex_grid if lexical else [DEFAULT_WEIGHTS[2]])
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
        lexical=lexical,
    )
