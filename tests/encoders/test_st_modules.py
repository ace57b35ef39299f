"""SmartEncoder on sentence-transformers layouts with Dense / Normalize modules after Pooling.

The models are tiny random BERTs saved with ``save_pretrained`` plus hand-written
``modules.json``, ``1_Pooling/config.json`` and Dense folders; the reference is
``sentence_transformers.SentenceTransformer`` loading the very same directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel, BertTokenizerFast

from smart_retrievers import SmartEncoder, TokenPolicy

TEXTS = ["the red star", "a dog runs on the sand .", "stars", "", "?!"]
WORDS = ["the", "red", "star", "stars", "a", "dog", "runs", "on", "sand", ".", "?", "!", ","]
HIDDEN = 32
TANH = "torch.nn.modules.activation.Tanh"


def _module(idx: int, path: str, kind: str) -> dict:
    return {"idx": idx, "name": str(idx), "path": path, "type": f"sentence_transformers.models.{kind}"}


def _write_dense(
    folder: Path,
    in_features: int,
    out_features: int,
    activation: str,
    *,
    seed: int,
    pickle: bool = False,
    bias: bool = True,
) -> torch.nn.Linear:
    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    linear = torch.nn.Linear(in_features, out_features, bias=bias)
    config = {"in_features": in_features, "out_features": out_features, "bias": bias, "activation_function": activation}
    (folder / "config.json").write_text(json.dumps(config))
    state = {f"linear.{k}": v.detach().clone() for k, v in linear.state_dict().items()}
    if pickle:
        torch.save(state, folder / "pytorch_model.bin")
    else:
        save_file(state, str(folder / "model.safetensors"))
    return linear


def build_st_model(
    out: Path, modules: list[tuple[str, str]], *, pooling: str = "cls", dense: dict[str, dict] | None = None
) -> Path:
    """A tiny random BERT in sentence-transformers layout: ``modules`` is [(kind, folder)] after the Transformer."""
    torch.manual_seed(0)
    out.mkdir(parents=True)
    (out / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab=str(out / "vocab.txt")).save_pretrained(out)
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(out)
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32, "do_lower_case": False}))
    entries = [_module(0, "", "Transformer")]
    for idx, (kind, folder) in enumerate(modules, start=1):
        entries.append(_module(idx, folder, kind))
        if kind == "Pooling":
            (out / folder).mkdir()
            modes = {"pooling_mode_cls_token": pooling == "cls", "pooling_mode_mean_tokens": pooling == "mean"}
            (out / folder / "config.json").write_text(json.dumps({"word_embedding_dimension": HIDDEN, **modes}))
        elif kind == "Dense":
            _write_dense(out / folder, seed=idx, **(dense or {})[folder])
    (out / "modules.json").write_text(json.dumps(entries))
    return out


def _reference(path: Path) -> np.ndarray:
    sentence_transformers = pytest.importorskip(
        "sentence_transformers", reason="sentence-transformers is in the [dev] extra"
    )
    model = sentence_transformers.SentenceTransformer(str(path), device="cpu")
    return model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)


@pytest.fixture(scope="module")
def labse_like(tmp_path_factory) -> Path:
    """LaBSE's layout: Transformer, CLS Pooling, Dense (tanh, same size), Normalize."""
    root = tmp_path_factory.mktemp("labse")
    dense = {"2_Dense": {"in_features": HIDDEN, "out_features": HIDDEN, "activation": TANH}}
    return build_st_model(
        root / "labse", [("Pooling", "1_Pooling"), ("Dense", "2_Dense"), ("Normalize", "3_Normalize")], dense=dense
    )


def test_dense_and_normalize_match_sentence_transformers(labse_like):
    encoder = SmartEncoder(labse_like, device="cpu", batch_size=2)
    encodings = encoder.encode_documents(TEXTS)
    got = np.stack([e.pooled for e in encodings])
    np.testing.assert_allclose(got, _reference(labse_like), atol=1e-5)
    # without the Dense module the pooled vector would be the plain (normalised) CLS state
    plain = SmartEncoder(labse_like, device="cpu")
    plain.pooled_head = torch.nn.Sequential()
    assert np.abs(np.stack([e.pooled for e in plain.encode_documents(TEXTS)]) - got).max() > 1e-2
    assert encoder.pooling == "cls" and encoder.dim == HIDDEN and encoder.token_dim == HIDDEN


def test_token_states_stay_final_hidden_states(labse_like):
    encoder = SmartEncoder(labse_like, device="cpu")
    (enc,) = encoder.encode_documents(["the red star"])
    batch = encoder.tokenizer(["the red star"], return_tensors="pt")
    with torch.inference_mode():
        hidden = encoder.model(**batch).last_hidden_state[0, 1:-1]  # [CLS] and [SEP] dropped
    np.testing.assert_allclose(
        enc.tokens.astype(np.float32), torch.nn.functional.normalize(hidden, dim=-1).numpy(), atol=2e-3
    )


def test_dense_changes_dim_and_reads_pickled_weights(tmp_path):
    """Mean pooling, a down-projecting Dense saved as pytorch_model.bin, then an identity Dense without bias."""
    dense = {
        "2_Dense": {"in_features": HIDDEN, "out_features": 16, "activation": TANH, "pickle": True},
        "3_Dense": {
            "in_features": 16,
            "out_features": 8,
            "activation": "torch.nn.modules.linear.Identity",
            "bias": False,
        },
    }
    path = build_st_model(
        tmp_path / "m",
        [("Pooling", "1_Pooling"), ("Dense", "2_Dense"), ("Dense", "3_Dense")],
        pooling="mean",
        dense=dense,
    )
    encoder = SmartEncoder(path, device="cpu")
    assert (encoder.dim, encoder.token_dim, encoder.pooling) == (8, HIDDEN, "mean")
    encodings = encoder.encode_documents(TEXTS)
    np.testing.assert_allclose(np.stack([e.pooled for e in encodings]), _reference(path), atol=1e-5)
    n_words = len(TEXTS[1].split())
    assert encodings[1].pooled.shape == (8,) and encodings[1].tokens.shape == (n_words, HIDDEN)
    # "" and "?!" with punctuation dropped keep nothing: the (pre-Dense) pooled state stands in
    dropped = SmartEncoder(path, device="cpu", token_policy=TokenPolicy(drop_punctuation=True))
    only_punct = dropped.encode_documents(["?!"])[0]
    assert only_punct.tokens.shape == (1, HIDDEN)
    batch = dropped.tokenizer(["?!"], return_tensors="pt")
    with torch.inference_mode():
        mean = dropped.model(**batch).last_hidden_state[0].mean(0)
    np.testing.assert_allclose(
        only_punct.tokens[0].astype(np.float32), torch.nn.functional.normalize(mean, dim=0).numpy(), atol=2e-3
    )


def test_fingerprint_names_the_dense_weights(tmp_path, labse_like, encoder):
    fp = SmartEncoder(labse_like, device="cpu").base_fingerprint
    (kind_and_hash,) = fp["pooled_head"]  # the trailing Normalize changes nothing and is not listed
    assert kind_and_hash.startswith("Dense:") and len(kind_and_hash) == len("Dense:") + 16
    assert "pooled_head" not in encoder.base_fingerprint  # all-MiniLM-L6-v2: Pooling + Normalize only
    dense = {"2_Dense": {"in_features": HIDDEN, "out_features": HIDDEN, "activation": TANH}}
    other = build_st_model(tmp_path / "other", [("Pooling", "1_Pooling"), ("Dense", "2_Dense")], dense=dense)
    torch.manual_seed(99)
    save_file(
        {"linear.weight": torch.randn(HIDDEN, HIDDEN), "linear.bias": torch.zeros(HIDDEN)},
        str(other / "2_Dense" / "model.safetensors"),
    )
    other_fp = SmartEncoder(other, device="cpu").base_fingerprint
    assert other_fp["weights"] == fp["weights"] and other_fp["pooled_head"] != fp["pooled_head"]


def test_unsupported_modules_are_refused(tmp_path):
    with pytest.raises(
        ValueError, match=r"module 'sentence_transformers.models.LayerNorm' \(2_LayerNorm\) is not supported"
    ):
        SmartEncoder(
            build_st_model(tmp_path / "a", [("Pooling", "1_Pooling"), ("LayerNorm", "2_LayerNorm")]), device="cpu"
        )
    dense = {"1_Dense": {"in_features": HIDDEN, "out_features": HIDDEN, "activation": TANH}}
    with pytest.raises(ValueError, match="Dense module '1_Dense' before the Pooling module"):
        SmartEncoder(
            build_st_model(tmp_path / "b", [("Dense", "1_Dense"), ("Pooling", "2_Pooling")], dense=dense), device="cpu"
        )
    dense = {"2_Dense": {"in_features": HIDDEN, "out_features": HIDDEN, "activation": "my_package.Swish"}}
    with pytest.raises(ValueError, match="activation 'my_package.Swish' is not supported"):
        SmartEncoder(
            build_st_model(tmp_path / "c", [("Pooling", "1_Pooling"), ("Dense", "2_Dense")], dense=dense), device="cpu"
        )
    path = build_st_model(
        tmp_path / "d",
        [("Pooling", "1_Pooling"), ("Dense", "2_Dense")],
        dense={"2_Dense": {"in_features": HIDDEN, "out_features": 4, "activation": TANH}},
    )
    (path / "2_Dense" / "model.safetensors").unlink()
    with pytest.raises(OSError, match="could not load model .*neither model.safetensors nor pytorch_model.bin"):
        SmartEncoder(path, device="cpu")


def test_adapter_takes_token_states_of_the_hidden_size(tmp_path):
    """A Dense head changes the pooled size (16) but not the token states' (HIDDEN): adapters are checked against the latter."""
    from smart_retrievers import SmartIndex
    from smart_retrievers.adapter import AdapterMismatchError, SmartAdapter

    path = build_st_model(
        tmp_path / "m",
        [("Pooling", "1_Pooling"), ("Dense", "2_Dense")],
        pooling="mean",
        dense={"2_Dense": {"in_features": HIDDEN, "out_features": 16, "activation": TANH}},
    )
    plain = SmartEncoder(path, device="cpu")
    assert (plain.dim, plain.token_dim) == (16, HIDDEN)
    adapter_dir = SmartAdapter(HIDDEN, 8, base=plain.base_fingerprint).save(tmp_path / "adapter")
    adapted = SmartEncoder(path, device="cpu", adapter=adapter_dir)
    assert (adapted.dim, adapted.token_dim) == (16, 8)
    assert adapted.encode_documents(["the red star"])[0].tokens.shape == (3, 8)
    pooled_sized = SmartAdapter(16, 8, base=plain.base_fingerprint)  # the pooled size: wrong input
    with pytest.raises(AdapterMismatchError, match="hidden size 16 .* token states of size 32"):
        SmartEncoder(path, device="cpu", adapter=pooled_sized)

    index = SmartIndex(str(tmp_path / "db"), encoder=plain)
    index.add(TEXTS[:3], ids=["a", "b", "c"])
    with pytest.raises(AdapterMismatchError, match="hidden size 16"):
        index.reindex_tokens(pooled_sized)
    assert index.reindex_tokens(adapter_dir) == 3
    assert index.encoder.token_dim == 8 and index.store.fingerprint["token_dim"] == 8
    assert index.search("the red star", k=1)[0].id == "a"
