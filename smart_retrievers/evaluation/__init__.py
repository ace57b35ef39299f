"""Evaluation on BEIR-layout datasets: loading, encoding, IR metrics and the single-vector vs SMART comparison.

* :mod:`.beir`: :func:`load_beir` / :class:`BeirDataset` and :func:`encode_corpus`;
* :mod:`.metrics`: :func:`ndcg_at_k` (:func:`ndcg_per_query`), :func:`recall_at_k`, :func:`mrr_at_k`, :func:`evaluate_ranking`;
* :mod:`.compare`: :func:`compare` (what ``smart-retrievers eval`` reports) and :class:`Comparison`.
* :mod:`.calibrate`: cross-validated λ calibration on scored candidates (``SmartIndex.calibrate``);
* :mod:`.index_calibration`: an index's judged queries scored for :mod:`.calibrate`;
* :mod:`.plots`: ``eval --plot`` (matplotlib, extra ``[plot]``; imported only when used).
"""

from .beir import BeirDataset, encode_corpus, load_beir
from .compare import METHODS, Comparison, compare
from .metrics import evaluate_ranking, mrr_at_k, ndcg_at_k, ndcg_per_query, recall_at_k

__all__ = [
    "METHODS",
    "BeirDataset",
    "Comparison",
    "compare",
    "encode_corpus",
    "evaluate_ranking",
    "load_beir",
    "mrr_at_k",
    "ndcg_at_k",
    "ndcg_per_query",
    "recall_at_k",
]
