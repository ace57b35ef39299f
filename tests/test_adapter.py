"""Tests for the SMART adapter: the module, its persistence, and its use in encoders, stores and indexes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from smart_retrievers import FingerprintMismatchError, SmartEncoder, SmartIndex
from smart_retrievers.adapter import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    AdapterMismatchError,
    SmartAdapter,
)
from smart_retrievers.encoding import Encoding
from smart_retrievers.store import Record

TEXTS = [
    "The red star is catalogued as K7 in the northern survey.",
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
    "The treaty was signed in 1648 and ended the Thirty Years' War.",
    "Mitochondria produce most of the cell's chemical energy.",
    "A binary search halves the interval at every step.",
]


def _random_adapter(hidden: int, out: int, seed: int = 0, base: dict | None = None) -> SmartAdapter:
    torch.manual_seed(seed)
    adapter = SmartAdapter(hidden, out, base=base)
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return adapter.eval()


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, encoder) -> str:
    path = tmp_path_factory.mktemp("adapter")
    _random_adapter(encoder.dim, 8, base=encoder.base_fingerprint).save(path)
    return str(path)


# ---- the module --------------------------------------------------------------


def test_shapes_and_normalisation():
    adapter = _random_adapter(16, 8)
    out = adapter(torch.randn(3, 5, 16))
    assert out.shape == (3, 5, 8) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3, 5))
    assert adapter(torch.randn(4, 16, dtype=torch.float16)).shape == (4, 8)
    assert adapter.in_dim == 16 and adapter.out_dim == 8
    with pytest.raises(ValueError, match="dim 16"):
        adapter(torch.randn(2, 12))
    with pytest.raises(ValueError, match="out_dim"):
        SmartAdapter(16, 32)


def test_scale_invariant_so_cached_normalised_states_train_it():
    """The adapter gives the same output on raw states and on their L2-normalised fp16 copies."""
    adapter = _random_adapter(32, 32)
    raw = 7.0 * torch.randn(10, 32) + 0.3
    cached = F.normalize(raw, dim=-1).half()
    torch.testing.assert_close(adapter(raw), adapter(cached), atol=2e-3, rtol=0)
    torch.testing.assert_close(adapter(raw), adapter(raw * 1e-3), atol=1e-5, rtol=0)


def test_identity_init_is_the_centred_state():
    x = torch.randn(6, 16)
    expected = F.normalize(x - x.mean(dim=-1, keepdim=True), dim=-1)
    torch.testing.assert_close(SmartAdapter(16)(x), expected, atol=1e-5, rtol=0)


def test_pca_init_keeps_dot_products_of_low_rank_states():
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(24, 4)).Q  # states in a 4-d subspace of centred vectors
    basis -= basis.mean(dim=0, keepdim=True)
    states = torch.randn(200, 4) @ basis.T
    adapter = SmartAdapter(24, 4)
    adapter.init_pca(states)
    full = SmartAdapter(24)(states)  # identity: the LayerNorm'd states
    low = adapter(states)
    torch.testing.assert_close(low @ low.T, full @ full.T, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="init_pca"):
        adapter.init_pca(torch.randn(5, 10))


def test_save_load_round_trip(tmp_path):
    base = {"model": "m", "weights": "abc", "pooling": "mean", "dim": 16}
    adapter = _random_adapter(16, 8, base=base)
    adapter.info = {"hyperparameters": {"lr": 1e-3}, "data": {"pairs": np.int64(3)}}
    adapter.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {CONFIG_NAME, WEIGHTS_NAME}
    loaded = SmartAdapter.load(tmp_path)
    x = torch.randn(4, 7, 16)
    assert torch.equal(adapter(x), loaded(x))
    assert loaded.fingerprint() == adapter.fingerprint()
    assert loaded.base == base and loaded.info["data"]["pairs"] == 3
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["hidden_dim"] == 16 and config["out_dim"] == 8 and config["layers"] == 1
    assert config["package_version"]


def test_fingerprint_tracks_weights():
    a, b = _random_adapter(16, 8, seed=1), _random_adapter(16, 8, seed=2)
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint().startswith("16x8-")


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a SMART adapter directory"):
        SmartAdapter.load(tmp_path)
    _random_adapter(16, 8).save(tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**config, "out_dim": 4}))
    with pytest.raises(ValueError, match="do not fit"):
        SmartAdapter.load(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**config, "layers": 3}))
    with pytest.raises(ValueError, match="layers"):
        SmartAdapter.load(tmp_path)


def test_check_base():
    base = {"model": "m", "weights": "abc", "pooling": "mean", "dim": 16}
    adapter = SmartAdapter(16, base=base)
    adapter.check_base({**base, "model": "renamed"})  # the display name does not matter
    with pytest.raises(AdapterMismatchError, match="weights"):
        adapter.check_base({**base, "weights": "other"})
    with pytest.raises(AdapterMismatchError, match="hidden size 16 .* token states of size 384"):
        SmartAdapter(16).check_base({"model": "x", "dim": 16}, state_dim=384)
    # the size checked is the token states' (hidden size), not the pooled "dim" (a Dense head may change it)
    SmartAdapter(16).check_base({"model": "x", "dim": 384}, state_dim=16)


# ---- with the real encoder ----------------------------------------------------


def test_mismatched_base_model_raises_on_load(tmp_path, encoder):
    _random_adapter(encoder.dim, 8, base={**encoder.base_fingerprint, "weights": "0123456789abcdef"}).save(tmp_path)
    with pytest.raises(AdapterMismatchError, match="trained on base model"):
        SmartEncoder.default(adapter=str(tmp_path))


def test_encoder_applies_adapter_to_tokens_only(encoder, adapter_dir):
    adapted = SmartEncoder.default(adapter=adapter_dir)
    assert adapted.token_dim == 8 and adapted.fingerprint["adapter"] == SmartAdapter.load(adapter_dir).fingerprint()
    plain = encoder.encode_documents(TEXTS)
    with_adapter = adapted.encode_documents(TEXTS)
    adapter = SmartAdapter.load(adapter_dir)
    for p, a in zip(plain, with_adapter):
        np.testing.assert_array_equal(p.pooled, a.pooled)
        assert a.tokens.shape == (len(p.tokens), 8)
        np.testing.assert_allclose(np.linalg.norm(a.tokens.astype(np.float32), axis=1), 1.0, atol=2e-3)
        # the adapter on cached (normalised fp16) states = the adapter on raw states in the encoder
        with torch.no_grad():
            from_cache = adapter(torch.from_numpy(p.tokens.astype(np.float32))).numpy()
        np.testing.assert_allclose(a.tokens.astype(np.float32), from_cache, atol=4e-3)


def test_fingerprint_refuses_mixing_adapted_and_unadapted(tmp_path, encoder, adapter_dir):
    SmartIndex(str(tmp_path / "plain"), encoder=encoder).add(TEXTS[:2], ids=["a", "b"])
    adapted = SmartEncoder.default(adapter=adapter_dir)
    with pytest.raises(FingerprintMismatchError, match="adapter"):
        SmartIndex(str(tmp_path / "plain"), encoder=adapted)
    SmartIndex(str(tmp_path / "adapted"), encoder=adapted).add(TEXTS[:2], ids=["a", "b"])
    with pytest.raises(FingerprintMismatchError, match="adapter"):
        SmartIndex(str(tmp_path / "adapted"), encoder=encoder)


# ---- SmartIndex.reindex_tokens ------------------------------------------------------


def test_reindex_tokens_swaps_the_adapter(tmp_path, encoder, adapter_dir):
    uri = str(tmp_path / "db")
    # exact float16 states: this test compares the stored tokens with the adapter's own output; codecs are tested in test_codec.py
    index = SmartIndex(uri, encoder=encoder, compression="none")
    ids = [f"d{i}" for i in range(len(TEXTS))]
    metas = [{"year": 2000 + i, "tag": "x" if i % 2 else "y"} for i in range(len(TEXTS))]
    index.add(TEXTS, ids=ids, metadatas=metas, ref_ids=["r"] * len(TEXTS))
    before = {h.id: h for h in index.get(ids)}
    vectors_before = index.store.get(ids, ["id", "vector"]).column("vector").to_pylist()
    version = index.store.version

    assert index.reindex_tokens(adapter_dir, batch_size=2) == len(TEXTS)
    assert index.store.version > version  # hidden columns added, swapped in one commit, the old ones dropped
    assert index.encoder.token_dim == 8 and index.store.fingerprint["token_dim"] == 8
    after = {h.id: h for h in index.get(ids)}
    assert {k: (h.text, h.metadata, h.ref_id) for k, h in after.items()} == {
        k: (h.text, h.metadata, h.ref_id) for k, h in before.items()
    }
    assert index.store.get(ids, ["id", "vector"]).column("vector").to_pylist() == vectors_before
    assert index.store.field_types == {"tag": "str", "year": "int"}

    adapted = SmartEncoder.default(adapter=adapter_dir)
    stored = index.store.get(ids, ["id", "tokens", "n_tokens"])
    for row, expected in zip(stored.to_pylist(), adapted.encode_documents(TEXTS)):
        np.testing.assert_allclose(
            np.array(row["tokens"], dtype=np.float32), expected.tokens.astype(np.float32), atol=2e-3
        )
        assert row["n_tokens"] == len(expected.tokens)

    hits = index.search("which survey lists the red star?", k=2, where={"year": {"$lte": 2001}})
    assert hits[0].id == "d0"
    SmartIndex(uri, encoder=adapted)  # the table now matches the adapted encoder...
    with pytest.raises(FingerprintMismatchError, match="adapter"):
        SmartIndex(uri, encoder=encoder)  # ...and refuses the plain one

    assert index.reindex_tokens(None) == len(TEXTS)  # back to plain states
    SmartIndex(uri, encoder=encoder)


def test_reindex_tokens_failure_leaves_the_table(tmp_path, encoder, adapter_dir, monkeypatch):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder)
    index.add(TEXTS, ids=[f"d{i}" for i in range(len(TEXTS))])
    version, fingerprint = index.store.version, dict(index.store.fingerprint)
    calls = []
    encode_documents = SmartEncoder.encode_documents

    def failing(self, texts, **kwargs):  # the second batch fails, after the first was re-encoded
        calls.append(len(texts))
        if len(calls) == 2:
            raise RuntimeError("encoder exploded")
        return encode_documents(self, texts, **kwargs)

    monkeypatch.setattr(SmartEncoder, "encode_documents", failing)
    with pytest.raises(RuntimeError, match="encoder exploded"):
        index.reindex_tokens(adapter_dir, batch_size=2)
    monkeypatch.undo()
    assert index.store.version == version and index.store.fingerprint == fingerprint
    assert index.encoder is encoder
    SmartIndex(str(tmp_path / "db"), encoder=encoder).search("red star", k=1)


def test_reindex_tokens_refuses_images_and_other_models(tmp_path, encoder, adapter_dir):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder)
    index.add(TEXTS[:1], ids=["t"])
    other = SmartEncoder.default(document_prompt="passage: ")
    with pytest.raises(ValueError, match="document_prompt"):
        index.reindex_tokens(other)
    enc = encoder.encode_documents(["a photo"])[0]
    image = Encoding(pooled=enc.pooled, tokens=enc.tokens, modality="image")
    index.store.upsert([Record(id="img", text="", encoding=image, image="/tmp/x.jpg")])
    with pytest.raises(NotImplementedError, match="image"):
        index.reindex_tokens(adapter_dir)
    assert index.store.fingerprint["adapter"] is None


def test_reindex_tokens_on_an_empty_index(tmp_path, encoder, adapter_dir):
    # float16 states: the stored column's width is then the adapter's dim; codecs are tested in test_codec.py
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none")
    assert index.reindex_tokens(adapter_dir) == 0
    index.add(TEXTS[:2], ids=["a", "b"])
    assert index.store.table.schema.field("tokens").type.value_type.list_size == 8
