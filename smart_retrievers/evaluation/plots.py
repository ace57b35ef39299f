"""Plots of an evaluation (``smart-retrievers eval --plot out.png``) and of the benchmarks; needs matplotlib (``pip install 'smart-retrievers[plot]'``).

:func:`plot_comparison` draws one PNG with three panels from a :class:`~.compare.Comparison`:

1. nDCG@10 per method (bars, values written on them);
2. the per-query gain histogram: nDCG@10 of SMART rerank minus single-vector, per query;
3. recall@k curves, k = 1 .. the ranking depth, per method (log-scaled k).

The benchmarks' curves take the rows their scripts print: :func:`plot_size_quality`
(``benchmarks/compression.py --plot``: nDCG@10 against KB per document on disk, one panel per
set) and :func:`plot_latency_rows` (``benchmarks/query_latency.py --plot``: p50/p95 latency and
the SMART / pooled-only ratio against table rows).

matplotlib is imported inside the function (Agg backend, no display needed), so the package
imports without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import ndcg_per_query, recall_at_k

__all__ = [
    "BENCH_FIGSIZE",
    "DPI",
    "FIGSIZE",
    "plot_comparison",
    "plot_latency_rows",
    "plot_size_quality",
    "recall_curve",
    "require_matplotlib",
]

FIGSIZE = (15.0, 4.5)
DPI = 100
"""The PNG is FIGSIZE × DPI pixels: 1500 × 450."""
BENCH_FIGSIZE = (12.0, 4.5)
"""The benchmark curves' PNGs: 1200 × 450 pixels."""

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
    colors = {
        m: c for m, c in zip(methods, ("#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"))
    }

    values = [comparison.results[m]["ndcg@10"] for m in methods]
    drawn = bars.bar([_LABELS.get(m, m) for m in methods], values, color=[colors[m] for m in methods])
    bars.bar_label(drawn, fmt="%.4f")
    bars.set_ylim(0, min(1.0, max(values) * 1.2 + 0.02))
    bars.set_ylabel("nDCG@10 (mean over queries)")
    bars.set_title("nDCG@10 per method")

    base = np.array(ndcg_per_query(comparison.rankings[methods[0]], qrels))
    other = "smart-rerank" if "smart-rerank" in methods else methods[-1]
    gain = np.array(ndcg_per_query(comparison.rankings[other], qrels)) - base
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


def _save(fig: Any, plt: Any, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _plain_log_ticks(plt: Any, ax: Any) -> None:
    """Log-scale x ticks written as plain numbers (1,000 rather than 10^3; 3 rather than 3x10^0)."""
    plain = plt.matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    ax.get_xaxis().set_major_formatter(plain)
    ax.get_xaxis().set_minor_formatter(plt.matplotlib.ticker.NullFormatter())
    lo, hi = ax.get_xlim()
    if hi / lo < 30:  # under ~1.5 decades the major ticks are too few: label 1-2-5 steps
        ax.get_xaxis().set_major_locator(plt.matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))


def _place_labels(fig: Any, ax: Any, labels: list[str], xs: list[float], ys: list[float]) -> None:
    """Label each point beside it, trying four corners in turn so that no label covers another or a point."""
    renderer = fig.canvas.get_renderer()
    points = [ax.transData.transform((x, y)) for x, y in zip(xs, ys)]  # display pixels
    boxes = [(px - 6, py - 6, px + 6, py + 6) for px, py in points]
    legend = ax.get_legend()
    if legend is not None:
        e = legend.get_window_extent(renderer)
        boxes.append((e.x0, e.y0, e.x1, e.y1))
    corners = [
        ((5, 5), "left", "bottom"),
        ((5, -5), "left", "top"),
        ((-5, 5), "right", "bottom"),
        ((-5, -5), "right", "top"),
    ]
    for label, x, y in zip(labels, xs, ys):
        for offset, ha, va in corners:
            text = ax.annotate(label, (x, y), textcoords="offset points", xytext=offset, ha=ha, va=va, fontsize=8)
            e = text.get_window_extent(renderer)
            box = (e.x0, e.y0, e.x1, e.y1)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes):
                break
            text.remove()
        else:  # no free corner: the first one
            text = ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
            e = text.get_window_extent(renderer)
            box = (e.x0, e.y0, e.x1, e.y1)
        boxes.append(box)


def plot_size_quality(
    rows: list[Mapping[str, Any]], path: str | Path, *, default: str | None = None, title: str | None = None
) -> Path:
    """Size vs quality of token storage presets: one panel per set, nDCG@10 (exhaustive SMART) against
    KB per document on disk (log scale), one labelled point per preset; the float16 preset (``none``)
    and the single-vector baseline as dashed lines, the ``default`` preset starred.

    ``rows``: ``benchmarks/compression.py``'s rows (``set``, ``preset``, ``kb_per_doc_on_disk``,
    ``exhaustive``, ``single``); rows without a size (the fit-sample runs) are left out.
    """
    plt = require_matplotlib()
    rows = [r for r in rows if r.get("kb_per_doc_on_disk")]
    sets = list(dict.fromkeys(r["set"] for r in rows))
    if not sets:
        raise ValueError("no rows with a size on disk to plot")
    fig, axes = plt.subplots(1, len(sets), figsize=BENCH_FIGSIZE, dpi=DPI, squeeze=False)
    pending = []
    for ax, name in zip(axes[0], sets):
        mine = sorted((r for r in rows if r["set"] == name), key=lambda r: r["kb_per_doc_on_disk"])
        xs = [r["kb_per_doc_on_disk"] for r in mine]
        ys = [r["exhaustive"] for r in mine]
        front, best = [], -np.inf  # the presets no smaller preset beats
        for x, y in zip(xs, ys):
            if y > best:
                front.append((x, y))
                best = y
        ax.step(
            *zip(*front), where="post", color="#1f77b4", alpha=0.4, linewidth=1.2, label="best at this size or less"
        )
        for r, x, y in zip(mine, xs, ys):
            star = r["preset"] == default
            ax.scatter(
                [x],
                [y],
                s=140 if star else 36,
                marker="*" if star else "o",
                color="#d62728" if star else "#1f77b4",
                zorder=3,
                label="default preset" if star else None,
            )
        pending.append((ax, [r["preset"] for r in mine], xs, ys))
        single = mine[0].get("single")
        if single is not None:
            ax.axhline(single, color="#7f7f7f", linestyle=":", linewidth=1.2, label=f"single-vector {single:.4f}")
        float16 = next((r["exhaustive"] for r in mine if r["preset"] == "none"), None)
        if float16 is not None:
            ax.axhline(float16, color="#ff7f0e", linestyle="--", linewidth=1, label=f"float16 tokens {float16:.4f}")
        ax.set_xscale("log")
        _plain_log_ticks(plt, ax)
        ax.set_xlabel("KB per document on disk (everything included, log scale)")
        ax.set_ylabel("nDCG@10 (exhaustive SMART)")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()  # labels are placed where the axes end up
    for args in pending:
        _place_labels(fig, *args)
    return _save(fig, plt, path)


def plot_latency_rows(entries: list[Mapping[str, Any]], path: str | Path, *, title: str | None = None) -> Path:
    """Query latency against table rows: p50 (lines) and p95 (dotted) of SMART rerank and
    pooled-only per compression preset, and the SMART / pooled-only p50 ratio.

    ``entries``: ``benchmarks/query_latency.py``'s entries (``compression``, ``rows``,
    ``pooled_ms`` and ``smart_rerank_ms`` with ``p50`` / ``p95``).
    """
    plt = require_matplotlib()
    if not entries:
        raise ValueError("no latency entries to plot")
    presets = list(dict.fromkeys(e["compression"] for e in entries))
    colors = dict(zip(presets, ("#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b")))
    fig, (lat, ratio) = plt.subplots(1, 2, figsize=BENCH_FIGSIZE, dpi=DPI)
    for preset in presets:
        mine = sorted((e for e in entries if e["compression"] == preset), key=lambda e: e["rows"])
        rows = [e["rows"] for e in mine]
        for key, label, marker in (("smart_rerank_ms", "SMART rerank@100", "o"), ("pooled_ms", "pooled only", "s")):
            style = "-" if key == "smart_rerank_ms" else "--"
            lat.plot(
                rows,
                [e[key]["p50"] for e in mine],
                linestyle=style,
                marker=marker,
                color=colors[preset],
                label=f"{label}, {preset} (p50)",
            )
            lat.plot(
                rows, [e[key]["p95"] for e in mine], linestyle=":", marker=marker, color=colors[preset], alpha=0.45
            )
        ratio.plot(
            rows,
            [e["smart_rerank_ms"]["p50"] / e["pooled_ms"]["p50"] for e in mine],
            marker="o",
            color=colors[preset],
            label=preset,
        )
    lat.plot([], [], linestyle=":", color="#7f7f7f", label="p95 (dotted, same colours)")
    for ax in (lat, ratio):
        ax.set_xscale("log")
        _plain_log_ticks(plt, ax)
        ax.set_xlabel("rows in the table (log scale)")
        ax.grid(True, alpha=0.3)
    lat.set_ylabel("ms per query (warm, query encoding included)")
    lat.set_ylim(bottom=0)
    lat.set_title("search latency, k=10")
    lat.legend(fontsize=8, loc="best", framealpha=0.85)
    ratio.axhline(1.0, color="#7f7f7f", linewidth=0.8)
    ratio.set_ylabel("SMART p50 / pooled-only p50")
    ratio.set_ylim(bottom=0)
    ratio.set_title("cost of the late-interaction step")
    ratio.legend(fontsize=8, title="compression")
    if title:
        fig.suptitle(title)
    return _save(fig, plt, path)
