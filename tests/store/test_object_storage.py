"""SmartIndex on S3 object storage, end to end, against a local S3-compatible server (moto).

The server runs in this process on 127.0.0.1; LanceDB talks to it over HTTP exactly as to
AWS S3 (``storage_options`` with ``endpoint`` and ``allow_http``). Nothing of LanceDB is mocked.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hash_encoder import FAIL_MARK, HashEncoder

from smart_retrievers.index import SmartIndex
from smart_retrievers.store import FingerprintMismatchError

BUCKET = "smart-retrievers-test"
TEXTS = [
    "The red star is labelled K7.",
    "The blue circle is labelled P2.",
    "Dogs chase cats across the garden.",
    "A recipe for lemon cake with icing.",
    "Quantum computers use qubits.",
]


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """A moto S3 server on a free local port with one bucket; yields LanceDB storage_options."""
    import boto3  # both come with moto[server], in the [dev] extra
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {
        "endpoint": f"http://127.0.0.1:{port}",
        "allow_http": "true",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "region": "us-east-1",
    }
    client = boto3.client(
        "s3",
        endpoint_url=options["endpoint"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    yield options
    server.stop()


def test_writes_searches_and_reopens_on_s3(s3, encoder):
    uri = f"s3://{BUCKET}/end-to-end"
    index = SmartIndex(uri, encoder=encoder, storage_options=s3, write_batch_size=2, compression="none")
    index.add(TEXTS, ids=list("abcde"), metadatas=[{"year": 2020 + i} for i in range(5)])
    assert index.count() == 5
    for mode in ("rerank", "exhaustive", "pooled"):
        assert index.search("which label does the red star have?", k=1, mode=mode)[0].id == "a"
    assert [h.id for h in index.search("animals", k=5, where={"year": {"$gte": 2022}})][0] == "c"
    index.add(["The red star is now labelled K9."], ids=["a"], metadatas=[{"year": 2030}])  # upsert
    assert index.delete(["e"]) == 1
    reopened = SmartIndex(uri, encoder=encoder, storage_options=s3)
    assert reopened.count() == 4 and reopened.get(["a"])[0].text.endswith("K9.")
    assert reopened.search("red star label", k=1)[0].metadata == {"year": 2030}
    with pytest.raises(FingerprintMismatchError, match="was built with encoder"):
        SmartIndex(uri, encoder=HashEncoder(), storage_options=s3)


def test_a_failed_write_on_s3_commits_nothing(s3):
    index = SmartIndex(f"s3://{BUCKET}/atomic", encoder=HashEncoder(), storage_options=s3, write_batch_size=2)
    index.add(TEXTS, ids=list("abcde"))
    version = index.store.version
    with pytest.raises(RuntimeError, match="marked text"):  # fails in the third batch
        index.add(["one", "two", "three", "four", FAIL_MARK], ids=[f"n{i}" for i in range(5)])
    assert index.count() == 5 and index.store.version == version and index.get(["n0"]) == []


def test_optimize_and_a_second_handle_on_s3(s3):
    uri = f"s3://{BUCKET}/optimize"
    writer = SmartIndex(uri, encoder=HashEncoder(), storage_options=s3, ann_min_rows=64, compression="none")
    reader = SmartIndex(uri, encoder=HashEncoder(), storage_options=s3, read_consistency_interval=timedelta(0))
    for start in range(0, 300, 100):  # three commits: three fragments to compact
        writer.add([f"text {i}" for i in range(start, start + 100)], ids=[str(i) for i in range(start, start + 100)])
    report = writer.optimize(cleanup_older_than=timedelta(0))
    assert report.rows == 300 and report.fragments_after < report.fragments_before
    assert report.index_built and report.indexed_rows == 300
    assert reader.count() == 300  # opened before the table existed, sees it now
    assert reader.search("text 123", k=1, mode="pooled")[0].id == "123"


def test_upgrades_a_single_vector_table_on_s3_in_place(s3, tmp_path):
    import lancedb
    import numpy as np
    import pyarrow as pa

    from smart_retrievers.upgrade import upgrade_table

    uri, encoder = f"s3://{BUCKET}/upgrade", HashEncoder()
    pooled = np.stack([e.pooled for e in encoder.encode_documents(TEXTS)]).astype(np.float32)
    data = pa.table(
        {
            "id": list("abcde"),
            "text": TEXTS,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(pooled.reshape(-1)), pooled.shape[1]),
        }
    )
    lancedb.connect(uri, storage_options=s3).create_table("plain", data)
    report = upgrade_table(uri, "plain", encoder, storage_options=s3, checkpoint_dir=tmp_path, batch_size=2)
    assert (report.rows, report.backfilled) == (5, 5)
    index = SmartIndex(uri, encoder=encoder, table="plain", storage_options=s3)
    assert index.search(TEXTS[3], k=1)[0].id == "d"
    user = lancedb.connect(uri, storage_options=s3).open_table("plain").to_arrow().select(["id", "text", "vector"])
    assert user.equals(data)
