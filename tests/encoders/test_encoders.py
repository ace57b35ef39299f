"""The encoders package: the shared base, encode_items, reads_images, the registry and lazy imports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_vision_models import build_clip, drawn_images

import smart_retrievers.encoders as encoders
from smart_retrievers.encoders import (
    BaseEncoder,
    ClipEncoder,
    ImageLoadError,
    QwenVLEncoder,
    SmartEncoder,
    VisionEncoder,
    reads_images,
)
from smart_retrievers.encoders.base import check_texts, progress_on, states_to_encodings, tokenizer_limit
from smart_retrievers.encoding import Encoder, Encoding

TEXTS = ["a red star in the night sky", "two children play with a ball on the grass", "A black dog ."]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> ClipEncoder:
    return ClipEncoder(build_clip(tmp_path_factory.mktemp("clip") / "clip"), device="cpu", batch_size=2)


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return drawn_images(3)


def _same(a: Encoding, b: Encoding) -> None:
    assert a.modality == b.modality and a.truncated == b.truncated
    np.testing.assert_allclose(a.pooled, b.pooled, atol=1e-5)
    np.testing.assert_allclose(a.tokens.astype(np.float32), b.tokens.astype(np.float32), atol=2e-3)


# ---- lazy exports (import lightness: tests/test_import_time.py) ---------------


def test_lazy_exports_resolve_to_their_modules():
    for name in encoders.__all__:
        value = getattr(encoders, name)
        assert value is not None
    assert encoders.SmartEncoder.__module__ == "smart_retrievers.encoders.text"
    assert encoders.ImageLoadError.__module__ == "smart_retrievers.encoders.image_policy"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        encoders.Nope  # noqa: B018
    from smart_retrievers import Encoding as PublicEncoding
    from smart_retrievers import SmartEncoder as PublicSmartEncoder
    from smart_retrievers import TokenPolicy

    assert (
        PublicSmartEncoder is SmartEncoder
        and PublicEncoding is Encoding
        and TokenPolicy.__module__ == "smart_retrievers.encoding"
    )


def test_registry_maps_model_types_to_classes():
    assert encoders.model_types_of("clip:ClipEncoder") == ("clip", "siglip", "siglip2")
    assert encoders.model_types_of("qwen_vl:QwenVLEncoder") == ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
    from smart_retrievers.encoders import clip as clip_module
    from smart_retrievers.encoders import qwen_vl

    assert clip_module.SUPPORTED_MODEL_TYPES == ("clip", "siglip", "siglip2")
    assert qwen_vl.SUPPORTED_MODEL_TYPES == ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
    assert encoders._import(encoders.TEXT_ENCODER) is SmartEncoder
    assert {encoders._import(t) for t in encoders.ENCODERS.values()} == {ClipEncoder, QwenVLEncoder}


# ---- the base ------------------------------------------------------------


def test_progress_rule_and_small_helpers():
    assert [progress_on(None, n) for n in (0, 256, 257)] == [False, False, True]
    assert [progress_on(True, 1), progress_on(False, 10_000)] == [True, False]
    assert tokenizer_limit(type("T", (), {"model_max_length": 512})()) == 512
    assert tokenizer_limit(type("T", (), {"model_max_length": int(1e30)})()) is None
    assert check_texts(("a", "b")) == ["a", "b"]
    with pytest.raises(TypeError, match="not a single string"):
        check_texts("ab")
    with pytest.raises(TypeError, match="item 1 is bytes"):
        check_texts(["a", b"b"])


def test_encoder_progress_setting_and_call_override(encoder):
    quiet = SmartEncoder.default(device="cpu", show_progress=False)
    cases = [(quiet, 10_000, None), (quiet, 1, True), (encoder, 300, None), (encoder, 3, None)]
    shown = []
    for enc, n, flag in cases:
        with enc._progress(n, flag, "text") as bar:
            shown.append(not bar.disable)
    assert shown == [False, True, True, False]  # the encoder's setting, the call's flag winning, the 256-item rule


def test_states_to_encodings_stand_in_and_modalities():
    pooled = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    states = torch.tensor([[[1.0, 0.0], [0.0, 5.0]], [[2.0, 0.0], [0.0, 0.0]]])
    keep = torch.tensor([[True, True], [False, False]])
    first, second = states_to_encodings(pooled, states, keep, modalities=["text", "image"])
    np.testing.assert_allclose(first.pooled, [0.6, 0.8], atol=1e-6)
    np.testing.assert_allclose(first.tokens.astype(np.float32), [[1, 0], [0, 1]], atol=1e-3)
    np.testing.assert_allclose(second.tokens.astype(np.float32), [[0, 1]], atol=1e-3)  # the pooled vector stands in
    assert (first.modality, second.modality) == ("text", "image") and first.tokens.dtype == np.float16
    (other,) = states_to_encodings(pooled[1:], states[1:], keep[1:], stand_in=torch.tensor([[-7.0, 0.0]]))
    np.testing.assert_allclose(other.tokens.astype(np.float32), [[-1, 0]], atol=1e-3)


def test_every_encoder_follows_the_protocol(encoder, clip):
    for enc, images in ((encoder, False), (clip, True)):
        assert isinstance(enc, Encoder) and isinstance(enc, BaseEncoder)
        assert enc.reads_images is images and reads_images(enc) is images
        fp = enc.fingerprint
        assert {k: fp[k] for k in enc.base_fingerprint} == enc.base_fingerprint
        assert (
            fp["token_dim"] == enc.token_dim
            and fp["adapter"] is None
            and set(fp["token_policy"]) == {"drop_punctuation", "drop_prompt"}
        )
    assert isinstance(clip, VisionEncoder) and not isinstance(encoder, VisionEncoder)
    assert (encoder.dim, encoder.token_dim, clip.dim, clip.token_dim) == (384, 384, 16, 16)
    assert reads_images(object()) is False
    assert repr(encoder).startswith("SmartEncoder(") and "dim=384" in repr(encoder)


def test_unknown_keyword_and_bad_batch_size_are_refused():
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_pixel'"):
        SmartEncoder.default(device="cpu", max_pixel=5)
    for bad in (0, 2.5, True, "8"):  # one count check (validation.check_count): floats, bools, strings refused too
        with pytest.raises(ValueError, match=f"batch_size must be an int >= 1, got {bad!r}"):
            SmartEncoder.default(device="cpu", batch_size=bad)


# ---- encode_items ----------------------------------------------------------


def test_encode_items_on_a_text_encoder(encoder, images):
    items = encoder.encode_items(TEXTS)
    for got, want in zip(items, encoder.encode_documents(TEXTS)):
        _same(got, want)
    queries = SmartEncoder.default(device="cpu", query_prompt="query: ")
    for got, want in zip(queries.encode_items(TEXTS, query=True), queries.encode_queries(TEXTS)):
        _same(got, want)
    assert not np.allclose(
        queries.encode_items(TEXTS[:1], query=True)[0].pooled, queries.encode_items(TEXTS[:1])[0].pooled, atol=1e-3
    )
    assert encoder.encode_items([]) == []
    with pytest.raises(
        TypeError, match="SmartEncoder cannot encode images \\(item 7 \\(id 'b'\\) is one\\).*need a vision encoder"
    ):
        encoder.encode_items(["a", None], [None, images[0]], ids=["a", "b"], positions=[3, 7])
    with pytest.raises(TypeError, match="text 4 \\(id 'y'\\) is NoneType, not str"):
        encoder.encode_items(["a", None], ids=["x", "y"], positions=[3, 4])
    with pytest.raises(ValueError, match="got 2 texts but 1 images"):
        encoder.encode_items(["a", "b"], [None])
    with pytest.raises(TypeError, match="not a single string"):
        encoder.encode_items("ab")


def test_encode_items_mixes_texts_and_images_in_input_order(clip, images):
    texts = [TEXTS[0], "a caption, not encoded", None, TEXTS[1], None]
    imgs = [None, images[0], images[1], None, images[2]]
    mixed = clip.encode_items(texts, imgs)
    assert [e.modality for e in mixed] == ["text", "image", "image", "text", "image"]
    texts_alone = clip.encode_documents([TEXTS[0], TEXTS[1]])
    images_alone = clip.encode_images(images)
    for got, want in zip(mixed, [texts_alone[0], images_alone[0], images_alone[1], texts_alone[1], images_alone[2]]):
        _same(got, want)
    only_images = clip.encode_items([None, None], images[:2], query=True)
    for got, want in zip(only_images, clip.encode_images(images[:2], query=True)):
        _same(got, want)


def test_encode_items_numbers_image_errors_in_the_callers_terms(clip, images):
    with pytest.raises(ImageLoadError, match="image 2 ") as info:
        clip.encode_items(["t", None, None], [None, images[0], b"broken"])
    assert info.value.index == 2 and info.value.item_id is None
    with pytest.raises(ImageLoadError, match="image 12 \\(id 'bad'\\)") as info:
        clip.encode_items(
            ["t", None, None], [None, images[0], b"broken"], ids=["t", "ok", "bad"], positions=[10, 11, 12]
        )
    assert (info.value.index, info.value.item_id) == (12, "bad") and "<6 bytes>" in str(info.value)
