"""Image match evidence: every image token state maps to the patch it came from, and the heat map shows it.

The models are tiny and random (tiny_vision_models.py), so no query is known to match a
patch by meaning. What is known is where each image token comes from: painting one cell of
the grid changes that cell's token state far more than any other. The geometry is checked
that way for every cell (CLIP's center crop of a wide image, SigLIP's squash, Qwen-VL's
2x2 merged patches in a grid that is not square); then a query whose one token state *is* a
painted cell's state must put the whole heat map on that cell, and the PNG's hot pixels on it.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw
from tiny_vision_models import build_clip, build_qwen, build_siglip

from smart_retrievers import SmartIndex, TokenPolicy
from smart_retrievers.encoders import ClipEncoder, QwenVLEncoder
from smart_retrievers.encoding import Encoding
from smart_retrievers.explain import explain_image, explain_text

SIZE = (96, 64)  # wide: CLIP's center crop drops the sides, Qwen-VL's grid is 2 x 3 merged patches


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> dict[str, ClipEncoder | QwenVLEncoder]:
    root = tmp_path_factory.mktemp("tiny_vision_evidence")
    return {
        "clip": ClipEncoder(build_clip(root / "clip"), device="cpu"),
        "siglip": ClipEncoder(build_siglip(root / "siglip"), device="cpu"),
        "qwen2": QwenVLEncoder(build_qwen(root / "qwen2", 2), device="cpu"),
    }


@pytest.fixture(scope="module")
def base_image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(60, 200, (SIZE[1], SIZE[0], 3)).astype(np.uint8))


def _paint(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """``image`` with the inner 70% of ``box`` (fractions) painted magenta."""
    width, height = image.size
    x0, y0, x1, y1 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    mx, my = 0.15 * (x1 - x0), 0.15 * (y1 - y0)
    out = image.copy()
    ImageDraw.Draw(out).rectangle([x0 + mx, y0 + my, x1 - mx - 1, y1 - my - 1], fill=(255, 0, 255))
    return out


def _states(encoder, image: Image.Image) -> np.ndarray:
    return encoder.encode_images([image], show_progress=False)[0].tokens.astype(np.float32)


@pytest.mark.parametrize(
    ("name", "grid", "box"),
    [
        ("clip", (4, 4), (1 / 6, 0.0, 5 / 6, 1.0)),  # 32-px shortest edge, 32x32 center crop, 8-px patches
        ("siglip", (4, 4), (0.0, 0.0, 1.0, 1.0)),  # resized to 32x32, 8-px patches
        ("qwen2", (2, 3), (0.0, 0.0, 1.0, 1.0)),  # smart_resize to 56x84, 14-px patches merged 2x2
    ],
)
def test_each_token_state_maps_to_its_patch(encoders, base_image, name, grid, box):
    enc = encoders[name]
    loaded = enc._load_image(base_image, 0)
    g = enc.image_token_grid(loaded)
    assert (g.rows, g.cols) == grid and g.box == pytest.approx(box)
    before = _states(enc, loaded)
    assert len(g.cells) == len(before) and sorted(g.cells) == list(range(g.rows * g.cols))
    for cell in range(g.rows * g.cols):
        change = np.linalg.norm(_states(enc, _paint(loaded, g.cell_box(cell))) - before, axis=1)
        assert g.cells[int(change.argmax())] == cell, f"painting cell {cell} changed token {int(change.argmax())} most"


def test_qwen_kept_instruction_tokens_map_to_no_patch(encoders, base_image):
    enc = QwenVLEncoder(encoders["qwen2"].model_name_or_path, device="cpu", token_policy=TokenPolicy(drop_prompt=False))
    loaded = enc._load_image(base_image, 0)
    g = enc.image_token_grid(loaded)
    assert len(g.cells) == len(_states(enc, loaded))
    patches = [c for c in g.cells if c is not None]
    assert patches == list(range(6)) and len(g.cells) > 6  # the instruction's tokens come first, with no cell
    assert g.cells[0] is None


def _index_with_painted_image(tmp_path, enc, base_image, cell: int):
    """An index holding one image row "img" whose ``cell`` is painted; the token state of that cell."""
    loaded = enc._load_image(base_image, 0)
    g = enc.image_token_grid(loaded)
    painted = _paint(loaded, g.cell_box(cell))
    path = tmp_path / "painted.png"
    painted.save(path)
    index = SmartIndex(str(tmp_path / "db"), encoder=enc, compression="none")
    index.add_images([path], ids=["img"], texts=["a caption"])
    states = _states(enc, painted)
    token = int(np.linalg.norm(states - _states(enc, loaded), axis=1).argmax())
    assert g.cells[token] == cell
    return index, path, g, states[token]


@pytest.mark.parametrize(("name", "cell"), [("clip", 6), ("qwen2", 5), ("siglip", 9)])
def test_heat_map_lands_on_the_matching_patch(tmp_path, monkeypatch, encoders, base_image, name, cell):
    enc = encoders[name]
    index, path, g, state = _index_with_painted_image(tmp_path, enc, base_image, cell)

    def one_token_query(texts, **kwargs):  # the query's only token state is the painted cell's state
        return [Encoding(pooled=state / np.linalg.norm(state), tokens=state[None, :].astype(np.float16))]

    monkeypatch.setattr(enc, "encode_queries", one_token_query)
    ev = index.explain("where is the magenta square?", "img")
    assert ev.modality == "image" and ev.doc_id == "img" and ev.text == "a caption"
    assert ev.grid == (g.rows, g.cols)
    (match,) = ev.matches
    assert match.patch == divmod(cell, g.cols) and match.similarity == pytest.approx(1.0, abs=2e-3)
    assert match.box == pytest.approx(g.cell_box(cell)) and match.start is None
    heat = ev.heatmap()
    assert heat.shape == (g.rows, g.cols) and heat.sum() == pytest.approx(1.0)
    assert np.unravel_index(heat.argmax(), heat.shape) == divmod(cell, g.cols)
    assert ev.late == pytest.approx(1.0, abs=2e-3) and sum(m.share for m in ev.matches) == pytest.approx(1.0)

    png = Image.open(io.BytesIO(ev.heatmap_png(overlay=False)))
    assert png.format == "PNG" and png.size == Image.open(path).size == SIZE
    lit = np.asarray(png.convert("L")) > 0  # only the hot cell is coloured over black
    ys, xs = np.nonzero(lit)
    x0, y0, x1, y1 = match.box
    assert xs.min() == pytest.approx(x0 * SIZE[0], abs=1) and xs.max() + 1 == pytest.approx(x1 * SIZE[0], abs=1)
    assert ys.min() == pytest.approx(y0 * SIZE[1], abs=1) and ys.max() + 1 == pytest.approx(y1 * SIZE[1], abs=1)
    over = Image.open(io.BytesIO(ev.heatmap_png()))
    assert over.size == SIZE and over.mode == "RGB"


def test_image_evidence_forms(tmp_path, encoders, base_image):
    enc = encoders["clip"]
    index, path, g, _ = _index_with_painted_image(tmp_path, enc, base_image, 0)
    ev = index.explain("a red star", "img")
    assert len(ev.matches) == len(enc.token_spans("a red star", query=True)[0])
    assert [m.query_token for m in ev.matches] == ["a", "red", "star"]
    assert sum(m.share for m in ev.matches) == pytest.approx(1.0)
    assert ev.heatmap().sum() == pytest.approx(1.0)
    data = json.loads(json.dumps(ev.to_dict()))
    assert "image" not in data and data["grid"] == [4, 4] and data["modality"] == "image"
    spans = ev.top_spans(3)
    assert json.loads(json.dumps(spans)) == spans
    assert all(len(s["patch"]) == 2 and len(s["box"]) == 4 and s["start"] is None for s in spans)
    page = ev.to_html()
    assert page.count("data:image/png;base64,") == 1 and "patch" in page
    text = ev.render(color=False)
    assert "patch grid 4x4" in text and len([line for line in text.splitlines() if len(line) == 2 + 2 * 4]) >= 4
    # a row stored without a location (bytes) needs the image passed in
    buf = io.BytesIO()
    Image.open(path).save(buf, "PNG")
    index.add_images([buf.getvalue()], ids=["inline"])
    with pytest.raises(ValueError, match="pass image="):
        index.explain("a red star", "inline")
    assert index.explain("a red star", "inline", image=path).heatmap() == pytest.approx(ev.heatmap())
    with pytest.raises(ValueError, match="text row"):
        index.add(["a red star"], ids=["t"])
        index.explain("a red star", "t", image=path)


def test_image_evidence_needs_a_patch_grid(encoder, base_image):
    with pytest.raises(NotImplementedError):
        explain_image(encoder, "a red star", base_image)


def test_qwen_text_spans(encoders):
    """Qwen-VL's chat template: spans come from its keep mask and the user text's place in the prompt."""
    enc = encoders["qwen2"]
    text = "a red star in the night sky, and a blue square!"
    spans, truncated = enc.token_spans(text, query=False)
    assert not truncated and len(spans) == len(enc.encode_documents([text], show_progress=False)[0].tokens)
    words = [text[s:e].strip() for s, e in spans]
    assert "".join(words) == text.replace(" ", "")  # every kept token is a piece of the text, in order
    ev = explain_text(enc, "blue square", text)
    assert all(text[m.start : m.end] == m.doc_token for m in ev.matches)
    short = QwenVLEncoder(enc.model_name_or_path, device="cpu", max_length=len(enc.prepare_input("a").input_ids) + 3)
    spans, truncated = short.token_spans(text, query=False)
    assert truncated and len(spans) == len(short.encode_documents([text], show_progress=False)[0].tokens)
    assert max(e for _, e in spans) < len(text) / 2
