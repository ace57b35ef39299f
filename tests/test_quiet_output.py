"""What a user sees on stderr: the package's own progress bars (unless ``--quiet``), nothing from third parties.

transformers drew a "Loading weights" bar on every model load and LanceDB warned about its
deprecated ``table_names()``; the quickstart and the CLI run here as a user runs them (a new
process, Python's default warning filters), and their stderr may hold only our own bars. They are
the first two commands of the session's other process (tests/conftest.py ``other_process``), so the
model load and every first warning of that process land in their stderr.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smart_retrievers.cli import main

ROOT = Path(__file__).resolve().parents[1]
OUR_BARS = frozenset(
    re.findall(r'desc="([^"]+)"', "".join(p.read_text() for p in (ROOT / "smart_retrievers").rglob("*.py")))
)
"""The descriptions of the package's own tqdm bars (``desc="..."`` in its source)."""
BAR = re.compile(r"^(?P<desc>[^:|]*): +\d+%\|")


def stray_lines(stderr: str) -> list[str]:
    """The non-blank stderr lines that are not one of the package's own progress bars (tqdm redraws with ``\\r``)."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", stderr) if line.strip()]
    return [line for line in lines if not ((bar := BAR.match(line)) and bar["desc"] in OUR_BARS)]


def test_stray_lines_keeps_only_third_party_output():
    assert {"Indexing", "Encoding", "SMART rerank"} <= OUR_BARS
    ours = "Indexing:   0%|          | 0/12 [00:00<?, ?doc/s]\rIndexing: 100%|##########| 12/12 [00:01<00:00]\n"
    theirs = "Loading weights: 100%|##########| 103/103 [00:00<00:00]\n"
    warning = "/x/lancedb/db.py:1: DeprecationWarning: table_names() is deprecated\n"
    assert stray_lines(ours) == []
    assert stray_lines(ours + theirs + warning) == [theirs.strip(), warning.strip()]


def test_quickstart_prints_no_third_party_bars_or_warnings(other_process):
    done = other_process.first_runs["quickstart"].check()  # python examples/quickstart.py --db DIR, run first
    assert "SMART" in done.stdout
    assert stray_lines(done.stderr) == []


def test_cli_shows_its_own_bar_and_nothing_else(other_process):
    done = other_process.first_runs["cli index"].check()  # python -m smart_retrievers.cli index BEIR --db DIR ...
    assert done.args[:3] == ["-m", "smart_retrievers.cli", "index"] and "--quiet" not in done.args
    assert "indexed 12 items" in done.stdout
    assert "Indexing: 100%" in done.stderr  # the command's own bar, on by default
    assert stray_lines(done.stderr) == []


@pytest.mark.parametrize(
    "command",
    [
        ["index", "{beir}", "--db", "{db}", "--compression", "none", "--quiet"],
        ["eval", "{beir}", "--compression", "none", "--candidates", "5", "-q"],
    ],
    ids=["index", "eval"],
)
def test_quiet_silences_the_commands_own_bars(command, binding_beir_dir, tmp_path, capfd):
    quiet = [part.format(beir=binding_beir_dir, db=tmp_path / "quiet") for part in command]
    assert main(quiet) == 0
    out, err = capfd.readouterr()
    assert out.strip() and err == ""
    loud = [
        part.format(beir=binding_beir_dir, db=tmp_path / "loud") for part in command if part not in ("--quiet", "-q")
    ]
    assert main(loud) == 0  # the same command draws its bars without the flag
    assert "%|" in capfd.readouterr().err
