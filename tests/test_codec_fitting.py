"""A new table's codec: the shipped generic codec (no encoding), the on-disk sample cache, old codecs still open."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from encoder_calls import record_document_encodings
from hash_encoder import HashEncoder

from smart_retrievers import SmartIndex, TokenCodec
from smart_retrievers.codec import DEFAULT_COMPRESSION, fitting, generic_sample, generic_states, shipped_codec


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty cache directory, and no sample states held in memory."""
    monkeypatch.setenv("SMART_RETRIEVERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fitting, "_STATES", {})
    return tmp_path / "cache"


def test_first_small_write_uses_the_shipped_codec_without_encoding_the_sample(
    tmp_path, encoder, cache_dir, monkeypatch
):
    shipped = shipped_codec(DEFAULT_COMPRESSION, encoder.fingerprint)
    assert shipped is not None and shipped.preset == DEFAULT_COMPRESSION and shipped.dim == encoder.token_dim
    encoded = record_document_encodings(monkeypatch, encoder)
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder)
    index.add(["A dog runs in the snow.", "Two cats sleep on a warm roof."], ids=["dog", "cats"])
    assert encoded == ["A dog runs in the snow.", "Two cats sleep on a warm roof."]  # the rows only
    assert index.codec.fingerprint() == shipped.fingerprint()
    assert not cache_dir.exists()  # nothing was encoded, so nothing was cached
    assert index.search("a dog in snow", k=1)[0].id == "dog"


def test_the_shipped_codec_is_the_generic_sample_fit_of_the_default_model(encoder):
    """The packaged file is current: the default preset, fitted on the sample as this model encodes it."""
    shipped = shipped_codec(DEFAULT_COMPRESSION, encoder.fingerprint)
    refit = TokenCodec.fit(DEFAULT_COMPRESSION, generic_states(encoder, show_progress=False))
    # the same subspace and calibration (eigenvectors may differ in sign across BLAS builds)
    overlap = np.linalg.svd(shipped.weight @ refit.weight.T, compute_uv=False)
    assert overlap.min() > 0.99
    np.testing.assert_allclose(shipped.mean, refit.mean, atol=1e-4)
    assert shipped.gain == pytest.approx(refit.gain, rel=1e-3) and shipped.bias == pytest.approx(refit.bias, abs=1e-3)


def test_other_models_encode_the_sample_once_then_read_it_from_disk(encoder, cache_dir, monkeypatch, capsys):
    other = copy.copy(encoder)  # another max_length: another fingerprint, so no shipped codec
    other.max_length = encoder.max_length - 1
    assert shipped_codec(DEFAULT_COMPRESSION, other.fingerprint) is None
    encoded = record_document_encodings(monkeypatch, other)
    first = fitting.fit_codec(DEFAULT_COMPRESSION, [np.ones((3, 384), np.float32) / 384**0.5], other)
    assert len(encoded) == len(generic_sample())
    assert "Codec sample" in capsys.readouterr().err  # the progress bar of the one encoding
    assert len(list((cache_dir / "codec-samples").glob("*.npz"))) == 1
    monkeypatch.setattr(fitting, "_STATES", {})  # a new process: memory empty, disk warm
    again = fitting.fit_codec(DEFAULT_COMPRESSION, [], other)
    assert len(encoded) == len(generic_sample())  # nothing encoded again
    np.testing.assert_allclose(again.weight, first.weight, atol=1e-3)


def test_a_damaged_cache_file_is_encoded_again(cache_dir, monkeypatch):
    other = HashEncoder(dim=384)  # what is cached and read back is under test, not the model
    generic_states(other, show_progress=False)
    (path,) = (cache_dir / "codec-samples").glob("*.npz")
    path.write_bytes(b"not an npz")
    monkeypatch.setattr(fitting, "_STATES", {})
    encoded = record_document_encodings(monkeypatch, other)
    states = generic_states(other, show_progress=False)
    assert len(encoded) == len(states) == len(generic_sample())


def test_too_few_tokens_without_an_encoder_is_refused():
    with pytest.raises(ValueError, match="too few to fit"):
        fitting.fit_codec(DEFAULT_COMPRESSION, [np.ones((3, 384), np.float32)])


def test_a_table_with_an_older_codec_keeps_it(tmp_path, encoder):
    """Changing the default preset or pooling changes new tables only: an old table keeps its stored codec."""
    uri = str(tmp_path / "db")
    texts = [f"Report {i}: code K{i} labels the red star and code P{i} the blue circle." for i in range(30)]
    old = SmartIndex(uri, encoder=encoder, compression="pca64-sign")
    old.add(texts, ids=[str(i) for i in range(30)])
    data = json.loads(old.codec.to_json())
    reopened = SmartIndex(uri, encoder=encoder)  # the default preset asked: the stored one wins
    assert reopened.codec.preset == "pca64-sign" and reopened.codec.fingerprint() == old.codec.fingerprint()
    reopened.add(["Report 99: code K99 labels the red star."], ids=["99"])
    assert reopened.search("K7 red star", k=1)[0].id == "7"
    # a codec written before calibration knots existed (no such keys) still loads, scoring linearly
    legacy = TokenCodec.from_json(json.dumps({k: v for k, v in data.items() if not k.startswith("knots")}))
    q = encoder.encode_queries(["K7 red star"])[0].tokens
    np.testing.assert_allclose(legacy.query(q)[0].numpy(), old.codec.query(q)[0].numpy(), atol=1e-6)


def test_the_first_batch_is_pooled_once_for_the_fit_and_its_codes(tmp_path, monkeypatch):
    from smart_retrievers.codec import token_codec

    calls: list[int] = []
    original = fitting.pool_documents

    def counting(docs, factor, **kwargs):
        calls.append(len(docs))
        return original(docs, factor, **kwargs)

    monkeypatch.setattr(fitting, "pool_documents", counting)
    monkeypatch.setattr(token_codec, "pool_documents", counting)
    texts = [f"note {i} on topic {i % 7}" for i in range(40)]
    index = SmartIndex(
        str(tmp_path / "db"),
        encoder=HashEncoder(dim=384, n_tokens=120),
        write_batch_size=40,
        compression="pool2-pca256-sign",
    )
    index.add(texts, ids=[str(i) for i in range(40)])
    assert calls == [40]  # fitted on the first batch (enough tokens) and coded from the same pooling
    assert index.store.get(["0"], columns=["id", "n_tokens"]).column("n_tokens").to_pylist() == [60]
    index.add(texts[:3], ids=["a", "b", "c"])  # later writes pool with the codec
    assert calls == [40, 3]
