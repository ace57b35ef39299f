"""Plots of an evaluation (``smart-retrievers eval --plot out.png``); needs matplotlib (``pip install 'smart-retrievers[plot]'``).

:func:`plot_comparison` draws one PNG with three panels from a :class:`~.compare.Comparison`:

1. nDCG@10 per method (bars, values written on them);
2. the per-query gain histogram: nDCG@10 of SMART rerank minus single-vector, per query;
3. recall@k curves, k = 1 .. the ranking depth, per method (log-scaled k).

matplotlib is imported inside the function (Agg backend, no display needed), so the package
imports without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import ndcg_at_k, recall_at_k

__all__ = ["FIGSIZE", "DPI", "per_query_ndcg", "plot_comparison", "recall_curve", "require_matplotlib"]

FIGSIZE = (15.0, 4.5)
DPI = 100
"""The PNG is FIGSIZE × DPI pixels: 1500 × 450."""

_LABELS = {"single": "single-vector", "smart-rerank": "SMART rerank", "smart-exhaustive": "SMART exhaustive"}


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or ImportError saying which extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(f"plots need matplotlib: pip install 'smart-retrievers[plot]' ({exc})") from None
    return plt


def per_query_ndcg(ranking: Mapping[str, list[str]], qrels: Mapping[str, Mapping[str, int]], k: int = 10) -> np.ndarray:
    """nDCG@k of each query of ``qrels`` (in its order)."""
    return np.array([ndcg_at_k({qid: ranking.get(qid, [])}, {qid: judged}, k) for qid, judged in qrels.items()])


def recall_curve(
    ranking: Mapping[str, list[str]], qrels: Mapping[str, Mapping[str, int]], ks: list[int]
) -> list[float]:
    """Mean recall@k for each k of ``ks``."""
    return [recall_at_k(ranking, qrels, k) for k in ks]


def plot_comparison(
    comparison: Any, qrels: Mapping[str, Mapping[str, int]], path: str | Path, *, title: str | None = None
) -> Path:
    """Write the three-panel PNG of ``comparison`` (which must carry its ``rankings``) to ``path``; returns the path."""
    plt = require_matplotlib()
    if not comparison.rankings:
        raise ValueError("this Comparison has no rankings to plot (it was built without them)")
    methods = list(comparison.rankings)
    fig, (bars, hist, curves) = plt.subplots(1, 3, figsize=FIGSIZE, dpi=DPI)
    colors = {m: c for m, c in zip(methods, ("#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c"))}

    values = [comparison.results[m]["ndcg@10"] for m in methods]
    drawn = bars.bar([_LABELS.get(m, m) for m in methods], values, color=[colors[m] for m in methods])
    bars.bar_label(drawn, fmt="%.4f")
    bars.set_ylim(0, min(1.0, max(values) * 1.2 + 0.02))
    bars.set_ylabel("nDCG@10 (mean over queries)")
    bars.set_title("nDCG@10 per method")

    base = per_query_ndcg(comparison.rankings[methods[0]], qrels)
    other = "smart-rerank" if "smart-rerank" in methods else methods[-1]
    gain = per_query_ndcg(comparison.rankings[other], qrels) - base
    hist.hist(gain, bins=np.linspace(-1.025, 1.025, 42), color=colors[other], edgecolor="white")
    hist.axvline(0, color="black", linewidth=0.8)
    better, worse = int((gain > 0).sum()), int((gain < 0).sum())
    hist.set_title(f"per-query gain: {_LABELS.get(other, other)} − {_LABELS.get(methods[0], methods[0])}")
    hist.set_xlabel("Δ nDCG@10 per query")
    hist.set_yscale("log")  # ties at 0 dwarf the gains and losses otherwise
    hist.set_ylabel("queries (log scale)")
    hist.text(
        0.02,
        0.95,
        f"better {better}, worse {worse}, tied {len(gain) - better - worse}\nmean Δ {gain.mean():+.4f}",
        transform=hist.transAxes,
        va="top",
        bbox={"facecolor": "white", "edgecolor": "#cccccc", "alpha": 0.9},
    )

    depth = max(len(r) for r in comparison.rankings[methods[0]].values())
    ks = sorted({k for k in (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500, 1000) if k <= depth} | {depth})
    for m in methods:
        curves.plot(
            ks,
            recall_curve(comparison.rankings[m], qrels, ks),
            marker="o",
            markersize=3,
            label=_LABELS.get(m, m),
            color=colors[m],
            linestyle="--" if m == "smart-exhaustive" else "-",  # it often overlays the rerank curve
        )
    curves.set_xscale("log")
    curves.set_xticks([k for k in (1, 10, 100, 1000) if k <= depth])
    curves.get_xaxis().set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
    curves.set_xlabel("k (documents retrieved, log scale)")
    curves.set_ylabel("recall@k (mean over queries)")
    curves.set_ylim(0, 1.02)
    curves.set_title("recall@k")
    curves.grid(True, alpha=0.3)
    curves.legend(loc="lower right")

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
