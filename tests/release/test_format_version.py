"""Table format versions: tables written by earlier releases open (after ``smart-retrievers migrate`` when their
format is older) and answer as they did; a newer format is refused; every write records the current format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lancedb
import pyarrow as pa
import pytest
from make_fixtures import hits_of, open_fixture

from smart_retrievers import SmartIndex
from smart_retrievers.cli import main
from smart_retrievers.store import (
    CODEC_KEY,
    CODEC_TABLE_SUFFIX,
    FORMAT_KEY,
    FORMAT_VERSION,
    TableFormatError,
    load_codec,
    migrate_table,
)

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("format*"))


def copy_fixture(fixture: Path, tmp_path: Path) -> tuple[Path, dict]:
    """A writable copy of a committed fixture's database, and what it answered when written."""
    db = tmp_path / fixture.name
    shutil.copytree(fixture / "db", db)
    return db, json.loads((fixture / "expected.json").read_text())


def check_answers(db: Path, expected: dict) -> None:
    for table, want in expected["tables"].items():
        index = open_fixture(db, table)
        assert index.count() == want["rows"]
        assert index.store.compression == want["compression"]
        got = hits_of(index)
        assert {q: [h[0] for h in hits] for q, hits in got.items()} == {
            q: [h[0] for h in hits] for q, hits in want["hits"].items()
        }
        for query, hits in want["hits"].items():
            assert [h[1] for h in got[query]] == pytest.approx([h[1] for h in hits], abs=1e-5)


def test_the_current_format_has_a_committed_fixture() -> None:
    assert [f.name for f in FIXTURES][-1] == f"format{FORMAT_VERSION}", (
        "run python tests/release/make_fixtures.py and commit tests/release/fixtures/"
    )


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_tables_of_every_release_answer_as_they_did(fixture: Path, tmp_path: Path, capsys) -> None:
    db, expected = copy_fixture(fixture, tmp_path)
    if expected["format"] < FORMAT_VERSION:
        for table in expected["tables"]:
            with pytest.raises(TableFormatError, match="smart-retrievers migrate"):
                open_fixture(db, table)
            assert main(["migrate", "--db", str(db), "--table", table]) == 0
    check_answers(db, expected)


@pytest.fixture
def current(tmp_path: Path) -> tuple[Path, dict]:
    return copy_fixture(FIXTURES[-1], tmp_path)


def as_unrecorded_format(db: Path, table: str) -> None:
    """Make ``table`` look as the releases before format 2 wrote it: no format key, the codec inline."""
    lance_table = lancedb.connect(db).open_table(table)
    codec = load_codec(lancedb.connect(db), lance_table.schema.metadata[CODEC_KEY.encode()])
    lance_table.to_lance().update_schema_metadata({FORMAT_KEY: None, CODEC_KEY: codec.to_json()})
    shutil.rmtree(db / f"{table}{CODEC_TABLE_SUFFIX}.lance")


def test_format_1_is_refused_then_migrated_in_one_commit(current, capsys) -> None:
    db, expected = current
    as_unrecorded_format(db, "coded")
    with pytest.raises(TableFormatError) as refused:
        open_fixture(db, "coded")
    assert f"table format 1, older than format {FORMAT_VERSION}" in str(refused.value)
    assert f"smart-retrievers migrate --db {db} --table coded" in str(refused.value)

    version = lancedb.connect(db).open_table("coded").version
    assert main(["migrate", "--db", str(db), "--table", "coded"]) == 0
    out = capsys.readouterr().out
    assert "inline codec moved to the codec table" in out
    assert f"migrated from table format 1 to {FORMAT_VERSION}" in out
    table = lancedb.connect(db).open_table("coded")
    assert table.version == version + 1  # one metadata-only commit
    assert table.schema.metadata[FORMAT_KEY.encode()] == str(FORMAT_VERSION).encode()
    assert "sha256" in json.loads(table.schema.metadata[CODEC_KEY.encode()])  # the codec by reference again
    check_answers(db, {"tables": {"coded": expected["tables"]["coded"]}})


def test_format_1_without_codec_gains_only_the_format(current) -> None:
    db, expected = current
    lancedb.connect(db).open_table("float16").to_lance().update_schema_metadata({FORMAT_KEY: None})
    report = migrate_table(str(db), "float16")
    assert (report.from_format, report.to_format, report.steps) == (
        1,
        FORMAT_VERSION,
        ["format 1 -> 2: format recorded"],
    )
    check_answers(db, {"tables": {"float16": expected["tables"]["float16"]}})


def test_a_current_table_is_left_alone(current, capsys) -> None:
    db, _ = current
    version = lancedb.connect(db).open_table("float16").version
    assert main(["migrate", "--db", str(db), "--table", "float16"]) == 0
    assert f"already in table format {FORMAT_VERSION}; nothing to do" in capsys.readouterr().out
    assert lancedb.connect(db).open_table("float16").version == version


def test_a_newer_format_is_refused_by_open_and_migrate(current, capsys) -> None:
    db, _ = current
    lance_table = lancedb.connect(db).open_table("float16")
    lance_table.to_lance().update_schema_metadata({FORMAT_KEY: str(FORMAT_VERSION + 1)})
    version = lancedb.connect(db).open_table("float16").version
    with pytest.raises(TableFormatError, match=f"format {FORMAT_VERSION + 1}, written by a newer smart-retrievers"):
        open_fixture(db, "float16")
    assert main(["migrate", "--db", str(db), "--table", "float16"]) == 2
    assert "pip install -U smart-retrievers" in capsys.readouterr().err
    assert lancedb.connect(db).open_table("float16").version == version  # nothing written


def test_a_format_that_is_no_number_is_refused(current) -> None:
    db, _ = current
    lancedb.connect(db).open_table("float16").to_lance().update_schema_metadata({FORMAT_KEY: "two"})
    with pytest.raises(TableFormatError, match="'two', which is not a format number"):
        open_fixture(db, "float16")


def test_migrate_refuses_a_table_smart_retrievers_did_not_write(tmp_path: Path, capsys) -> None:
    lancedb.connect(tmp_path).create_table("plain", pa.table({"id": ["a"], "vector": [[0.0, 1.0]]}))
    assert main(["migrate", "--db", str(tmp_path), "--table", "plain"]) == 2
    assert "not written by smart-retrievers" in capsys.readouterr().err
    assert main(["migrate", "--db", str(tmp_path), "--table", "missing"]) == 2
    assert "no table 'missing'" in capsys.readouterr().err


def test_new_and_rewritten_tables_record_the_current_format(tmp_path: Path) -> None:
    index = open_fixture(tmp_path, "t", "none")
    index.add(["one text", "another text"], ids=["1", "2"])
    schema = lancedb.connect(tmp_path).open_table("t").schema
    assert schema.metadata[FORMAT_KEY.encode()] == str(FORMAT_VERSION).encode()
    index.recompress("pool2-pca256-sign")
    schema = lancedb.connect(tmp_path).open_table("t").schema
    assert schema.metadata[FORMAT_KEY.encode()] == str(FORMAT_VERSION).encode()
    assert SmartIndex(str(tmp_path), encoder=index.encoder, table="t").count() == 2
