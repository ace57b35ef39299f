"""``smart-retrievers explain`` (terminal and ``--html``), what ``search --explain`` labels, what ``info`` counts,
and the hint a plain LanceDB table gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smart_retrievers.cli import main

NOTES = [
    {"id": "k7", "text": "Code K7 labels the red star."},
    {"id": "p2", "text": "Code P2 labels the blue circle."},
    {"id": "k9", "text": "Code K9 labelled the red star."},
]


def _index(tmp_path: Path, compression: str) -> str:
    corpus = tmp_path / f"notes-{compression}.jsonl"
    corpus.write_text("".join(json.dumps(n) + "\n" for n in NOTES))
    db = str(tmp_path / f"db-{compression}")
    assert main(["index", str(corpus), "--db", db, "--compression", compression]) == 0
    return db


@pytest.fixture(scope="module")
def dbs(tmp_path_factory) -> dict[str, str]:
    """The notes indexed twice: float16 states and the default codec (fitted once for the module)."""
    root = tmp_path_factory.mktemp("explain")
    return {"none": _index(root, "none"), "coded": _index(root, "pool2-pca256-sign")}


def test_explain_prints_the_evidence_and_writes_an_html_page(dbs, tmp_path, capsys):
    capsys.readouterr()
    page = tmp_path / "out.html"
    assert main(["explain", "which code labels the red star?", "k7", "--db", dbs["none"], "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("evidence (float states, as stored):\nscore ") and f"wrote {page}" in out
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and "<title>k7: which code labels the red star?</title>" in text
    assert "<mark" in text and "K7" in text and text.rstrip().endswith("</html>")
    assert main(["explain", "red star", "k9", "--db", dbs["none"], "--json"]) == 0
    evidence = json.loads(capsys.readouterr().out)
    assert evidence["doc_id"] == "k9" and evidence["matches"]


def test_explain_errors_are_clear(dbs, tmp_path):
    with pytest.raises(SystemExit, match="no row with id 'nope'"):
        main(["explain", "red star", "nope", "--db", dbs["none"]])
    with pytest.raises(SystemExit, match="the folder .*missing does not exist"):
        main(["explain", "red star", "k7", "--db", dbs["none"], "--html", str(tmp_path / "missing" / "x.html")])


def test_search_explain_labels_what_it_prints(dbs, capsys):
    capsys.readouterr()
    assert main(["search", "red star", "--db", dbs["coded"], "-k", "1", "--explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(" 1. score ")
    assert lines[1] == ("    evidence (the stored 'pool2-pca256-sign' codes that scored the hit):")
    assert lines[2].startswith("    score ")  # the evidence's own score, under the label
    assert main(["search", "red star", "--db", dbs["none"], "-k", "1", "--explain"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "    evidence (float states, as stored):"


def test_info_counts_the_codec_table_and_bytes_per_original_token(dbs, capsys):
    capsys.readouterr()
    assert main(["info", "--db", dbs["coded"], "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    table_disk = sum(f.stat().st_size for f in (Path(dbs["coded"]) / "smart.lance").rglob("*") if f.is_file())
    codecs_disk = sum(
        f.stat().st_size for f in (Path(dbs["coded"]) / "smart__smart_codecs.lance").rglob("*") if f.is_file()
    )
    assert codecs_disk > 0 and info["storage_bytes"] == table_disk + codecs_disk
    assert info["codec_table_bytes"] > 0 and info["data_bytes"] > info["codec_table_bytes"]
    assert info["bytes_per_original_token"] == 32 / 2  # 256 sign bits = 32 B per kept token, one kept in two
    assert info["compression"] == "pool2-pca256-sign" and info["codec"]["out_dim"] == 256
    assert main(["info", "--db", dbs["none"], "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["bytes_per_original_token"] == 768.0 and plain["codec_table_bytes"] == 0
    assert main(["info", "--db", dbs["coded"]]) == 0
    assert "bytes_per_original_token: 16.0  (stored bytes per token state" in capsys.readouterr().out


def test_info_shows_the_table_format(dbs, capsys):
    from smart_retrievers.store import FORMAT_VERSION

    capsys.readouterr()
    assert main(["info", "--db", dbs["coded"], "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["table_format"] == FORMAT_VERSION == 2 and list(info).index("table_format") == 4  # after the version
    assert main(["info", "--db", dbs["none"]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{'table_format:':<26}{FORMAT_VERSION}  (the layout of") for line in lines), lines


def test_a_plain_lancedb_table_suggests_upgrade_in_the_cli(tmp_path, capsys):
    import lancedb
    import pyarrow as pa

    lancedb.connect(str(tmp_path / "db")).create_table("plain", pa.table({"id": ["a"], "text": ["x"]}))
    with pytest.raises(SystemExit, match="upgrade"):
        main(["search", "x", "--db", str(tmp_path / "db"), "--table", "plain"])
    assert main(["info", "--db", str(tmp_path / "db"), "--table", "plain"]) == 2
    assert "smart-retrievers upgrade" in capsys.readouterr().err
