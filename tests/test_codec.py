"""Token codecs: round trips, asymmetric scores, storage in the table, recompress, a second process."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
import torch

from smart_retrievers import FingerprintMismatchError, SmartIndex, TokenCodec
from smart_retrievers.codec import (
    CODES,
    DEFAULT_COMPRESSION,
    generic_sample,
    generic_states,
    parse_preset,
    pool_tokens,
)
from smart_retrievers.scoring import PackedTokens, maxsim_flat
from smart_retrievers.store import CODEC_KEY

PRESETS = ["fp16", "int8", "pca32-fp16", "pca32-int8", "pca32-int4", "pca32-int2", "pca32-sign", "pca16-sign", "sign"]


@pytest.fixture(scope="module")
def states() -> np.ndarray:
    """Unit token states with low-rank structure and an offset, like real hidden states."""
    gen = torch.Generator().manual_seed(0)
    x = (
        torch.randn(6000, 12, generator=gen) @ torch.randn(12, 64, generator=gen)
        + 0.4 * torch.randn(6000, 64, generator=gen)
        + 1.5
    )
    return torch.nn.functional.normalize(x, dim=-1).numpy()


def test_presets_parse_and_reject():
    assert parse_preset("pca128-sign") == (1, 128, "sign")
    assert parse_preset("pool2-pca256-sign") == (2, 256, "sign")
    assert parse_preset("int4") == (1, None, "int4")
    for bad in ["none", "pca-sign", "pca128-int3", "PCA128-sign", "pca4-sign", "pool1-sign", "pool9-sign", 7]:
        with pytest.raises(ValueError, match="compression preset"):
            parse_preset(bad)


@pytest.mark.parametrize("preset", ["pca12-sign", "pca10-int2", "pca9-int4"])
def test_dimensions_that_are_not_whole_bytes_are_padded(states, preset):
    """An adapter of r=12 (say) still takes a sign code: the last byte of each token is zero-filled."""
    codec = TokenCodec.fit(preset, states)
    codes = codec.encode(states[:50])
    assert codes.shape == (50, -(-codec.out_dim * codec.bits // 8)) == (50, codec.bytes_per_token)
    np.testing.assert_array_equal(codec.encode(codec.reconstruct(codes).numpy()), codes)
    assert codec.decode(codes).shape == (50, codec.out_dim)


@pytest.mark.parametrize("preset", PRESETS)
def test_round_trip_error_bounds(states, preset):
    codec = TokenCodec.fit(preset, states)
    codes = codec.encode(states[:500])
    out_dim = parse_preset(preset)[1] or 64
    assert codes.dtype == np.uint8 and codes.shape == (500, out_dim * CODES[codec.code] // 8) == (
        500,
        codec.bytes_per_token,
    )
    back = codec.reconstruct(codes).numpy()
    error = np.linalg.norm(back - states[:500], axis=1).mean()
    # each code's bound: more bits and more kept dimensions never do worse than the next coarser code
    bound = {
        "fp16": 1e-3,
        "int8": 0.03,
        "pca32-fp16": 0.35,
        "pca32-int8": 0.35,
        "pca32-int4": 0.4,
        "pca32-int2": 0.55,
        "pca32-sign": 0.75,
        "pca16-sign": 0.8,
        "sign": 0.75,
    }[preset]
    assert error < bound, (preset, error)
    # decoding is the exact inverse of the bit packing: re-encoding the reconstruction gives the same codes
    if preset in ("int8", "pca32-int4", "pca32-int2", "pca32-sign"):
        np.testing.assert_array_equal(codec.encode(back), codes)


@pytest.mark.parametrize("preset", ["fp16", "pca32-int8", "pca32-int4", "pca32-sign"])
def test_asymmetric_scores_match_the_float_reference(states, preset):
    codec = TokenCodec.fit(preset, states)
    docs = PackedTokens.from_list([states[i * 40 : (i + 1) * 40] for i in range(100)])
    coded = PackedTokens(values=torch.from_numpy(codec.encode(docs.values)), offsets=docs.offsets)
    queries = states[5000:5012]
    exact = maxsim_flat(queries, docs.values, docs.lengths)
    approx = maxsim_flat(queries, coded.values, coded.lengths, codec=codec, chunk_tokens=300)
    # the float query against decoded codes, each query token's best through the codec's monotone map,
    # computed by hand, is what maxsim_flat returns
    decoded = codec.keys(coded.values) @ codec.query(queries)[0].T + codec.query(queries)[1]
    by_hand = torch.stack(
        [codec.calibrate(decoded[a:b].amax(dim=0)).mean() for a, b in zip(docs.offsets[:-1], docs.offsets[1:])]
    )
    torch.testing.assert_close(approx, by_hand, atol=1e-5, rtol=0)
    tolerance = {"fp16": 1e-3, "pca32-int8": 0.05, "pca32-int4": 0.06, "pca32-sign": 0.2}[preset]
    assert (approx - exact).abs().mean() < tolerance
    assert (
        np.corrcoef(approx.numpy(), exact.numpy())[0, 1]
        > {"fp16": 0.9999, "pca32-int8": 0.95, "pca32-int4": 0.9, "pca32-sign": 0.5}[preset]
    )


def test_token_pooling_halves_and_merges_near_duplicates():
    gen = np.random.default_rng(1)
    centres = gen.normal(size=(5, 32))
    # ten tokens: each of five directions twice, with tiny noise
    tokens = np.repeat(centres, 2, axis=0) + 1e-3 * gen.normal(size=(10, 32))
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    pooled = pool_tokens(tokens, 2)
    assert pooled.shape == (5, 32)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-6)
    # each pooled token is one of the duplicated directions
    best = (pooled @ (centres / np.linalg.norm(centres, axis=1, keepdims=True)).T).max(axis=1)
    assert (best > 0.999).all()
    assert pool_tokens(tokens[:7], 2).shape == (4, 32) and pool_tokens(tokens[:2], 2).shape == (2, 32)
    codec = TokenCodec.fit("pool2-pca8-sign", np.repeat(tokens, 4, axis=0))  # a flat sample is fitted as it is
    codes, lengths = codec.encode_docs([tokens, tokens[:7], tokens[:1]])
    assert lengths.tolist() == [5, 4, 1] and codes.shape == (10, 1)


def test_codec_json_round_trip_is_exact(states):
    codec = TokenCodec.fit("pca32-int4", states)
    again = TokenCodec.from_json(codec.to_json())
    np.testing.assert_array_equal(again.encode(states[:50]), codec.encode(states[:50]))
    assert again.fingerprint() == codec.fingerprint() != TokenCodec.fit("pca32-int4", states[:3000]).fingerprint()


def test_pca_needs_enough_tokens(states):
    with pytest.raises(ValueError, match="at least 64 sample tokens"):
        TokenCodec.fit("pca32-sign", states[:10])


TEXTS = [f"Protein kinase {i} binds receptor {i % 13} and regulates pathway {i % 5} in cells." for i in range(40)]


def test_new_index_is_compressed_by_default_and_stores_its_codec(tmp_path, encoder):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder)
    index.add(TEXTS, ids=[str(i) for i in range(len(TEXTS))])
    assert index.codec is not None and index.codec.preset == DEFAULT_COMPRESSION == "pca128-sign"
    assert index.codec.bytes_per_token == 16 and index.codec.pool == 1  # every token kept, 16 bytes each
    assert index.codec.knots is not None  # with the monotone map onto the float scale
    table = index.store.table
    assert table.schema.field("tokens").type.value_type == pa.list_(pa.uint8(), 16)
    assert json.loads(table.schema.metadata[CODEC_KEY.encode()])["preset"] == DEFAULT_COMPRESSION
    # no pooling: n_tokens holds every original token
    original = [len(e.tokens) for e in encoder.encode_documents(TEXTS)]
    ids = [str(i) for i in range(len(TEXTS))]
    stored = index.store.get(ids, columns=["id", "n_tokens"]).column("n_tokens").to_pylist()
    assert stored == original
    # 40 short texts hold fewer than MIN_FIT_TOKENS tokens: the generic sample topped the fit up
    assert sum(len(e.tokens) for e in encoder.encode_documents(TEXTS)) < 4096
    top = index.search("which kinase binds receptor 7?", k=3)
    assert "7" in [h.id for h in top]


def test_the_codec_is_stored_once_beside_the_table_not_in_every_manifest(tmp_path):
    import lancedb
    from hash_encoder import HashEncoder

    from smart_retrievers.store import CODEC_TABLE_SUFFIX, load_codec

    uri = str(tmp_path / "db")
    index = SmartIndex(uri, encoder=HashEncoder(dim=384), compression="pca256-sign")
    for i in range(5):  # five small commits
        index.add([f"note {i} about topic {i % 3}"], ids=[f"n{i}"])
    reference = json.loads(index.store.table.schema.metadata[CODEC_KEY.encode()])
    assert reference["table"] == "smart" + CODEC_TABLE_SUFFIX and reference["preset"] == "pca256-sign"
    assert len(index.codec.to_json()) > 1_000_000  # the codec itself: MBs of matrices, stored once
    manifests = sorted((tmp_path / "db" / "smart.lance" / "_versions").glob("*.manifest"))
    assert len(manifests) >= 5 and max(m.stat().st_size for m in manifests) < 50_000
    db = lancedb.connect(uri)
    assert db.open_table("smart" + CODEC_TABLE_SUFFIX).count_rows() == 1
    reopened = SmartIndex(uri, encoder=HashEncoder(dim=384))
    assert reopened.codec.fingerprint() == index.codec.fingerprint()
    ranking = [(h.id, h.score) for h in reopened.search("note 3 about topic 0", k=5)]
    # a table of an older version holds its codec inline in the schema: it still opens
    legacy = index.store.table.to_lance()
    legacy.update_schema_metadata({CODEC_KEY: index.codec.to_json()})
    assert load_codec(db, legacy.schema.metadata[CODEC_KEY.encode()]).fingerprint() == index.codec.fingerprint()
    db.drop_table("smart" + CODEC_TABLE_SUFFIX)
    assert [
        (h.id, h.score) for h in SmartIndex(uri, encoder=HashEncoder(dim=384)).search("note 3 about topic 0", k=5)
    ] == ranking


def test_tiny_first_write_gets_a_sound_codec(tmp_path, encoder):
    tiny = SmartIndex(str(tmp_path / "db"), encoder=encoder, table="tiny")
    tiny.add(["A dog runs in the snow."], ids=["dog"])  # one document, a handful of tokens
    # the sample's states as this encoder gives them (encoded once per model, then cached: test_codec_fitting.py)
    generic = TokenCodec.fit("pca128-sign", np.concatenate(generic_states(encoder, show_progress=False)))
    # the fit is the generic sample plus this document: its basis is close to the generic sample's own
    overlap = np.linalg.svd(tiny.codec.weight @ generic.weight.T, compute_uv=False)
    assert overlap.mean() > 0.95
    tiny.add(TEXTS, ids=[str(i) for i in range(len(TEXTS))])
    assert (
        tiny.codec.fingerprint() == SmartIndex(str(tmp_path / "db"), encoder=encoder, table="tiny").codec.fingerprint()
    )


def test_codec_mismatch_is_refused_on_open(tmp_path, encoder):
    SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="pca64-sign").add(TEXTS[:3], ids=["a", "b", "c"])
    with pytest.raises(FingerprintMismatchError, match="compression 'pca64-sign', not 'pca128-sign'"):
        SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="pca128-sign")
    with pytest.raises(FingerprintMismatchError, match="not 'none'"):
        SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none")
    assert SmartIndex(str(tmp_path / "db"), encoder=encoder).codec.preset == "pca64-sign"
    with pytest.raises(ValueError, match="unknown compression preset"):
        SmartIndex(str(tmp_path / "other"), encoder=encoder, compression="zip")


def test_uncompressed_tables_keep_float16_and_exact_scores(tmp_path, encoder):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none")
    index.add(TEXTS, ids=[str(i) for i in range(len(TEXTS))])
    assert index.codec is None and CODEC_KEY.encode() not in (index.store.table.schema.metadata or {})
    hit = index.search("which kinase binds receptor 7?", k=1, lambda_pool=0.0)[0]
    query = encoder.encode_queries(["which kinase binds receptor 7?"])[0]
    stored = encoder.encode_documents([hit.text])[0]
    expected = float(maxsim_flat(query.tokens, stored.tokens, [len(stored.tokens)])[0])
    assert hit.score == pytest.approx(expected, abs=1e-5)


def test_reindex_of_an_empty_index_keeps_its_compression(tmp_path, encoder):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder)
    index.reindex_tokens(None)
    index.add(TEXTS[:3], ids=["a", "b", "c"])
    assert index.codec is not None and index.codec.preset == DEFAULT_COMPRESSION


def test_fit_codec_explicitly_then_writes_reuse_it(tmp_path, encoder):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="pca64-int4")
    codec = index.fit_codec(generic_sample()[:200])
    index.add(TEXTS, ids=[str(i) for i in range(len(TEXTS))])
    assert index.codec is codec and index.codec.bytes_per_token == 32
    with pytest.raises(ValueError, match="use recompress"):
        index.fit_codec(TEXTS)


def test_recompress_converts_a_float16_table_atomically(tmp_path, encoder):
    uri = str(tmp_path / "db")
    plain = SmartIndex(uri, encoder=encoder, compression="none", write_batch_size=10)
    plain.add(TEXTS, ids=[str(i) for i in range(len(TEXTS))])
    before = [h.id for h in plain.search("which kinase binds receptor 7?", k=5)]
    version = plain.store.version

    calls = {"n": 0}
    original = TokenCodec.encode

    def fail_on_third_batch(self, tokens):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return original(self, tokens)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TokenCodec, "encode", fail_on_third_batch)
        with pytest.raises(RuntimeError, match="disk full"):
            plain.recompress("pca64-sign", batch_size=10)
    reopened = SmartIndex(uri, encoder=encoder)
    assert reopened.codec is None and reopened.store.version == version and reopened.count() == len(TEXTS)

    assert plain.recompress("pca64-sign", batch_size=10) == len(TEXTS)
    coded = SmartIndex(uri, encoder=encoder)
    assert coded.codec.preset == "pca64-sign" and coded.count() == len(TEXTS)
    after = [h.id for h in coded.search("which kinase binds receptor 7?", k=5)]
    assert after[0] == before[0] == "7"
    assert sorted(
        r["id"] for r in coded.store.get([str(i) for i in range(len(TEXTS))], columns=["id"]).to_pylist()
    ) == sorted(map(str, range(len(TEXTS))))
    with pytest.raises(ValueError, match="codes a float16 table"):
        coded.recompress("pca128-sign")


def test_second_process_scores_identically(tmp_path, encoder, other_process):
    uri = str(tmp_path / "db")
    index = SmartIndex(uri, encoder=encoder)
    index.add(TEXTS, ids=[str(i) for i in range(len(TEXTS))])
    mine = [(h.id, round(h.score, 6)) for h in index.search("which kinase binds receptor 7?", k=5)]
    script = (
        "import json, sys; from smart_retrievers import SmartIndex; "
        f"hits = SmartIndex({uri!r}).search('which kinase binds receptor 7?', k=5); "
        "print(json.dumps([(h.id, round(h.score, 6)) for h in hits]))"
    )
    out = other_process.run(["-c", script]).check()
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    assert [h[0] for h in theirs] == [h[0] for h in mine]
    np.testing.assert_allclose([h[1] for h in theirs], [h[1] for h in mine], atol=1e-5)  # thread counts differ


def test_the_monotone_map_rises_and_keeps_the_order_beyond_its_range(states):
    codec = TokenCodec.fit("pca32-sign", states)
    x, y = codec.knots
    assert len(x) > 8 and (np.diff(x) > 0).all() and (np.diff(y) >= -1e-6).all()
    probe = torch.tensor([x[0] - 0.2, x[0] - 0.1, x[0], (x[0] + x[-1]) / 2, x[-1], x[-1] + 0.1, x[-1] + 0.2])
    mapped = codec.calibrate(probe)
    assert (mapped[1:] >= mapped[:-1]).all() and mapped[0] < mapped[1] and mapped[-2] < mapped[-1]
    assert mapped[-1] - mapped[-3] == pytest.approx(0.2, abs=1e-5)  # slope 1 past the last knot
    assert codec.calibrate(probe[2:5]).tolist() == pytest.approx([y[0], float(np.interp(probe[3], x, y)), y[-1]])


@pytest.mark.parametrize("preset", ["pca32-sign", "pca32-int2"])
def test_a_document_scored_against_its_own_tokens_is_near_the_float_score(states, preset):
    """Self matches are in the monotone map's sample: an exact duplicate scores about 1, as with float states."""
    codec = TokenCodec.fit(preset, states[:4000])
    docs = [states[4000 + i * 40 : 4040 + i * 40] for i in range(40)]
    linear = replace(codec, knots=None)
    own, own_linear = [], []
    for doc in docs:
        codes, lengths = codec.encode_docs([doc])
        own.append(float(maxsim_flat(doc, codes, lengths, codec=codec)))
        own_linear.append(float(maxsim_flat(doc, codes, lengths, codec=linear)))
    assert min(own) > 0.95 and np.mean(own) > 0.98  # 32 bits on 64-d states: coarser than 128 on 384
    assert np.mean(own) - np.mean(own_linear) > 0.02  # what the map adds over the gain and bias alone


def test_a_codec_saved_without_a_map_loads_and_scores_with_its_line(states):
    """Codecs fitted before the monotone map keep their JSON, fingerprint and scores."""
    fitted = TokenCodec.fit("pca32-sign", states)
    old_json = json.dumps({k: v for k, v in json.loads(fitted.to_json()).items() if k != "knots"})
    old = TokenCodec.from_json(old_json)
    assert old.knots is None and old.to_json() == old_json
    assert old.fingerprint() != fitted.fingerprint()
    best = torch.tensor([[0.1, 0.5, 0.9]])
    assert torch.equal(old.calibrate(best), best)
    assert TokenCodec.from_json(fitted.to_json()).knots.tolist() == fitted.knots.tolist()
