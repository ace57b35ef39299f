"""Upgrade reliability (issue 25: 4, 5, 8, 10): its checkpoint belongs to the texts it encoded, rows whose text
changed are re-encoded, the user's store may append meanwhile, column names need quoting."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pytest
from counting_encoder import Counting, Interrupted
from hash_encoder import HashEncoder

import smart_retrievers.upgrade.backfill as backfill
import smart_retrievers.upgrade.catch_up as catch_up
from smart_retrievers.index import SmartIndex
from smart_retrievers.upgrade import UpgradeConflictError, upgrade_table


def _rows(texts: list[str], ids: list[str], names: dict[str, str] | None = None) -> pa.Table:
    names = names or {}
    pooled = np.stack([e.pooled for e in HashEncoder().encode_documents(texts)]).astype(np.float32)
    return pa.table(
        {
            names.get("id", "id"): ids,
            names.get("text", "text"): texts,
            names.get("vector", "vector"): pa.FixedSizeListArray.from_arrays(
                pa.array(pooled.reshape(-1)), pooled.shape[1]
            ),
        }
    )


def _create(uri: str, texts: list[str], **names: str) -> Any:
    data = _rows(texts, [str(i) for i in range(len(texts))], names)
    return lancedb.connect(uri).create_table("plain", data, mode="overwrite")


def _assert_states_of_their_texts(uri: str, id_column: str = "id", text_column: str = "text") -> dict[str, str]:
    """Every row's stored token states are the encoder's states of its current text; returns {id: text}."""
    rows = lancedb.connect(uri).open_table("plain").to_arrow().select([id_column, text_column, "tokens"]).to_pylist()
    for row in rows:
        assert row["tokens"] is not None, row[id_column]
        expected = HashEncoder().encode_documents([row[text_column]])[0].tokens
        np.testing.assert_allclose(
            np.array(row["tokens"], dtype=np.float32), expected, atol=2e-3, err_msg=row[id_column]
        )
    return {r[id_column]: r[text_column] for r in rows}


def test_a_table_replaced_after_an_interrupted_upgrade_is_upgraded_from_its_own_texts(tmp_path):
    uri, checkpoints = str(tmp_path / "db"), tmp_path / "checkpoints"
    _create(uri, [f"alpha text {i}" for i in range(40)])
    with pytest.raises(Interrupted):  # call 1: the sample; 2-3: two batches checkpointed; 4 fails
        upgrade_table(uri, "plain", Counting(fail_on=4), compression="none", batch_size=10, checkpoint_dir=checkpoints)
    assert len(list(checkpoints.iterdir())) == 1
    lancedb.connect(uri).drop_table("plain")
    beta = [f"beta text {i}" for i in range(40)]
    _create(uri, beta)  # the same name, ids and fragment numbers; other texts

    rerun = Counting()
    report = upgrade_table(uri, "plain", rerun, compression="none", batch_size=10, checkpoint_dir=checkpoints)
    assert (report.rows, report.backfilled, report.min_cosine) == (40, 40, 1.0)
    assert rerun.encoded == 40 + 40  # the sample (every row), then every row: nothing of the old checkpoint used
    assert _assert_states_of_their_texts(uri) == {str(i): t for i, t in enumerate(beta)}
    assert not list(checkpoints.iterdir())


def test_a_row_changed_inside_a_checkpointed_batch_is_encoded_again(tmp_path):
    uri, checkpoints = str(tmp_path / "db"), tmp_path / "checkpoints"
    table = _create(uri, [f"document {i} of sixteen" for i in range(16)])
    with pytest.raises(Interrupted):  # batches 0-2 (rows 0-11) checkpointed; batch 3 not
        upgrade_table(uri, "plain", Counting(fail_on=5), compression="none", batch_size=4, checkpoint_dir=checkpoints)
    table.delete("id = '1'")  # inside batch 0
    table.update(where="id = '6'", values={"text": "document six, rewritten by the user's store"})  # batch 1

    rerun = Counting()
    report = upgrade_table(uri, "plain", rerun, batch_size=4, checkpoint_dir=checkpoints)
    # batch 0 (3 rows left) and batch 1 (3 rows left) again, batch 2 reused, batch 3, the updated row's new fragment
    assert rerun.encoded == 3 + 3 + 4 + 1
    assert (report.rows, report.backfilled) == (15, 15)
    texts = _assert_states_of_their_texts(uri)
    assert "1" not in texts and texts["6"] == "document six, rewritten by the user's store"


def test_rows_whose_text_changed_after_the_upgrade_are_re_encoded(tmp_path):
    uri = str(tmp_path / "db")
    table = _create(uri, [f"first version of row {i}" for i in range(6)])
    assert upgrade_table(uri, "plain", HashEncoder(), compression="none").backfilled == 6
    changed = {"2": "row two says something else now", "4": "and row four too"}
    new_vectors = {i: HashEncoder().encode_documents([t])[0].pooled.tolist() for i, t in changed.items()}
    table.update(where="id = '2'", values={"text": changed["2"], "vector": new_vectors["2"]})  # LanceDB update
    upsert = _rows([changed["4"]], ["4"])
    table.merge_insert("id").when_matched_update_all().execute(upsert)  # an upsert of the user's own columns
    stale = lancedb.connect(uri).open_table("plain").search().where("id = '2'").to_list()[0]
    assert stale["tokens"] is not None  # the user's update kept the old token states

    rerun = Counting()
    report = upgrade_table(uri, "plain", rerun)
    assert (report.caught_up, report.refreshed, rerun.encoded) == (0, 2, 2)
    texts = _assert_states_of_their_texts(uri)
    assert texts["2"] == changed["2"] and texts["4"] == changed["4"]
    index = SmartIndex(uri, encoder=HashEncoder(), table="plain")
    assert index.search(changed["4"], k=1)[0].late_score == pytest.approx(1.0, abs=2e-3)
    again = upgrade_table(uri, "plain", HashEncoder())
    assert (again.caught_up, again.refreshed) == (0, 0)


def test_a_table_upgraded_before_text_hashes_is_re_encoded_once(tmp_path):
    uri = str(tmp_path / "db")
    _create(uri, [f"row {i}" for i in range(5)])
    upgrade_table(uri, "plain", HashEncoder(), compression="none")
    lancedb.connect(uri).open_table("plain").drop_columns(["tokens_text_hash"])  # as an earlier version left it
    report = upgrade_table(uri, "plain", HashEncoder())
    assert (report.caught_up, report.refreshed) == (5, 0)
    assert upgrade_table(uri, "plain", HashEncoder()).caught_up == 0
    _assert_states_of_their_texts(uri)


def test_upgrade_while_the_users_store_appends_from_another_process(tmp_path, monkeypatch):
    uri, stop, out = str(tmp_path / "db"), tmp_path / "stop", tmp_path / "appended.json"
    base = [f"a base row about subject {i}" for i in range(40)]
    _create(uri, base)
    appender = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("upgrade_appender.py")),
            uri,
            "plain",
            str(stop),
            str(out),
            "0.2",
        ],
        stderr=subprocess.PIPE,
    )
    commits: list[bool] = []
    real_commit = backfill._commit

    def counted(*args: Any) -> bool:
        commits.append(real_commit(*args))
        return commits[-1]

    monkeypatch.setattr(backfill, "_commit", counted)
    try:
        table = lancedb.connect(uri, read_consistency_interval=timedelta(0)).open_table("plain")
        deadline = time.monotonic() + 60
        while table.count_rows() < 44 and time.monotonic() < deadline:  # the appender is writing
            assert appender.poll() is None, appender.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        report = upgrade_table(
            uri, "plain", Counting(sleep=0.15), compression="none", batch_size=4, show_progress=False
        )
        assert report.rows >= 44
    finally:
        stop.touch()
        _, err = appender.communicate(timeout=120)
    assert appender.returncode == 0, err.decode()[-2000:]  # its handle kept appending after the upgrade committed
    assert commits[-1] and len(commits) >= 2  # preempted by the appender at least once, then committed
    appended = json.loads(out.read_text())
    upgrade_table(uri, "plain", HashEncoder())  # the rows appended since get their token states
    texts = _assert_states_of_their_texts(uri)
    assert set(texts) == {str(i) for i in range(40)} | set(appended)  # no row lost


def test_a_commit_that_keeps_losing_says_nothing_was_lost_and_a_rerun_finishes(tmp_path, monkeypatch):
    uri, checkpoints = str(tmp_path / "db"), tmp_path / "checkpoints"
    table = _create(uri, [f"row {i} of twelve" for i in range(12)])
    monkeypatch.setattr(backfill, "_commit", lambda *args: False)  # another writer commits before every try
    with pytest.raises(UpgradeConflictError, match="Nothing was lost .* run upgrade again"):
        upgrade_table(uri, "plain", HashEncoder(), batch_size=4, checkpoint_dir=checkpoints)
    assert "tokens" not in lancedb.connect(uri).open_table("plain").schema.names
    assert table.count_rows() == 12
    monkeypatch.undo()
    rerun = Counting()
    assert upgrade_table(uri, "plain", rerun, batch_size=4, checkpoint_dir=checkpoints).backfilled == 12
    assert rerun.encoded == 0  # every batch came from the checkpoint


def _upgraded_with_changed_texts(uri: str, checkpoints: Path) -> dict[str, str]:
    """A table of 12 rows, upgraded, whose store then changed the texts of 8: {id: text} as it is now."""
    _create(uri, [f"row {i} before" for i in range(12)])
    upgrade_table(uri, "plain", HashEncoder(), compression="none", checkpoint_dir=checkpoints)
    lancedb.connect(uri).open_table("plain").update(
        where="CAST(id AS INT) < 8", values_sql={"text": "concat('row ', id, ' after')"}
    )
    return {str(i): f"row {i} {'after' if i < 8 else 'before'}" for i in range(12)}


def _overwrite_with_its_own_rows(uri: str) -> None:
    """The user's store rewrites the table with the rows it holds (a Lance Overwrite, which LanceDB's retries of
    a concurrent merge_insert cannot resolve: "Incompatible transaction")."""
    db = lancedb.connect(uri)
    db.create_table("plain", db.open_table("plain").to_arrow(), mode="overwrite")


def test_a_catch_up_commit_lost_to_the_users_store_is_retried_from_the_latest_version(tmp_path):
    """Issue 25 (8): the catch-up's merge_insert failed with Lance's raw error when the user's store committed
    something LanceDB cannot retry past; it is retried from the latest version, each batch encoded once."""
    uri, checkpoints = str(tmp_path / "db"), tmp_path / "checkpoints"
    expected = _upgraded_with_changed_texts(uri, checkpoints)

    class Overwriting(Counting):
        def encode_documents(self, texts: Any, **kwargs: Any) -> Any:
            if self.calls == 1:  # the first batch is streaming into the merge_insert
                _overwrite_with_its_own_rows(uri)
            return super().encode_documents(texts, **kwargs)

    rerun = Overwriting()
    report = upgrade_table(uri, "plain", rerun, batch_size=2, checkpoint_dir=checkpoints)
    assert (report.rows, report.caught_up, report.refreshed) == (12, 0, 8)
    assert rerun.encoded == 8  # the retry took every batch from the checkpoint
    assert _assert_states_of_their_texts(uri) == expected
    assert not list(checkpoints.iterdir())


def test_a_catch_up_that_keeps_losing_says_nothing_was_lost_and_a_rerun_finishes(tmp_path, monkeypatch):
    uri, checkpoints = str(tmp_path / "db"), tmp_path / "checkpoints"
    expected = _upgraded_with_changed_texts(uri, checkpoints)
    real_get = backfill.BatchCheckpoint.get
    gets = []

    def get(self: Any, key: str) -> Any:  # the user's store overwrites the table during every try's second batch
        gets.append(key)
        if len(gets) % 4 == 2:
            _overwrite_with_its_own_rows(uri)
        return real_get(self, key)

    monkeypatch.setattr(backfill.BatchCheckpoint, "get", get)
    with pytest.raises(
        UpgradeConflictError, match=r"8 rows written or changed .* Nothing was lost .* run upgrade again"
    ):
        upgrade_table(uri, "plain", HashEncoder(), batch_size=2, checkpoint_dir=checkpoints)
    assert len(gets) == 4 * catch_up.ATTEMPTS
    rows = lancedb.connect(uri).open_table("plain").to_arrow()
    assert dict(zip(rows.column("id").to_pylist(), rows.column("text").to_pylist(), strict=True)) == expected
    monkeypatch.undo()
    rerun = Counting()
    assert upgrade_table(uri, "plain", rerun, batch_size=2, checkpoint_dir=checkpoints).refreshed == 8
    assert rerun.encoded == 0  # every batch came from the checkpoint
    assert _assert_states_of_their_texts(uri) == expected


def test_column_names_with_spaces(tmp_path):
    uri = str(tmp_path / "db")
    names = {"id": "row id", "text": "the text", "vector": "my vector"}
    data = _rows([f"text number {i}" for i in range(8)], [str(i) for i in range(8)], names)
    table = lancedb.connect(uri).create_table(
        "plain", data.append_column("src doc", pa.array([f"s{i // 2}" for i in range(8)]))
    )
    kwargs = {
        "id_column": "row id",
        "text_column": "the text",
        "vector_column": "my vector",
        "ref_id_column": "src doc",
    }
    report = upgrade_table(uri, "plain", HashEncoder(), **kwargs)
    assert (report.rows, report.backfilled) == (8, 8)
    index = SmartIndex(uri, encoder=HashEncoder(), table="plain")
    assert index.search("text number 3", k=1)[0].id == "3"
    assert [h.text for h in index.get(["5"])] == ["text number 5"]
    assert {h.id for h in index.search("text", k=8, where={"ref_id": "s2"})} == {"4", "5"}
    assert index.delete(ids=["1"]) == 1 and index.delete(ref_ids=["s3"]) == 2 and index.count() == 5
    table.update(where="`row id` = '2'", values={"the text": "text number two, changed"})
    assert upgrade_table(uri, "plain", HashEncoder()).refreshed == 1
    assert index.search("text number two, changed", k=1)[0].id == "2"
