"""``eval --plot``: the PNG exists, decodes and has the documented size; the plotted numbers are the eval's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from smart_retrievers.cli import main
from smart_retrievers.evaluation.metrics import ndcg_at_k, ndcg_per_query
from smart_retrievers.evaluation.plots import (
    BENCH_FIGSIZE,
    DPI,
    FIGSIZE,
    plot_latency_rows,
    plot_size_quality,
    recall_curve,
)


def test_eval_plot_writes_a_png(binding_beir_dir, tmp_path, capsys):
    out = tmp_path / "eval.png"
    assert main(["eval", str(binding_beir_dir), "--compression", "none", "--plot", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with Image.open(out) as image:
        image.load()  # decodes
        assert image.format == "PNG"
        assert image.size == (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # something was drawn


def test_plotted_values_are_the_metrics():
    qrels = {"a": {"d1": 1}, "b": {"d2": 1, "d3": 1}}
    ranking = {"a": ["d0", "d1"], "b": ["d3", "d9", "d2"]}
    per_query = ndcg_per_query(ranking, qrels)
    assert per_query == pytest.approx([1 / np.log2(3), 1.0 * (1 + 1 / 2) / (1 + 1 / np.log2(3))])
    assert np.mean(per_query) == pytest.approx(ndcg_at_k(ranking, qrels))
    assert recall_curve(ranking, qrels, [1, 2, 3]) == pytest.approx([0.25, 0.75, 1.0])


def _png(path, size) -> np.ndarray:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.size == size
        return np.asarray(image.convert("L"))


def test_benchmark_curves_write_pngs(tmp_path):
    """benchmarks/compression.py --plot and query_latency.py --plot: the rows their scripts print, drawn."""
    size = (int(BENCH_FIGSIZE[0] * DPI), int(BENCH_FIGSIZE[1] * DPI))
    rows = [
        {"set": s, "preset": p, "kb_per_doc_on_disk": kb, "exhaustive": nd, "single": 0.64}
        for s in ("scifact", "flickr")
        for p, kb, nd in (("none", 180.0, 0.697), ("pool2-pca256-sign", 7.0, 0.699), ("pca64-sign", 4.4, 0.685))
    ] + [{"set": "scifact", "preset": "pool2-pca256-sign", "kb_per_doc_on_disk": None, "exhaustive": 0.70}]
    out = plot_size_quality(rows, tmp_path / "size.png", default="pool2-pca256-sign", title="t")
    assert _png(out, size).std() > 10
    with pytest.raises(ValueError, match="no rows"):
        plot_size_quality(rows[-1:], tmp_path / "none.png")  # the fit-sample rows have no size

    entries = [
        {
            "compression": c,
            "rows": n,
            "pooled_ms": {"p50": 10.0 * f, "p95": 20.0 * f},
            "smart_rerank_ms": {"p50": 15.0 * f, "p95": 30.0 * f},
        }
        for c in ("none", "pool2-pca256-sign")
        for n, f in ((1000, 1.0), (5183, 1.5), (20000, 3.0))
    ]
    assert _png(plot_latency_rows(entries, tmp_path / "latency.png"), size).std() > 10
    with pytest.raises(ValueError, match="no latency"):
        plot_latency_rows([], tmp_path / "empty.png")
