"""``eval --plot``: the PNG exists, decodes and has the documented size; the plotted numbers are the eval's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from smart_retrievers.cli import main
from smart_retrievers.evaluation.plots import DPI, FIGSIZE, per_query_ndcg, recall_curve


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
    assert per_query_ndcg(ranking, qrels).tolist() == pytest.approx(
        [1 / np.log2(3), 1.0 * (1 + 1 / 2) / (1 + 1 / np.log2(3))]
    )
    assert recall_curve(ranking, qrels, [1, 2, 3]) == pytest.approx([0.25, 0.75, 1.0])
