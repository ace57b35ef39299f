"""The store package's own API: opening a table without an encoder, describing it, and the one home of
the token-width and token-count rules."""

from __future__ import annotations

import lancedb
import numpy as np
import pyarrow as pa
import pytest
from hash_encoder import HashEncoder

from smart_retrievers.index import SmartIndex
from smart_retrievers.store import (
    FORMAT_VERSION,
    FingerprintMismatchError,
    SmartStore,
    TableInfo,
    TableNotFoundError,
    n_tokens_column,
    token_dim_of,
    tokens_to_arrow,
)
from smart_retrievers.store.format import stored_format

TEXTS = [f"a longer document number {i} with several words" for i in range(30)]


def test_open_existing_reads_the_tables_own_fingerprint(tmp_path):
    db = str(tmp_path / "db")
    encoder = HashEncoder(dim=32)
    SmartIndex(db, encoder=encoder, compression="none").add(TEXTS[:5], ids=list("abcde"))
    store = SmartStore.open_existing(db, "smart")
    assert store.fingerprint == encoder.fingerprint and store.count() == 5
    assert store.get(["c"]).column("text").to_pylist() == [TEXTS[2]]
    assert store.delete(ids=["a", "b"]) == 2 and store.count() == 3


def test_open_existing_names_the_tables_that_do_exist(tmp_path):
    db = str(tmp_path / "db")
    SmartIndex(db, encoder=HashEncoder(dim=32, n_tokens=12), compression="pool2-pca16-sign", table="docs").add(
        TEXTS, ids=[str(i) for i in range(30)]
    )
    # the codec side table (docs__smart_codecs) is not offered as a table
    with pytest.raises(TableNotFoundError, match=r"no table 'nope' at .* \(tables there: docs\)$"):
        SmartStore.open_existing(db, "nope")
    with pytest.raises(TableNotFoundError, match=r"tables there: none"):
        SmartStore.open_existing(str(tmp_path / "empty"), "docs")


def test_open_existing_refuses_a_table_smart_retrievers_did_not_write(tmp_path):
    db = str(tmp_path / "db")
    lancedb.connect(db).create_table("plain", pa.table({"id": ["a"], "vector": [[0.1, 0.2]]}))
    with pytest.raises(FingerprintMismatchError, match="'plain' .* not written by smart-retrievers"):
        SmartStore.open_existing(db, "plain")


def test_describe_a_float16_table(tmp_path):
    db = str(tmp_path / "db")
    index = SmartIndex(db, encoder=HashEncoder(dim=32), compression="none")
    index.add(TEXTS[:4], ids=list("abcd"), metadatas=[{"year": 2020, "tag": "x"}] * 4)
    info = SmartStore.open_existing(db, "smart").describe()
    assert isinstance(info, TableInfo)
    assert (info.rows, info.dim, info.token_dim, info.compression) == (4, 32, 32, "none")
    assert info.codec is None and info.codec_ref is None and info.codec_table_bytes == 0
    assert info.fingerprint == HashEncoder(dim=32).fingerprint and info.layout.native
    assert info.field_types == {"year": "int", "tag": "str"}
    assert info.bytes_per_token == 64.0  # 32 float16 values
    assert info.table_bytes == index.store.table.stats()["total_bytes"] > 0
    assert info.version == index.store.version
    assert info.format == stored_format(index.store.table.schema) == FORMAT_VERSION == 2  # read from the schema


def test_describe_a_coded_table_and_one_not_yet_written(tmp_path):
    db = str(tmp_path / "db")
    encoder = HashEncoder(dim=32, n_tokens=12)
    index = SmartIndex(db, encoder=encoder, compression="pool2-pca16-sign")
    empty = index.store.describe()
    assert (empty.rows, empty.version, empty.table_bytes, empty.compression) == (0, None, 0, "pool2-pca16-sign")
    assert empty.codec is None and empty.bytes_per_token is None  # not fitted yet
    assert empty.format == FORMAT_VERSION  # the format its first write will record
    index.add(TEXTS, ids=[str(i) for i in range(30)])
    info = SmartStore.open_existing(db, "smart").describe()
    assert info.compression == "pool2-pca16-sign" and info.codec["bytes_per_token"] == 2
    assert info.bytes_per_token == 1.0  # 16 sign bits per kept token, about one token in two kept
    assert info.codec_ref == index.store.codec_ref and info.codec_table_bytes > 0


def test_one_rule_for_token_width_and_token_counts():
    assert token_dim_of({"dim": 384}) == 384  # fingerprints written before token_dim was recorded
    assert token_dim_of({"dim": 384, "token_dim": 128}) == 128
    tokens = tokens_to_arrow([np.ones((2, 4)), np.ones((5, 4)), np.ones((1, 4))], 4)
    assert n_tokens_column(tokens).to_pylist() == [2, 5, 1] and n_tokens_column(tokens).type == pa.int32()


def test_what_is_read_once_per_version_follows_another_handles_commits(tmp_path):
    """Schema, field map, row count and full-text index are read once per table version: a second look
    at an unchanged table reuses what was read, and another handle's commits show at once."""
    db = str(tmp_path / "db")
    writer = SmartIndex(db, encoder=HashEncoder(dim=32), compression="none")
    writer.add(TEXTS[:4], ids=list("abcd"), metadatas=[{"year": 2020}] * 4)
    reader = SmartStore.open_existing(db, "smart")
    assert reader.count() == 4 and reader.field_types == {"year": "int"} and reader.text_index is not None
    schema = reader._current_schema()
    assert reader._current_schema() is schema  # the same version: kept, not read again

    writer.add(TEXTS[4:6], ids=["e", "f"], metadatas=[{"tag": "new"}] * 2)
    assert reader.count() == 6
    assert reader.field_types == {"year": "int", "tag": "str"}
    assert reader._current_schema() is not schema
    assert reader.count(where={"tag": "new"}) == 2
    writer.store.table.drop_index(reader.text_index.name)
    assert reader.text_index is None
