"""Tests for smart_retrievers.evaluation: IR metrics, BEIR loading and the single-vector vs SMART comparison."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from oracles import maxsim, pad_tokens, smart_scores

from smart_retrievers.encoding import Encoding
from smart_retrievers.evaluation import (
    METHODS,
    BeirDataset,
    compare,
    evaluate_ranking,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)
from smart_retrievers.scoring import PackedTokens, maxsim_flat

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SCIFACT = SHARED_DATA / "scifact"
FLICKR = SHARED_DATA / "flickr8k-1k"

INV_LOG2_3 = 1 / math.log2(3)  # discount at rank 2


# ---------------------------------------------------------------- metrics


def test_ndcg_graded_linear_gain() -> None:
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    ranking = {"q": ["c", "b", "a", "x"]}
    # DCG = 0/1 + 1/log2(3) + 2/log2(4); IDCG = 2/1 + 1/log2(3)
    expected = (INV_LOG2_3 + 1.0) / (2.0 + INV_LOG2_3)
    assert ndcg_at_k(ranking, qrels, k=10) == pytest.approx(expected, abs=1e-9)
    assert ndcg_at_k(ranking, qrels, k=10) == pytest.approx(0.6199062332840657, abs=1e-9)
    # cut at 2: DCG = 1/log2(3), ideal still 2 + 1/log2(3)
    assert ndcg_at_k(ranking, qrels, k=2) == pytest.approx(INV_LOG2_3 / (2.0 + INV_LOG2_3), abs=1e-9)
    assert ndcg_at_k(ranking, qrels, k=1) == 0.0


def test_ndcg_ideal_uses_all_judgements_not_retrieved_length() -> None:
    qrels = {"q": {"a": 1, "b": 1}}
    assert ndcg_at_k({"q": ["a"]}, qrels, k=10) == pytest.approx(1 / (1 + INV_LOG2_3), abs=1e-9)


def test_ndcg_ideal_cut_at_k() -> None:
    qrels = {"q": {"a": 3, "b": 2, "c": 1}}
    # top-2 ideal is [a, b]; c beyond k must not enter the ideal DCG
    assert ndcg_at_k({"q": ["a", "b"]}, qrels, k=2) == pytest.approx(1.0, abs=1e-9)
    assert ndcg_at_k({"q": ["b", "a"]}, qrels, k=2) == pytest.approx(
        (2 + 3 * INV_LOG2_3) / (3 + 2 * INV_LOG2_3), abs=1e-9
    )


def test_non_positive_relevance_is_not_relevant() -> None:
    qrels = {"q": {"a": -1, "z": 0, "b": 1}}
    ranking = {"q": ["a", "z", "b"]}
    assert ndcg_at_k(ranking, qrels) == pytest.approx(0.5, abs=1e-9)  # 1/log2(4) over 1
    assert recall_at_k(ranking, qrels) == pytest.approx(1.0, abs=1e-9)
    assert mrr_at_k(ranking, qrels) == pytest.approx(1 / 3, abs=1e-9)


def test_recall_at_k() -> None:
    qrels = {"q": {"a": 1, "b": 2, "c": 1, "d": 0}}
    ranking = {"q": ["a", "x", "d", "b"]}
    assert recall_at_k(ranking, qrels, k=2) == pytest.approx(1 / 3, abs=1e-9)
    assert recall_at_k(ranking, qrels, k=4) == pytest.approx(2 / 3, abs=1e-9)


def test_mrr_at_k() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    ranking = {"q1": ["x", "y", "a"], "q2": ["b"]}
    assert mrr_at_k(ranking, qrels, k=10) == pytest.approx((1 / 3 + 1) / 2, abs=1e-9)
    assert mrr_at_k(ranking, qrels, k=2) == pytest.approx(0.5, abs=1e-9)


def test_perfect_ranking_scores_one() -> None:
    qrels = {"q1": {"a": 3, "b": 1}, "q2": {"c": 1}}
    ranking = {"q1": ["a", "b", "x"], "q2": ["c"]}
    assert evaluate_ranking(ranking, qrels) == pytest.approx(
        {"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}, abs=1e-9
    )


def test_empty_ranking_scores_zero() -> None:
    qrels = {"q1": {"a": 1}}
    assert evaluate_ranking({}, qrels) == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    assert evaluate_ranking({"q1": []}, qrels) == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}


def test_query_missing_from_ranking_counts_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    ranking = {"q1": ["a"], "unjudged": ["b"]}
    assert evaluate_ranking(ranking, qrels) == pytest.approx(
        {"ndcg@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}, abs=1e-9
    )


def test_evaluate_ranking_uses_standard_cutoffs() -> None:
    qrels = {"q": {"rel": 1}}
    ranking = {"q": [f"d{i}" for i in range(49)] + ["rel"]}  # relevant at rank 50
    assert evaluate_ranking(ranking, qrels) == {"ndcg@10": 0.0, "recall@100": 1.0, "mrr@10": 0.0}


def test_duplicate_doc_ids_count_once() -> None:
    qrels = {"q": {"b": 1}}
    assert mrr_at_k({"q": ["a", "a", "b"]}, qrels, k=2) == pytest.approx(0.5, abs=1e-9)
    assert recall_at_k({"q": ["b", "b"]}, qrels, k=10) == pytest.approx(1.0, abs=1e-9)


def test_metric_argument_errors() -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        ndcg_at_k({"q": ["a"]}, {"q": {"a": 1}}, k=0)
    with pytest.raises(ValueError, match="qrels is empty"):
        recall_at_k({"q": ["a"]}, {})


# ---------------------------------------------------------------- loading


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _write_qrels(path: Path, rows: list[tuple[str, str, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture()
def beir_dir(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    root.mkdir()
    _write_jsonl(
        root / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Cats", "text": "Cats purr."},
            {"_id": "d2", "title": "", "text": "Dogs bark."},
            {"_id": "d3", "title": "Photo", "text": "", "image": "images/d3.jpg", "url": "http://x"},
        ],
    )
    _write_jsonl(
        root / "queries.jsonl",
        [
            {"_id": "q1", "text": "purring animals"},
            {"_id": "q2", "text": "barking"},
            {"_id": "q3", "text": "not judged in test"},
        ],
    )
    _write_qrels(root / "qrels" / "test.tsv", [("q1", "d1", 2), ("q1", "d3", 0), ("q2", "d2", 1)])
    _write_qrels(root / "qrels" / "train.tsv", [("q3", "d1", 1)])
    return root


def test_load_beir_tiny(beir_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(beir_dir.parent)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_beir("tiny")  # relative path
    assert isinstance(ds, BeirDataset)
    assert ds.name == "tiny"
    assert len(ds.corpus) == 3
    assert ds.queries == {"q1": "purring animals", "q2": "barking"}
    assert ds.qrels == {"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}}
    assert ds.doc_text("d1") == "Cats Cats purr."
    assert ds.doc_text("d2") == "Dogs bark."
    assert ds.doc_text("d3") == "Photo"
    assert ds.corpus["d1"] == {"text": "Cats purr.", "title": "Cats", "image": None, "metadata": {}}
    image = ds.corpus["d3"]["image"]
    assert Path(image).is_absolute()
    assert Path(image) == beir_dir.resolve() / "images" / "d3.jpg"
    assert ds.corpus["d3"]["metadata"] == {"url": "http://x"}

    train = load_beir(beir_dir, split="train")
    assert train.queries == {"q3": "not judged in test"}
    assert train.qrels == {"q3": {"d1": 1}}


def test_missing_split_lists_available(beir_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"dev\.tsv.*available splits: test, train"):
        load_beir(beir_dir, split="dev")


def test_missing_dir_and_files(tmp_path: Path, beir_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        load_beir(tmp_path / "nope")
    (beir_dir / "queries.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"queries\.jsonl"):
        load_beir(beir_dir)
    (beir_dir / "corpus.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"corpus\.jsonl"):
        load_beir(beir_dir)


def test_malformed_json_reports_line(beir_dir: Path) -> None:
    corpus = beir_dir / "corpus.jsonl"
    lines = corpus.read_text(encoding="utf-8").splitlines()
    lines[1] = '{"_id": "d2", "text": '
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus\.jsonl:2: malformed JSON"):
        load_beir(beir_dir)


def test_non_object_and_missing_id_report_line(beir_dir: Path) -> None:
    corpus = beir_dir / "corpus.jsonl"
    lines = corpus.read_text(encoding="utf-8").splitlines()
    corpus.write_text("\n".join([lines[0], "[1, 2]", *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus\.jsonl:2: expected a JSON object"):
        load_beir(beir_dir)
    corpus.write_text("\n".join([lines[0], '{"text": "no id"}', *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus\.jsonl:2: expected a JSON object with an '_id' field"):
        load_beir(beir_dir)
    corpus.write_text("\n".join([lines[0], lines[0]]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"corpus\.jsonl:2: duplicate _id 'd1'"):
        load_beir(beir_dir)


def test_malformed_qrels_reports_line(beir_dir: Path) -> None:
    _write_qrels(beir_dir / "qrels" / "test.tsv", [("q1", "d1", 1)])
    with (beir_dir / "qrels" / "test.tsv").open("a", encoding="utf-8") as handle:
        handle.write("q2\td2\thigh\n")
    with pytest.raises(ValueError, match=r"test\.tsv:3: score 'high'"):
        load_beir(beir_dir)


def test_unknown_ids_warned_and_dropped(beir_dir: Path) -> None:
    _write_qrels(
        beir_dir / "qrels" / "test.tsv",
        [("q1", "d1", 1), ("q1", "ghost-doc", 1), ("ghost-query", "d2", 1), ("q2", "ghost-doc", 1)],
    )
    with pytest.warns(UserWarning, match=r"dropped 3 judgement.*ghost-query.*ghost-doc"):
        ds = load_beir(beir_dir)
    assert ds.qrels == {"q1": {"d1": 1}}
    assert ds.queries == {"q1": "purring animals"}  # q2 lost all its judgements


def test_split_without_usable_qrels(beir_dir: Path) -> None:
    _write_qrels(beir_dir / "qrels" / "test.tsv", [("ghost-query", "d1", 1)])
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no usable judgements"):
        load_beir(beir_dir)
    _write_qrels(beir_dir / "qrels" / "test.tsv", [])
    with pytest.raises(ValueError, match="no usable judgements"):
        load_beir(beir_dir)


# ---------------------------------------------------------------- compare


def _random_encodings(n: int, dim: int, rng: np.random.Generator, max_tokens: int = 9) -> list[Encoding]:
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    return [
        Encoding(
            pooled=unit(rng.normal(size=dim)).astype(np.float32),
            tokens=unit(rng.normal(size=(int(rng.integers(1, max_tokens)), dim))).astype(np.float16),
        )
        for _ in range(n)
    ]


def test_flat_multi_query_maxsim_equals_padded_maxsim() -> None:
    """The exhaustive path of compare(): many queries at once over every doc's unpadded tokens."""
    rng = np.random.default_rng(0)
    queries, docs = _random_encodings(13, 24, rng), _random_encodings(70, 24, rng, max_tokens=30)
    packed_q, packed_d = (
        PackedTokens.from_list([q.tokens for q in queries]),
        PackedTokens.from_list([d.tokens for d in docs]),
    )
    flat = maxsim_flat(
        packed_q.values, packed_d.values, packed_d.lengths, query_lengths=packed_q.lengths, chunk_tokens=50
    )  # many chunks
    padded = maxsim(*pad_tokens([q.tokens for q in queries]), *pad_tokens([d.tokens for d in docs]))
    assert flat.shape == (13, 70)
    torch.testing.assert_close(flat, padded, atol=1e-5, rtol=0)
    one = maxsim_flat(queries[4].tokens, packed_d.values, packed_d.lengths)
    torch.testing.assert_close(one, padded[4], atol=1e-5, rtol=0)


def _reference_rankings(queries, docs, candidates, depth, lambda_pool, lambda_late):
    """Rankings from the padded oracle (tests/oracles.py): pooled, pooled top-candidates re-scored, exhaustive."""
    q_pooled = np.stack([q.pooled for q in queries])
    d_pooled = np.stack([d.pooled for d in docs])
    scores = smart_scores(
        q_pooled,
        [q.tokens for q in queries],
        d_pooled,
        [d.tokens for d in docs],
        lambda_pool=lambda_pool,
        lambda_late=lambda_late,
    )
    single = torch.topk(scores.pooled, depth, dim=1).indices.tolist()
    cand = torch.topk(scores.pooled, candidates, dim=1).indices
    rerank = [
        [int(c[i]) for i in torch.argsort(scores.fused[qi, c], descending=True, stable=True)][:depth]
        for qi, c in enumerate(cand)
    ]
    exhaustive = torch.topk(scores.fused, depth, dim=1).indices.tolist()
    return single, rerank, exhaustive


@pytest.mark.parametrize(("candidates", "lambda_pool", "lambda_late"), [(10, 1.0, 1.0), (25, 0.3, 2.0)])
def test_compare_matches_padded_reference(candidates: int, lambda_pool: float, lambda_late: float) -> None:
    rng = np.random.default_rng(1)
    queries, docs = _random_encodings(20, 16, rng), _random_encodings(120, 16, rng, max_tokens=20)
    query_ids, doc_ids = [f"q{i}" for i in range(20)], [f"d{i}" for i in range(120)]
    # each query has two relevant docs among the first 60
    qrels = {qid: {f"d{(3 * i) % 60}": 1, f"d{(3 * i + 7) % 60}": 2} for i, qid in enumerate(query_ids)}
    result = compare(
        query_ids,
        queries,
        doc_ids,
        docs,
        qrels,
        candidates=candidates,
        depth=20,
        lambda_pool=lambda_pool,
        lambda_late=lambda_late,
        query_batch=6,
        chunk_tokens=100,
        show_progress=False,
    )

    assert list(result.results) == list(METHODS)
    assert set(result.timings) == {"single_s", "smart_rerank_s", "smart_exhaustive_s"}
    for method, rows in zip(METHODS, _reference_rankings(queries, docs, candidates, 20, lambda_pool, lambda_late)):
        expected = evaluate_ranking({qid: [doc_ids[i] for i in r] for qid, r in zip(query_ids, rows)}, qrels)
        assert result.results[method] == pytest.approx(expected, abs=1e-12), method
    # re-ranking the whole corpus is exhaustive SMART
    everything = compare(
        query_ids,
        queries,
        doc_ids,
        docs,
        qrels,
        candidates=200,
        depth=20,
        lambda_pool=lambda_pool,
        lambda_late=lambda_late,
        show_progress=False,
    )
    assert everything.results["smart-rerank"] == pytest.approx(everything.results["smart-exhaustive"], abs=1e-12)
    assert everything.results["single"] == result.results["single"]

    table = result.table().splitlines()
    assert table[0].split()[:4] == ["method", "ndcg@10", "recall@100", "mrr@10"] and len(table) == 4
    gain = result.results["smart-exhaustive"]["ndcg@10"] - result.results["single"]["ndcg@10"]
    assert table[3].startswith("smart-exhaustive") and f"{gain:+.4f}" in table[3]


# ---------------------------------------------------------------- real data


@pytest.mark.skipif(not SCIFACT.exists(), reason="../shared/data/scifact not present (only on the project machines)")
def test_load_scifact() -> None:
    ds = load_beir(SCIFACT)
    assert ds.name == "scifact"
    assert len(ds.corpus) == 5183
    assert len(ds.queries) == 300
    assert sum(len(judged) for judged in ds.qrels.values()) == 339
    assert all(doc["image"] is None for doc in ds.corpus.values())
    ranking = {qid: sorted(judged, key=judged.get, reverse=True) for qid, judged in ds.qrels.items()}
    assert evaluate_ranking(ranking, ds.qrels) == pytest.approx(
        {"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}, abs=1e-9
    )
    assert len(load_beir(SCIFACT, split="train").queries) == 809


@pytest.mark.skipif(not FLICKR.exists(), reason="../shared/data/flickr8k-1k not present (only on the project machines)")
def test_load_flickr8k_1k() -> None:
    ds = load_beir(FLICKR)
    assert ds.name == "flickr8k-1k"
    assert len(ds.corpus) == 1000
    assert len(ds.queries) == 5000  # five captions per image
    assert all(len(judged) == 1 for judged in ds.qrels.values())
    for doc_id, doc in ds.corpus.items():
        image = Path(doc["image"])
        assert image.is_absolute() and image.is_file()
        assert image.stem == doc_id
        assert ds.doc_text(doc_id) == ""
