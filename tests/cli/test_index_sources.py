"""``smart-retrievers index`` reads a JSONL file, a BEIR folder or a folder of .txt/.md files, and checks the
path before any model loads."""

from __future__ import annotations

import json

import pytest

from smart_retrievers import SmartIndex
from smart_retrievers.cli import common, main


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a command loads a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(common, "load_model", refuse)
    import smart_retrievers.cli.indexing as indexing

    monkeypatch.setattr(indexing, "load_model", refuse)


def test_a_folder_of_text_files_is_one_document_per_file(tmp_path, capsys, encoder):
    docs = tmp_path / "notes"
    (docs / "sub").mkdir(parents=True)
    (docs / ".hidden").mkdir()
    (docs / "red.txt").write_text("Code K7 labels the red star.", encoding="utf-8")
    (docs / "sub" / "blue.md").write_text("# Blue\n\nCode P2 labels the blue circle.", encoding="utf-8")
    (docs / "empty.txt").write_text("  \n", encoding="utf-8")
    (docs / "image.png").write_bytes(b"\x89PNG")  # not a text file: left out
    (docs / ".hidden" / "secret.txt").write_text("hidden", encoding="utf-8")
    db = str(tmp_path / "db")
    assert main(["index", str(docs), "--db", db, "--compression", "none"]) == 0
    out = capsys.readouterr().out
    assert "indexed 2 items" in out and "1 empty files skipped" in out
    index = SmartIndex(db, encoder=encoder)
    rows = {hit.id: hit for hit in index.rows()}
    assert set(rows) == {"red.txt", "sub/blue.md"}
    assert rows["sub/blue.md"].metadata == {"file_name": "blue.md", "file_path": "sub/blue.md"}
    assert rows["sub/blue.md"].text == "# Blue\n\nCode P2 labels the blue circle."
    assert index.search("blue circle", k=1, where={"file_name": "blue.md"})[0].id == "sub/blue.md"
    # one text file alone: its name is its id
    assert main(["index", str(docs / "red.txt"), "--db", db, "--table", "one", "--compression", "none"]) == 0
    assert [hit.id for hit in SmartIndex(db, encoder=encoder, table="one").rows()] == ["red.txt"]


def test_a_beir_folder_indexes_its_corpus(binding_beir_dir, tmp_path, capsys):
    db = str(tmp_path / "db")
    assert main(["index", str(binding_beir_dir), "--db", db, "--compression", "none"]) == 0
    assert "indexed 12 items" in capsys.readouterr().out
    assert main(["search", "P2 blue circle", "--db", db, "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "report-1"


def test_the_path_is_checked_before_the_model_loads(tmp_path, no_model):
    db = str(tmp_path / "db")
    with pytest.raises(SystemExit, match="no such file or folder"):
        main(["index", str(tmp_path / "missing"), "--db", db])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"holds no corpus\.jsonl and no \.txt or \.md files"):
        main(["index", str(tmp_path / "empty"), "--db", db])
    (tmp_path / "latin1").mkdir()
    (tmp_path / "latin1" / "a.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(SystemExit, match=r"a\.txt: not UTF-8 text"):
        main(["index", str(tmp_path / "latin1"), "--db", db])
    with pytest.raises(SystemExit, match="--ray reads JSONL"):
        main(["index", str(tmp_path / "latin1"), "--db", db, "--ray"])
    assert not (tmp_path / "db").exists()
