"""The smart-retrievers CLI end to end on a tiny generated BEIR dataset."""

from __future__ import annotations

import json

import pytest

from smart_retrievers import SmartIndex
from smart_retrievers.cli import build_parser, main
from smart_retrievers.filters import UnknownFieldWarning
from smart_retrievers.sample_corpus import binding_corpus

NOTES = {
    "k7": ("Code K7 labels the red star.", {"year": 2021, "author": "Ann Smith"}),
    "p2": ("Code P2 labels the blue circle.", {"year": 2022, "author": "Bob Jones"}),
    "k9": ("Code K9 labelled the red star.", {"year": 2019, "author": "Cy Young"}),
}


@pytest.fixture
def beir_dir(tmp_path):
    texts, _, cases = binding_corpus()
    root = tmp_path / "bind"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in texts.items())
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{n}", "text": c.query}) + "\n" for n, c in enumerate(cases))
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{n}\t{c.answer_id}\t1\n" for n, c in enumerate(cases))
    )
    return root


def test_index_then_search(beir_dir, tmp_path, capsys):
    db = str(tmp_path / "db")
    # exact float16 states: this test checks the method's math (SMART ranks the binding answer first); codecs are
    # tested in test_codec.py
    assert main(["index", str(beir_dir / "corpus.jsonl"), "--db", db, "--compression", "none"]) == 0
    assert "indexed 12 items" in capsys.readouterr().out
    assert main(["search", "P2 blue circle", "--db", db, "-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["id"] for h in hits] == ["report-1", "report-1-swapped"]
    parts = hits[0]["pooled_score"] + hits[0]["late_score"] + 0.5 * hits[0]["lex_score"]  # hybrid, λ_lex 0.5
    assert hits[0]["score"] == pytest.approx(parts, abs=1e-5)
    assert main(["search", "P2 blue circle", "--db", db, "--mode", "pooled", "-k", "1"]) == 0
    assert "[report-1-swapped]" in capsys.readouterr().out


@pytest.fixture
def float16_db(beir_dir, tmp_path, capsys) -> str:
    """The binding corpus indexed with float16 token states (no codec)."""
    db = str(tmp_path / "db")
    assert main(["index", str(beir_dir / "corpus.jsonl"), "--db", db, "--compression", "none"]) == 0
    capsys.readouterr()
    return db


def test_recompress_codes_a_float16_table(float16_db, tmp_path, capsys):
    db = float16_db
    assert main(["recompress", "--db", db, "--compression", "pca64-sign"]) == 0
    out, err = capsys.readouterr()
    assert "compressed 12 rows" in out and "'pca64-sign' (8 bytes per stored token)" in out
    assert "deprecated" not in err
    assert main(["search", "P2 blue circle", "--db", db, "-k", "12", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 12  # every row is still there, scored from its codes
    with pytest.raises(SystemExit, match="no index at"):
        main(["recompress", "--db", str(tmp_path / "missing")])
    assert not (tmp_path / "missing").exists()
    assert main(["recompress", "--db", db]) == 2  # already coded: a clear error, nothing rewritten
    assert "codes a float16 table" in capsys.readouterr().err


def test_compact_is_a_deprecated_alias_of_recompress(float16_db, capsys):
    """``compact`` re-coded while ``optimize`` compacts: it still works for one minor version, with a warning."""
    assert main(["compact", "--db", float16_db, "--compression", "pca64-sign"]) == 0
    out, err = capsys.readouterr()
    assert "compressed 12 rows" in out and "'pca64-sign'" in out
    assert "`smart-retrievers compact` is deprecated" in err and "recompress" in err
    help_text = build_parser().format_help()
    assert "recompress" in help_text and "deprecated name of `recompress`" in help_text


def test_eval_writes_json(beir_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    # exact float16 states: this test checks the method's math (SMART beats single-vector); codecs are tested in test_codec.py
    assert main(["eval", str(beir_dir), "--json", str(out), "--compression", "none"]) == 0
    printed = capsys.readouterr().out
    assert "smart-exhaustive" in printed and "Δ ndcg@10" in printed
    payload = json.loads(out.read_text())
    assert payload["dataset"] == "bind" and payload["model"] == "all-MiniLM-L6-v2"
    results = payload["results"]
    assert set(results) == {"single", "smart-rerank", "smart-exhaustive", "bm25", "hybrid-rrf", "smart-hybrid"}
    # 12 short documents: the length gate gives lexical evidence no weight, so hybrid ranks as rerank
    assert results["smart-hybrid"] == results["smart-rerank"]
    assert set(results["single"]) == {"ndcg@10", "recall@100", "mrr@10"}
    # 5 of 6 answers first with SMART vs 3 of 6 single-vector (see tests/index/test_index.py)
    assert results["smart-exhaustive"]["mrr@10"] > results["single"]["mrr@10"]
    assert results["smart-rerank"] == results["smart-exhaustive"]  # 12 docs < 100 candidates
    assert {"encode_corpus_s", "smart_exhaustive_s"} <= set(payload["timings"])


def test_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "text": "ok"}\nnot json\n')
    with pytest.raises(SystemExit, match=r"bad\.jsonl:2: malformed JSON"):
        main(["index", str(bad), "--db", str(tmp_path / "db")])
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(
        SystemExit, match="no index at"
    ):  # and the directory is not created (test_cli_search_a_missing_db_creates_nothing)
        main(["search", "q", "--db", str(tmp_path / "empty")])


def test_train_options_become_the_train_config():
    from smart_retrievers.cli import build_parser
    from smart_retrievers.cli.train import TRAIN_OPTIONS
    from smart_retrievers.training import TrainConfig

    defaults = build_parser().parse_args(["train", "beir", "--out", "out"])
    assert {name: getattr(defaults, name) for name in TRAIN_OPTIONS} == {
        name: getattr(TrainConfig(), name) for name in TRAIN_OPTIONS
    }
    assert defaults.encode_batch_size == 32 and not defaults.no_cache and defaults.model is None
    args = build_parser().parse_args(
        [
            "train",
            "beir",
            "--out",
            "out",
            "--dim",
            "8",
            "--loss",
            "fused",
            "--batch-size",
            "16",
            "--hard-negatives",
            "0",
        ]
    )
    assert (args.dim, args.loss, args.batch_size, args.hard_negatives) == (8, "fused", 16, 0)


def _indexed(tmp_path) -> str:
    """Three notes with year/author metadata, indexed as float16."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": t, "metadata": m}) + "\n" for i, (t, m) in NOTES.items()))
    db = str(tmp_path / "db")
    assert main(["index", str(corpus), "--db", db, "--compression", "none"]) == 0
    return db


def test_cli_every_option_states_its_default_and_version(capsys):
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    assert {"info", "delete"} <= set(subparsers.choices)
    for name, sub in subparsers.choices.items():
        text = sub.format_help()
        for action in sub._actions:
            if not action.option_strings or action.dest == "help" or action.required:
                continue
            assert action.help, f"{name} {action.option_strings[0]} has no help"
            assert "default" in sub._get_formatter()._get_help_string(action).lower(), (name, action.dest)
        assert "(default: " in text
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "smart-retrievers 0." in capsys.readouterr().out


def test_cli_search_a_missing_db_creates_nothing(tmp_path):
    missing = tmp_path / "missing_dir"
    with pytest.raises(SystemExit, match="no index at"):
        main(["search", "q", "--db", str(missing)])
    assert not missing.exists()


def test_cli_bad_where_is_named(tmp_path, capsys):
    db = _indexed(tmp_path)
    capsys.readouterr()
    assert main(["search", "q", "--db", db, "--where", "{year: 2021}"]) == 2
    assert "--where" in capsys.readouterr().err
    assert main(["search", "q", "--db", db, "--where", '{"year": {"$regex": 1}}']) == 2
    assert "--where" in capsys.readouterr().err
    assert main(["search", "q", "--db", db, "--where", '{"year": "2021"}']) == 2
    err = capsys.readouterr().err
    assert "--where" in err and "field 'year'" in err


def test_cli_info_and_delete(tmp_path, capsys):
    db = _indexed(tmp_path)
    capsys.readouterr()
    assert main(["info", "--db", db, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == 3 and info["dim"] == 384 and info["encoder"]["model"] == "all-MiniLM-L6-v2"
    assert info["storage_bytes"] > 0 and info["smart_retrievers_version"] and info["compression"] == "none"
    assert info["metadata_fields"] == {"author": "str", "year": "int"}
    assert main(["info", "--db", db]) == 0
    assert "rows:" in capsys.readouterr().out
    assert main(["delete", "--db", db]) == 2  # no condition
    assert "--all" in capsys.readouterr().err
    assert main(["delete", "--db", db, "--ids", "k9"]) == 0
    assert "deleted 1 rows" in capsys.readouterr().out
    assert main(["delete", "--db", db, "--where", '{"year": {"$gte": 2022}}']) == 0
    assert "deleted 1 rows" in capsys.readouterr().out and SmartIndex(db).count() == 1
    assert main(["delete", "--db", db, "--all"]) == 0
    assert "1 rows left" not in capsys.readouterr().out
    assert main(["info", "--db", db, "--table", "nope"]) == 2  # a missing table names the ones there
    assert "no table 'nope'" in (err := capsys.readouterr().err) and "tables there: smart" in err
    with pytest.raises(SystemExit, match="no index at"):
        main(["info", "--db", str(tmp_path / "nope")])
    assert not (tmp_path / "nope").exists()


def test_search_says_0_results_and_names_a_missing_table(beir_dir, tmp_path, capsys):
    db = str(tmp_path / "db")
    assert main(["index", str(beir_dir / "corpus.jsonl"), "--db", db, "--compression", "none"]) == 0
    capsys.readouterr()
    assert main(["search", "P2 blue circle", "--db", db, "--where", '{"id": {"$in": []}}']) == 0
    assert "0 results" in capsys.readouterr().out
    with pytest.warns(UnknownFieldWarning, match="'tilte' is not a metadata field of any row"):  # a typo
        assert main(["search", "P2 blue circle", "--db", db, "--where", '{"tilte": "x"}']) == 0
    assert capsys.readouterr().out.strip() == "0 results (--where matched no row)"
    with pytest.raises(SystemExit, match="no table 'smrat'.*tables there: smart"):
        main(["search", "P2 blue circle", "--db", db, "--table", "smrat"])


def test_a_plain_lancedb_table_suggests_upgrade(tmp_path):
    import lancedb
    import pyarrow as pa

    from smart_retrievers.store import FingerprintMismatchError

    lancedb.connect(str(tmp_path / "db")).create_table("plain", pa.table({"id": ["a"], "text": ["x"]}))
    with pytest.raises(FingerprintMismatchError, match="upgrade"):
        SmartIndex(str(tmp_path / "db"), table="plain")
