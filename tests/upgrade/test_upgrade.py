"""Upgrading single-vector LanceDB tables in place: LanceDB's LlamaIndex and LangChain stores, plain tables.

The stores are the real packages (``llama-index-vector-stores-lancedb``, ``langchain-community``,
in the ``[dev]`` extra), writing and reading with their own code before and after the upgrade.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pytest
from counting_encoder import Counting, Interrupted
from hash_encoder import HashEncoder

from smart_retrievers.cli import main
from smart_retrievers.index import SmartIndex
from smart_retrievers.store import FingerprintMismatchError, UpgradedTableError
from smart_retrievers.upgrade import VectorMismatchError, upgrade_table

TEXTS = [
    "The cat sat on the mat by the door.",
    "Dogs chase cats across the garden.",
    "Quantum computers use qubits to compute.",
    "A recipe for banana bread with walnuts.",
    "The stock market fell sharply today.",
    "Photosynthesis turns light into chemical energy.",
]
TOPICS = ["animals", "animals", "science", "food", "finance", "science"]
USER_COLUMNS = ["id", "text", "vector", "metadata"]


def _user_rows(uri: str, table: str, columns: list[str] = USER_COLUMNS) -> list[dict[str, Any]]:
    """The user's own columns, as their store sees them, sorted by id."""
    rows = lancedb.connect(uri).open_table(table).to_arrow().select(columns).to_pylist()
    return sorted(rows, key=lambda r: r[columns[0]])


def _native_hits(
    tmp_path: Path, encoder: Any, query: str, texts: list[str] = TEXTS, **kwargs: Any
) -> list[tuple[str, float]]:
    """The same texts in a table written by smart-retrievers itself (the reference ranking)."""
    native = SmartIndex(str(tmp_path / "native"), encoder=encoder, compression="none")
    native.add(texts, ids=[f"n{i}" for i in range(len(texts))])
    return [(h.id, h.score) for h in native.search(query, k=3, **kwargs)]


# ---- LlamaIndex's LanceDBVectorStore --------------------------------------------------


def _llama_index_store(uri: str, encoder: Any, texts: list[str], first: int = 0) -> Any:
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    store = LanceDBVectorStore(uri=uri, table_name="docs")
    nodes = _llama_index_nodes(texts, first)
    for node, encoding in zip(nodes, encoder.encode_documents(_embed_texts(nodes), show_progress=False), strict=True):
        node.embedding = encoding.pooled.tolist()  # as LlamaIndex embeds a node: its metadata lines and text
    store.add(nodes)
    return store


def _llama_index_nodes(texts: list[str], first: int = 0) -> list[Any]:
    from llama_index.core.schema import TextNode

    return [
        TextNode(
            text=text,
            id_=f"n{first + i}",
            metadata={"topic": TOPICS[(first + i) % len(TOPICS)], "year": 2000 + first + i},
        )
        for i, text in enumerate(texts)
    ]


def _embed_texts(nodes: list[Any]) -> list[str]:
    from llama_index.core.schema import MetadataMode

    return [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]


def _llama_index_query(store: Any, encoder: Any, query: str) -> list[str]:
    from llama_index.core.vector_stores import VectorStoreQuery

    vector = encoder.encode_queries([query], show_progress=False)[0].pooled.tolist()
    return [n.node_id for n in store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=3)).nodes]


def test_llama_index_table_serves_smart_search_and_its_own_store(tmp_path, encoder):
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    uri = str(tmp_path / "li")
    _llama_index_store(uri, encoder, TEXTS[:4])
    _llama_index_store(uri, encoder, TEXTS[4:], first=4)  # a second fragment
    store = LanceDBVectorStore(uri=uri, table_name="docs")
    before_rows, before_query = _user_rows(uri, "docs"), _llama_index_query(store, encoder, "kitten on a rug")

    report = upgrade_table(uri, "docs", encoder, compression="none", batch_size=2)
    assert (report.rows, report.backfilled, report.caught_up) == (6, 6, 0)
    assert report.min_cosine > 0.9999 and report.vector_column == "vector"
    # the user's rows are untouched, and their store (reopened, its own code) answers as before
    assert _user_rows(uri, "docs") == before_rows
    reopened = LanceDBVectorStore(uri=uri, table_name="docs")
    assert _llama_index_query(reopened, encoder, "kitten on a rug") == before_query

    index = SmartIndex(uri, encoder=encoder, table="docs")
    assert index.store.layout.owner == "llama-index"
    hits = index.search("kitten on a rug", k=3)
    expected = _native_hits(tmp_path, encoder, "kitten on a rug", _embed_texts(_llama_index_nodes(TEXTS)))
    assert [h.id for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=2e-3)  # fp16 tokens
    assert hits[0].metadata == {"topic": "animals", "year": 2000}  # LlamaIndex's internal keys left out
    # filters on the store's struct metadata, in every mode
    assert {h.id for h in index.search("science", k=6, where={"topic": "science"})} == {"n2", "n5"}
    assert {h.id for h in index.search("x", k=6, where={"year": {"$gte": 2004}}, mode="exhaustive")} == {"n4", "n5"}
    assert {h.id for h in index.search("x", k=6, where={"$not": {"topic": {"$in": ["animals", "food"]}}})} == {
        "n2",
        "n4",
        "n5",
    }
    with pytest.raises(ValueError, match="internal metadata key"):
        index.search("x", where={"_llama_index": 1})
    assert index.count({"topic": "animals"}) == 2

    from llama_index.core.vector_stores import MetadataFilter, MetadataFilters

    from smart_retrievers.llama_index import SmartRetriever

    retriever = SmartRetriever(
        index, similarity_top_k=2, filters=MetadataFilters(filters=[MetadataFilter(key="topic", value="science")])
    )
    nodes = retriever.retrieve("how do plants make energy from light?")
    assert [n.node.node_id for n in nodes] == ["n5", "n2"] and nodes[0].node.metadata == {
        "topic": "science",
        "year": 2005,
    }


def test_rows_the_store_writes_later_are_found_then_caught_up(tmp_path, encoder):
    uri = str(tmp_path / "li")
    _llama_index_store(uri, encoder, TEXTS)
    index = SmartIndex.upgrade(uri, "docs", encoder=encoder, compression="none")
    store = _llama_index_store(uri, encoder, ["Kittens nap on soft rugs."], first=9)  # the user's store writes on
    assert _llama_index_query(store, encoder, "kittens napping")[0] == "n9"

    before = index.search("kittens napping on a rug", k=2)  # searched with its pooled vector as its one token
    assert before[0].id == "n9"
    report = upgrade_table(uri, "docs", encoder)
    assert (report.backfilled, report.caught_up, report.rows) == (0, 1, 7)
    after = index.search("kittens napping on a rug", k=2)
    assert after[0].id == "n9" and after[0].late_score != pytest.approx(before[0].late_score)
    fresh = SmartIndex(str(tmp_path / "fresh"), encoder=encoder, compression="none")
    fresh.add(_embed_texts(_llama_index_nodes(["Kittens nap on soft rugs."], first=9)), ids=["n9"])
    assert after[0].late_score == pytest.approx(fresh.search("kittens napping on a rug", k=1)[0].late_score, abs=2e-3)
    assert upgrade_table(uri, "docs", encoder).caught_up == 0  # nothing left to do


def test_writes_through_smart_index_are_refused_with_the_way_to_do_them(tmp_path, encoder):
    uri = str(tmp_path / "li")
    _llama_index_store(uri, encoder, TEXTS)
    index = SmartIndex.upgrade(uri, "docs", encoder=encoder)
    version = index.store.version
    with pytest.raises(UpgradedTableError, match="Write through that store, then run upgrade"):
        index.add(["new text"])
    assert index.store.version == version and index.count() == 6
    assert index.delete(ids=["n1"]) == 1 and index.count() == 5  # deletes are plain predicates: allowed


# ---- LangChain's LanceDB store --------------------------------------------------------


def test_langchain_table_with_list_metadata(tmp_path, encoder):
    from langchain_community.vectorstores import LanceDB

    from smart_retrievers.langchain import SmartEmbeddings

    uri = str(tmp_path / "lc")
    metadatas = [{"topic": t, "tags": [t, f"n{i}"]} for i, t in enumerate(TOPICS)]
    embeddings = SmartEmbeddings(encoder)
    LanceDB.from_texts(TEXTS, embeddings, metadatas=metadatas, uri=uri, table_name="lc")
    ids_by_text = {r["text"]: r["id"] for r in _user_rows(uri, "lc")}
    before = _user_rows(uri, "lc")

    index = SmartIndex.upgrade(uri, "lc", encoder=encoder, compression="none")
    assert _user_rows(uri, "lc") == before
    assert index.store.layout.owner == "langchain"
    again = LanceDB(uri=uri, table_name="lc", embedding=embeddings)  # LangChain's own code, reopened
    assert again.similarity_search("banana bread", k=1)[0].page_content == TEXTS[3]

    hits = index.search("kitten on a rug", k=3)
    expected = _native_hits(tmp_path, encoder, "kitten on a rug")
    assert [h.text for h in hits] == [TEXTS[int(i[1:])] for i, _ in expected]
    assert hits[0].id == ids_by_text[hits[0].text]
    assert hits[0].metadata == {"topic": "animals", "tags": ["animals", "n0"]}
    found = index.search("x", k=6, where={"tags": {"$in": ["n2", "n3"]}})
    assert {h.text for h in found} == {TEXTS[2], TEXTS[3]}
    assert {h.text for h in index.search("x", k=6, where={"tags": {"$ne": "science"}})} == {
        TEXTS[i] for i in (0, 1, 3, 4)
    }
    assert index.count({"tags": {"$exists": True}}) == 6 and index.count({"tags": {"$is_empty": True}}) == 0
    assert index.count({"year": 2001}) == 0 and index.count({"year": {"$ne": 2001}}) == 6  # a field no row has

    from smart_retrievers.langchain import SmartRetriever

    docs = SmartRetriever(index=index, k=1, filter={"topic": "food"}).invoke("what can I bake?")
    assert [d.page_content for d in docs] == [TEXTS[3]] and docs[0].id == ids_by_text[TEXTS[3]]


# ---- plain LanceDB tables -------------------------------------------------------------


def _plain_table(uri: str, encoder: Any, *, vectors: np.ndarray | None = None, **names: str) -> Any:
    encodings = encoder.encode_documents(TEXTS)
    vectors = np.stack([e.pooled for e in encodings]) if vectors is None else vectors
    data = pa.table(
        {
            names.get("id", "id"): [f"d{i}" for i in range(len(TEXTS))],
            names.get("text", "text"): TEXTS,
            names.get("vector", "vector"): pa.FixedSizeListArray.from_arrays(
                pa.array(vectors.astype(np.float32).reshape(-1)), vectors.shape[1]
            ),
            "source": [f"s{i // 2}" for i in range(len(TEXTS))],
        }
    )
    return lancedb.connect(uri).create_table("plain", data)


def test_plain_table_with_its_own_column_names(tmp_path):
    encoder = HashEncoder()
    uri = str(tmp_path / "plain")
    _plain_table(uri, encoder, id="key", text="body", vector="emb")
    with pytest.raises(ValueError, match="no id column 'id' \\(its columns: \\['body', 'emb', 'key', 'source'\\]\\)"):
        upgrade_table(uri, "plain", encoder)
    index = SmartIndex.upgrade(
        uri, "plain", encoder=encoder, text_column="body", vector_column="emb", id_column="key", ref_id_column="source"
    )
    assert index.store.layout.owner == "lancedb" and index.store.layout.metadata is None
    assert index.search(TEXTS[4], k=1)[0].id == "d4"
    assert {h.id for h in index.search(TEXTS[4], k=6, where={"ref_id": "s1"})} == {"d2", "d3"}
    assert index.get(["d1"])[0].text == TEXTS[1] and index.get(["d1"])[0].ref_id == "s0"
    assert index.delete(ref_ids=["s0"]) == 2
    assert index.search("x", where={"year": 1}) == []  # no metadata: every field is missing


def test_vectors_of_another_model_are_refused_or_given_their_own_column(tmp_path):
    encoder = HashEncoder()
    uri = str(tmp_path / "plain")
    other = np.random.default_rng(0).standard_normal((len(TEXTS), encoder.dim))
    table = _plain_table(uri, encoder, vectors=other)
    version = table.version
    with pytest.raises(VectorMismatchError, match="reencode_vectors=True"):
        upgrade_table(uri, "plain", encoder)
    assert lancedb.connect(uri).open_table("plain").version == version  # nothing written
    wrong_dim = str(tmp_path / "wrong-dim")
    _plain_table(wrong_dim, encoder, vectors=np.ones((len(TEXTS), 7)))
    with pytest.raises(VectorMismatchError, match="7-d vectors"):
        upgrade_table(wrong_dim, "plain", encoder)

    before = _user_rows(uri, "plain", ["id", "text", "vector"])
    report = upgrade_table(uri, "plain", encoder, reencode_vectors=True)
    assert report.vector_column == "smart_vector" and report.min_cosine is None
    assert _user_rows(uri, "plain", ["id", "text", "vector"]) == before  # the user's vectors stay
    index = SmartIndex(uri, encoder=encoder, table="plain")
    hit = index.search(TEXTS[2], k=1)[0]
    query = encoder.encode_queries([TEXTS[2]])[0].pooled
    doc = encoder.encode_documents([TEXTS[2]])[0].pooled
    assert hit.id == "d2"
    assert hit.pooled_score == pytest.approx(float(query @ doc / np.linalg.norm(query) / np.linalg.norm(doc)), abs=1e-5)


# ---- interrupted upgrades -------------------------------------------------------------


def test_an_interrupted_upgrade_leaves_the_table_readable_and_a_rerun_finishes(tmp_path):
    uri = str(tmp_path / "plain")
    db = lancedb.connect(uri)
    for part in range(3):  # three fragments of four rows
        texts = [f"document {part}-{i} about topic {i}" for i in range(4)]
        pooled = np.stack([e.pooled for e in HashEncoder().encode_documents(texts)]).astype(np.float32)
        data = pa.table(
            {
                "id": [f"{part}-{i}" for i in range(4)],
                "text": texts,
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(pooled.reshape(-1)), pooled.shape[1]),
            }
        )
        db.create_table("plain", data) if part == 0 else db.open_table("plain").add(data)
    before = _user_rows(uri, "plain", ["id", "text", "vector"])
    checkpoints = tmp_path / "checkpoints"

    first = Counting(
        fail_on=5
    )  # call 1 encodes the sample (vector check, codec fit); 2-4 backfill three batches; 5 fails
    with pytest.raises(Interrupted):
        upgrade_table(uri, "plain", first, batch_size=2, checkpoint_dir=checkpoints)
    table = lancedb.connect(uri).open_table("plain")
    assert "tokens" not in table.schema.names  # nothing of the backfill committed
    assert _user_rows(uri, "plain", ["id", "text", "vector"]) == before  # the user's table reads as before
    with pytest.raises(ValueError, match="run upgrade\\(\\) .* again to finish it"):
        SmartIndex(uri, encoder=HashEncoder(), table="plain")
    assert list(checkpoints.iterdir())  # finished batches kept

    second = Counting()
    report = upgrade_table(uri, "plain", second, batch_size=2, checkpoint_dir=checkpoints)
    assert report.backfilled == 12 and second.encoded == 12 - 6  # resumed: only the unfinished batches
    assert not list(checkpoints.iterdir())  # done: the checkpoint is removed
    index = SmartIndex(uri, encoder=HashEncoder(), table="plain")
    assert index.search("document 2-3 about topic 3", k=1)[0].id == "2-3"
    whole = SmartIndex(str(tmp_path / "native"), encoder=HashEncoder())
    whole.add([r["text"] for r in before], ids=[r["id"] for r in before])
    late = {h.id: h.late_score for h in index.search("topic 1", k=12, mode="exhaustive", lambda_pool=0)}
    reference = {h.id: h.late_score for h in whole.search("topic 1", k=12, mode="exhaustive", lambda_pool=0)}
    assert late.keys() == reference.keys()
    assert max(abs(late[i] - reference[i]) for i in late) < 0.05  # same states; codecs fitted on other samples


def test_a_rerun_with_another_encoder_or_codec_is_refused(tmp_path):
    uri = str(tmp_path / "plain")
    _plain_table(uri, HashEncoder())
    upgrade_table(uri, "plain", HashEncoder())
    with pytest.raises(FingerprintMismatchError, match="upgrade it with the same model"):
        upgrade_table(uri, "plain", HashEncoder(dim=16))
    with pytest.raises(ValueError, match="not 'none'"):
        upgrade_table(uri, "plain", HashEncoder(), compression="none")
    native = SmartIndex(str(tmp_path / "native"), encoder=HashEncoder())
    native.add(TEXTS)
    with pytest.raises(ValueError, match="written by smart-retrievers"):
        upgrade_table(str(tmp_path / "native"), "smart", HashEncoder())
    with pytest.raises(ValueError, match="no table 'missing'"):
        upgrade_table(uri, "missing", HashEncoder())


def test_cli_upgrade(tmp_path, encoder, capsys, monkeypatch):
    import smart_retrievers.upgrade.backfill as backfill

    uri = str(tmp_path / "li")
    _llama_index_store(uri, encoder, TEXTS)
    with monkeypatch.context() as patch:
        patch.setattr(backfill, "_commit", lambda *args: False)  # the owner's store commits before every try
        assert main(["upgrade", "--db", uri, "--table", "docs"]) == 1
    err = capsys.readouterr().err
    assert "error: the upgrade of table 'docs' could not commit" in err and "Nothing was lost" in err
    assert main(["upgrade", "--db", uri, "--table", "docs"]) == 0
    out = capsys.readouterr().out
    assert "6 rows, 6 backfilled, 0 caught up, 0 re-encoded (text changed)" in out
    assert main(["search", "banana bread", "--db", uri, "--table", "docs", "-k", "1", "--json"]) == 0
    assert '"id": "n3"' in capsys.readouterr().out
    assert main(["upgrade", "--db", uri, "--table", "nope"]) == 2
    assert "no table 'nope'" in capsys.readouterr().err


def test_rows_added_later_to_a_coded_table_are_scored_through_the_codec(tmp_path):
    encoder = HashEncoder()
    uri = str(tmp_path / "plain")
    table = _plain_table(uri, encoder)
    index = SmartIndex.upgrade(uri, "plain", encoder=encoder)  # the default codec
    assert index.codec is not None
    text = "A late row about lighthouses."
    pooled = encoder.encode_documents([text])[0].pooled.astype(np.float32)
    table.add(pa.table({"id": ["late"], "text": [text], "vector": [pooled.tolist()], "source": ["s9"]}))
    hit = index.search(text, k=1)[0]
    assert hit.id == "late"  # no token states yet: its pooled vector, coded, is its one token
    query = encoder.encode_queries([text])[0]
    assert hit.pooled_score == pytest.approx(float(query.pooled @ pooled), abs=1e-5)
    assert upgrade_table(uri, "plain", encoder).caught_up == 1
    assert index.search(text, k=1)[0].id == "late"
    row = lancedb.connect(uri).open_table("plain").search().where("id = 'late'").select(["n_tokens"]).to_list()
    assert row[0]["n_tokens"] > 1  # real states now (the codec pools pairs of tokens)


KILL_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from hash_encoder import HashEncoder
from smart_retrievers.upgrade import upgrade_table

class Slow(HashEncoder):
    def encode_documents(self, texts, **kwargs):
        time.sleep(0.3)
        out = super().encode_documents(texts, **kwargs)
        with open({progress!r}, "a") as f:
            f.write("x")
        return out

upgrade_table({uri!r}, "plain", Slow(), batch_size=2, checkpoint_dir={checkpoints!r})
"""


def test_a_killed_upgrade_leaves_the_users_table_and_a_rerun_finishes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    uri, progress, checkpoints = str(tmp_path / "plain"), tmp_path / "progress", tmp_path / "checkpoints"
    texts = [f"row {i} of a corpus about topic {i % 3}" for i in range(16)]
    pooled = np.stack([e.pooled for e in HashEncoder().encode_documents(texts)]).astype(np.float32)
    data = pa.table(
        {
            "id": [str(i) for i in range(16)],
            "text": texts,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(pooled.reshape(-1)), pooled.shape[1]),
        }
    )
    lancedb.connect(uri).create_table("plain", data)
    script = KILL_SCRIPT.format(
        tests=str(Path(__file__).parents[1]), progress=str(progress), uri=uri, checkpoints=str(checkpoints)
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    while (not progress.exists() or len(progress.read_text()) < 5) and time.monotonic() < deadline:
        assert child.poll() is None, "the upgrade ended before it could be killed"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)  # mid-backfill: the sample and 4 of 8 batches are encoded
    child.wait()

    table = lancedb.connect(uri).open_table("plain")
    assert "tokens" not in table.schema.names
    assert table.to_arrow().select(["id", "text", "vector"]).equals(data)  # the user's table, as it was
    report = upgrade_table(uri, "plain", HashEncoder(), batch_size=2, checkpoint_dir=checkpoints)
    assert report.rows == 16 and report.backfilled == 16
    index = SmartIndex(uri, encoder=HashEncoder(), table="plain")
    assert index.search(texts[11], k=1)[0].id == "11"
    assert table.to_arrow().select(["id", "text", "vector"]).equals(data)
