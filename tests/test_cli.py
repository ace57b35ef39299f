"""The smart-retrievers CLI end to end on a tiny generated BEIR dataset."""

from __future__ import annotations

import json

import pytest

from smart_retrievers.cli import main
from smart_retrievers.demo import binding_corpus


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
    assert hits[0]["score"] == pytest.approx(hits[0]["pooled_score"] + hits[0]["late_score"], abs=1e-5)
    assert main(["search", "P2 blue circle", "--db", db, "--mode", "pooled", "-k", "1"]) == 0
    assert "[report-1-swapped]" in capsys.readouterr().out


def test_compact_codes_a_float16_table(beir_dir, tmp_path, capsys):
    db = str(tmp_path / "db")
    assert main(["index", str(beir_dir / "corpus.jsonl"), "--db", db, "--compression", "none"]) == 0
    capsys.readouterr()
    assert main(["compact", "--db", db, "--compression", "pca64-sign"]) == 0
    printed = capsys.readouterr().out
    assert "compressed 12 rows" in printed and "'pca64-sign' (8 bytes per stored token)" in printed
    assert main(["search", "P2 blue circle", "--db", db, "-k", "12", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 12  # every row is still there, scored from its codes
    with pytest.raises(SystemExit, match="no index at"):
        main(["compact", "--db", str(tmp_path / "missing")])
    assert not (tmp_path / "missing").exists()
    assert main(["compact", "--db", db]) == 2  # already coded: a clear error, nothing rewritten
    assert "codes a float16 table" in capsys.readouterr().err


def test_eval_writes_json(beir_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    # exact float16 states: this test checks the method's math (SMART beats single-vector); codecs are tested in test_codec.py
    assert main(["eval", str(beir_dir), "--json", str(out), "--compression", "none"]) == 0
    printed = capsys.readouterr().out
    assert "smart-exhaustive" in printed and "Δ ndcg@10" in printed
    payload = json.loads(out.read_text())
    assert payload["dataset"] == "bind" and payload["model"] == "all-MiniLM-L6-v2"
    results = payload["results"]
    assert set(results) == {"single", "smart-rerank", "smart-exhaustive"}
    assert set(results["single"]) == {"ndcg@10", "recall@100", "mrr@10"}
    # 5 of 6 answers first with SMART vs 3 of 6 single-vector (see tests/test_index.py)
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
    with pytest.raises(SystemExit, match="no index at"):  # and the directory is not created (test_fit_and_finish)
        main(["search", "q", "--db", str(tmp_path / "empty")])


def test_train_options_become_the_train_config():
    from smart_retrievers.cli import _TRAIN_OPTIONS, build_parser
    from smart_retrievers.training import TrainConfig

    defaults = build_parser().parse_args(["train", "beir", "--out", "out"])
    assert {name: getattr(defaults, name) for name in _TRAIN_OPTIONS} == {
        name: getattr(TrainConfig(), name) for name in _TRAIN_OPTIONS
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
