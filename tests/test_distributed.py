"""Ray Data ingest writes, row for row, what SmartIndex.add writes, as one commit."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import ray  # the [ray] extra, part of [all]
import torch

from smart_retrievers.index import SmartIndex
from smart_retrievers.store import tokens_from_arrow, vectors_block
from smart_retrievers.validation import corpus_item


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[dict]:
    rows = [
        {
            "_id": f"d{i}",
            "title": f"Note {i}",
            "text": f"document {i} is about topic {i % 7}, " * (1 + i % 5),
            "metadata": {"n": i, "topic": f"t{i % 7}"},
        }
        for i in range(200)
    ]
    return rows


def _write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _sorted_rows(index: SmartIndex):
    return index.store.table.to_arrow().sort_by("id")


def test_ray_ingest_equals_add_row_for_row(local_ray, corpus, tmp_path, encoder):
    from smart_retrievers.distributed import index_with_ray

    path = _write_jsonl(tmp_path / "corpus.jsonl", corpus)
    got = index_with_ray(path, str(tmp_path / "ray"), actors=1, compression="none", show_progress=False)
    items = [corpus_item(r) for r in corpus]
    want = SmartIndex(str(tmp_path / "add"), encoder=encoder, compression="none")
    want.add([i["text"] for i in items], ids=[i["id"] for i in items], metadatas=[i["metadata"] for i in items])
    a, b = _sorted_rows(got), _sorted_rows(want)
    assert a.column("id").to_pylist() == b.column("id").to_pylist() and len(a) == 200
    assert a.column("text").to_pylist() == b.column("text").to_pylist()
    assert [json.loads(m) for m in a.column("metadata").to_pylist()] == [
        json.loads(m) for m in b.column("metadata").to_pylist()
    ]
    assert torch.allclose(vectors_block(a.column("vector")), vectors_block(b.column("vector")), atol=1e-6, rtol=0)
    ta, tb = tokens_from_arrow(a.column("tokens")), tokens_from_arrow(b.column("tokens"))
    assert (ta.offsets == tb.offsets).all()
    # float16 states: equal up to one unit in the last place of float16 (batches are padded differently)
    assert torch.allclose(ta.values.float(), tb.values.float(), atol=2e-3, rtol=0)
    assert got.store.fingerprint == want.store.fingerprint and got.store.field_types == want.store.field_types
    assert got.search("topic 3 document", k=3, where={"topic": "t3"})[0].metadata["topic"] == "t3"


def test_ray_ingest_from_a_dataset_with_the_default_codec(local_ray, corpus, tmp_path):
    from smart_retrievers.distributed import index_with_ray

    dataset = ray.data.from_items([{"id": r["_id"], "text": r["text"]} for r in corpus[:50]])
    index = index_with_ray(dataset, str(tmp_path / "db"), upsert=False, show_progress=False)
    assert index.count() == 50 and index.codec is not None  # the default codec, fitted on the first batch
    assert index.search(corpus[17]["text"], k=1)[0].id == "d17"


def test_a_bad_row_writes_nothing(local_ray, corpus, tmp_path):
    from smart_retrievers.distributed import index_with_ray

    rows = [*corpus[:120], {"id": "bad", "text": 42}, *corpus[120:140]]
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(Exception, match='"text" must be a string'):
        index_with_ray(path, str(tmp_path / "db"), batch_size=32, show_progress=False)
    assert SmartIndex(str(tmp_path / "db")).count() == 0


def test_cli_index_with_ray(local_ray, corpus, tmp_path, capsys):
    from smart_retrievers.cli import main

    path = _write_jsonl(tmp_path / "corpus.jsonl", corpus[:40])
    assert main(["index", path, "--db", str(tmp_path / "db"), "--ray", "--actors", "1"]) == 0
    assert "40 rows now" in capsys.readouterr().out
    assert SmartIndex(str(tmp_path / "db")).count() == 40
