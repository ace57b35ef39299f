"""Training data checks: a BEIR split is refused when its qrels are empty or inconsistent."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..evaluation.beir import BeirDataset, load_beir

__all__ = ["TrainingDataError", "load_training_data"]


class TrainingDataError(ValueError):
    """The training data cannot be used: empty, inconsistent or too small qrels."""


def load_training_data(beir_dir: str | Path, split: str = "train", *, skip_unknown: bool = False) -> BeirDataset:
    """Load a BEIR split for training, refusing empty or inconsistent qrels.

    Raises:
        FileNotFoundError: missing directory, file or split.
        TrainingDataError: malformed qrels, no positive judgement, judgements on unknown
            query/doc ids (unless ``skip_unknown``), or judged queries with empty text.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = load_beir(beir_dir, split)
        except ValueError as exc:
            dropped = "; ".join(str(w.message) for w in caught if "dropped" in str(w.message))
            reason = f"inconsistent qrels: {dropped}, and {exc}" if dropped else str(exc)
            raise TrainingDataError(f"cannot train on split {split!r}: {reason}") from exc
    for warning in caught:
        if "dropped" not in str(warning.message):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        elif not skip_unknown:
            raise TrainingDataError(
                f"inconsistent qrels: {warning.message}. Fix the qrels, or skip those judgements "
                "(skip_unknown=True, --skip-unknown)."
            )
        else:
            warnings.warn(str(warning.message), stacklevel=2)
    if not any(rel > 0 for judged in dataset.qrels.values() for rel in judged.values()):
        raise TrainingDataError(f"split {split!r} of {beir_dir} has no positive (relevance > 0) judgement")
    empty = [qid for qid in dataset.queries if not dataset.queries[qid].strip()]
    if empty:
        raise TrainingDataError(f"{len(empty)} judged queries have empty text, e.g. {empty[:5]}")
    return dataset
