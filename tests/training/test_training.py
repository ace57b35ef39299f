"""Tests for adapter training: the batched late score, the loop, data checks, caching and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from oracles import maxsim, pad_tokens

from smart_retrievers import SmartEncoder
from smart_retrievers.adapter import SmartAdapter
from smart_retrievers.encoding import Encoding
from smart_retrievers.evaluation import compare, evaluate_ranking
from smart_retrievers.training import (
    TokenStates,
    TrainConfig,
    TrainingDataError,
    encode_states,
    fit_adapter,
    late_maxsim,
    load_training_data,
    smart_rankings,
    training_loss,
)
from smart_retrievers.training import fit as fit_module
from smart_retrievers.training.fit import _lr_lambda
from smart_retrievers.training.loss import Batch, batch_logits, make_batches
from smart_retrievers.training.task import draw_negatives, mine_negatives

# ---- synthetic states with learnable structure ------------------------------------


def synthetic_states(n_queries: int = 48, hidden: int = 16, signal: int = 4, noise: float = 0.6, seed: int = 0):
    """Queries and their positive docs share a topic in the first ``signal`` dims; the
    other dims are noise that swamps the cosine until an adapter learns to drop it."""
    rng = np.random.default_rng(seed)

    def item(topic: np.ndarray) -> Encoding:
        tokens = np.concatenate(
            [rng.normal(0, 0.3, (6, signal)) + topic, rng.normal(0, noise, (6, hidden - signal))], axis=1
        )
        tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
        pooled = tokens.mean(0) / np.linalg.norm(tokens.mean(0))
        return Encoding(pooled=pooled.astype(np.float32), tokens=tokens.astype(np.float16))

    topics = rng.normal(0, 1, (n_queries, signal))
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    docs = [item(t) for t in topics] + [item(rng.normal(0, 0.5, signal)) for _ in range(n_queries)]
    queries = TokenStates.from_encodings([f"q{i}" for i in range(n_queries)], [item(t) for t in topics])
    doc_states = TokenStates.from_encodings([f"d{i}" for i in range(len(docs))], docs)
    return queries, doc_states, {f"q{i}": {f"d{i}": 1} for i in range(n_queries)}


# ---- the batched late score --------------------------------------------------------


def test_late_maxsim_matches_scoring_and_autograd():
    torch.manual_seed(0)
    lengths = torch.tensor([3, 1, 4])
    queries = torch.randn(8, 6, requires_grad=True)
    docs = torch.randn(5, 7, 6, requires_grad=True)
    doc_mask = torch.arange(7)[None, :] < torch.tensor([7, 1, 4, 2, 5])[:, None]
    weights = torch.randn(3, 5)

    fast = late_maxsim(queries, lengths, docs, doc_mask, max_elements=40)  # forces several chunks
    (fast * weights).sum().backward()
    fast_grads = queries.grad.clone(), docs.grad.clone()
    queries.grad = docs.grad = None

    q_block, q_mask = pad_tokens([q.detach() for q in torch.split(queries, lengths.tolist())])
    torch.testing.assert_close(fast.detach(), maxsim(q_block, q_mask, docs.detach(), doc_mask))
    reference = torch.stack(  # plain autograd: a loop over (query, doc)
        [
            torch.stack([(q @ d[m].T).amax(dim=1).mean() for d, m in zip(docs, doc_mask)])
            for q in torch.split(queries, lengths.tolist())
        ]
    )
    (reference * weights).sum().backward()
    torch.testing.assert_close(fast, reference)
    torch.testing.assert_close(fast_grads[0], queries.grad)
    torch.testing.assert_close(fast_grads[1], docs.grad)
    with pytest.raises(ValueError, match="query_lengths"):
        late_maxsim(queries, torch.tensor([3, 3]), docs, doc_mask)


def _random_adapter(hidden: int, out: int, seed: int = 0) -> SmartAdapter:
    torch.manual_seed(seed)
    adapter = SmartAdapter(hidden, out)
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return adapter.eval()


@pytest.mark.parametrize("fused", [False, True])
def test_batch_logits_are_smart_scores_of_adapted_tokens_over_tau(fused):
    queries, docs, _ = synthetic_states(n_queries=8)
    adapter = _random_adapter(16, 8)
    positives = {q: {q} for q in range(8)}  # q_i's positive is d_i
    batch = make_batches(
        [(q, q) for q in range(8)], positives, {q: [8 + q] for q in range(8)}, [5, 2, 7], batch_size=3
    )[0]
    assert batch.query_rows == [5, 2, 7] and batch.doc_rows == [5, 2, 7, 13, 10, 15]
    assert batch.target.tolist() == [0, 1, 2] and not batch.blocked.any()

    logits = batch_logits(adapter, queries, docs, batch, tau=0.05, fused=fused)
    with torch.no_grad():

        def adapt(states, row):
            return adapter(torch.from_numpy(states.tokens.item(row).astype(np.float32)))

        late = maxsim(
            *pad_tokens([adapt(queries, q) for q in batch.query_rows]),
            *pad_tokens([adapt(docs, d) for d in batch.doc_rows]),
        )
    expected = (
        late + torch.from_numpy(queries.pooled[batch.query_rows] @ docs.pooled[batch.doc_rows].T) if fused else late
    )
    torch.testing.assert_close(logits.detach(), expected / 0.05, atol=1e-4, rtol=1e-5)
    logits.sum().backward()  # differentiable in the adapter's weights
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter.parameters())

    # another positive of the same query is blocked, not a negative
    blocked = Batch([0], [0, 1], torch.tensor([0]), torch.tensor([[False, True]]))
    assert batch_logits(adapter, queries, docs, blocked, tau=0.05)[0, 1] == float("-inf")
    two_positives = make_batches([(0, 0), (0, 1)], {0: {0, 1}}, {0: []}, [0, 1], batch_size=2)[0]
    assert two_positives.blocked.tolist() == [[False, True], [True, False]]


# ---- the training loop ----------------------------------------------------------------


def test_tiny_training_lowers_loss_and_raises_accuracy():
    queries, docs, qrels = synthetic_states()
    config = TrainConfig(epochs=8, lr=1e-2, tau=0.05, batch_size=16, hard_negatives=2, val_split=0.0, seed=3)
    before = training_loss(SmartAdapter(16), queries, docs, qrels, config)  # the identity initialisation
    result = fit_adapter(queries, docs, qrels, config, show_progress=False)
    after = training_loss(result.adapter, queries, docs, qrels, config)
    assert after[0] < 0.8 * before[0], (before, after)
    assert after[1] > before[1] + 0.15, (before, after)
    assert result.best_epoch == config.epochs and len(result.history) == config.epochs + 1
    assert result.adapter.info["hyperparameters"]["lr"] == 1e-2
    # the seed makes it reproducible
    again = fit_adapter(queries, docs, qrels, config, show_progress=False)
    assert again.adapter.fingerprint() == result.adapter.fingerprint()


def test_training_with_validation_keeps_the_best_epoch():
    queries, docs, qrels = synthetic_states(n_queries=40)
    config = TrainConfig(
        dim=8,
        epochs=3,
        lr=1e-2,
        tau=0.05,
        batch_size=16,
        hard_negatives=1,
        val_split=0.25,
        val_candidates=10,
        loss="fused",
    )
    result = fit_adapter(queries, docs, qrels, config, show_progress=False)
    scores = [h["val_ndcg@10"] for h in result.history]
    assert result.best_epoch == int(np.argmax(scores)) and result.data["val_queries"] == 10
    assert result.adapter.out_dim == 8 and result.adapter.info["best_epoch"] == result.best_epoch


def test_learning_rate_schedules():
    warm_cosine, constant = _lr_lambda(10, 0.2, "cosine"), _lr_lambda(10, 0.0, "constant")
    assert [warm_cosine(s) for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert warm_cosine(6) == pytest.approx(0.5) and warm_cosine(10) == pytest.approx(0.0)
    assert [constant(s) for s in range(10)] == [1.0] * 10
    assert _lr_lambda(10, 0.2, "constant")(0) == 0.5


def test_negatives_are_drawn_from_the_mined_pool():
    queries, docs, qrels = synthetic_states(n_queries=12)
    positives = {queries.row[q]: {docs.row[d] for d in judged} for q, judged in qrels.items()}
    pools = mine_negatives(queries, docs, positives, 6)
    pooled = docs.pooled @ queries.pooled.T
    for q, pool in pools.items():
        assert len(pool) == 6 and not set(pool) & positives[q]
        ranked = [d for d in np.argsort(-pooled[:, q], kind="stable") if d not in positives[q]]
        assert pool == ranked[:6]  # the top pooled-score non-positives, best first
    rng = np.random.default_rng(0)
    draws = [draw_negatives(pools, 2, rng) for _ in range(5)]
    assert all(len(d[q]) == 2 and set(d[q]) <= set(pools[q]) for d in draws for q in pools)
    assert len({tuple(d[q]) for d in draws for q in [0]}) > 1  # a fresh draw each time
    assert draw_negatives(pools, 6, rng) == pools  # a pool no larger than k is taken whole
    with pytest.raises(ValueError, match="negative_pool >= hard_negatives"):
        TrainConfig(hard_negatives=4, negative_pool=3)


def test_remining_uses_the_adapters_smart_ranking():
    queries, docs, qrels = synthetic_states(n_queries=12)
    positives = {queries.row[q]: {docs.row[d] for d in judged} for q, judged in qrels.items()}
    adapter = _random_adapter(16, 8)
    mined = mine_negatives(queries, docs, positives, 4, adapter, candidates=20)
    _, smart = smart_rankings(queries, docs, adapter, candidates=20)
    for q, pool in mined.items():
        assert pool == [docs.row[d] for d in smart[queries.ids[q]] if docs.row[d] not in positives[q]][:4]
    assert mined != mine_negatives(queries, docs, positives, 4)  # not the pooled-score pool

    # in training: re-mining changes nothing in epoch 1 and changes what epoch 2 trains on
    config = TrainConfig(epochs=1, lr=1e-2, tau=0.05, batch_size=8, hard_negatives=2, negative_pool=4, val_split=0)
    one = [fit_adapter(queries, docs, qrels, replace(config, remine=r), show_progress=False) for r in (False, True)]
    assert one[0].adapter.fingerprint() == one[1].adapter.fingerprint()
    config = replace(config, epochs=2)
    two = [fit_adapter(queries, docs, qrels, replace(config, remine=r), show_progress=False) for r in (False, True)]
    assert two[0].adapter.fingerprint() != two[1].adapter.fingerprint()


def test_max_minutes_stops_cleanly_and_keeps_the_best_epoch(monkeypatch):
    queries, docs, qrels = synthetic_states(n_queries=40)
    config = TrainConfig(dim=8, epochs=4, lr=1e-2, tau=0.05, batch_size=8, hard_negatives=1, val_split=0.25)
    full = fit_adapter(queries, docs, qrels, config, show_progress=False)
    assert not full.stopped_early and [h.get("steps") for h in full.history] == [None, 4, 4, 4, 4]

    clock = iter(range(0, 10_000, 7))  # every perf_counter() call moves 7 s on
    monkeypatch.setattr(fit_module.time, "perf_counter", lambda: float(next(clock)))
    epochs = []
    stopped = fit_adapter(
        queries,
        docs,
        qrels,
        replace(config, max_minutes=1.0),
        show_progress=False,
        on_epoch=lambda epoch, adapter: epochs.append(epoch),
    )
    assert stopped.stopped_early and stopped.adapter.info["stopped_early"]
    steps = [h["steps"] for h in stopped.history[1:]]
    assert 1 <= len(steps) < 4 and sum(steps) < 16 and epochs == [h["epoch"] for h in stopped.history[1:]]
    assert all("val_ndcg@10" in h for h in stopped.history)  # the cut epoch is validated too
    scores = [h["val_ndcg@10"] for h in stopped.history]
    assert stopped.best_epoch == int(np.argmax(scores))
    with pytest.raises(ValueError, match="max_minutes"):
        TrainConfig(max_minutes=0)


def test_fit_rejects_unusable_qrels():
    queries, docs, qrels = synthetic_states(n_queries=4)
    with pytest.raises(TrainingDataError, match="inconsistent"):
        fit_adapter(queries, docs, {**qrels, "q0": {"missing-doc": 1}}, TrainConfig(val_split=0), show_progress=False)
    with pytest.raises(TrainingDataError, match="no positive"):
        fit_adapter(queries, docs, {"q0": {"d0": 0}}, TrainConfig(val_split=0), show_progress=False)
    with pytest.raises(TrainingDataError, match="need at least 2"):
        fit_adapter(queries, docs, {"q0": {"d0": 1}, "q1": {"d1": 1}}, TrainConfig(val_split=0.5), show_progress=False)
    with pytest.raises(ValueError, match="invalid TrainConfig"):
        TrainConfig(tau=0)


def test_smart_rankings_match_the_eval_comparison():
    queries, docs, qrels = synthetic_states(n_queries=12)
    single, smart = smart_rankings(queries, docs, candidates=20)
    q_enc = [Encoding(pooled=queries.pooled[i], tokens=queries.tokens.item(i)) for i in range(len(queries))]
    d_enc = [Encoding(pooled=docs.pooled[i], tokens=docs.tokens.item(i)) for i in range(len(docs))]
    reference = compare(
        queries.ids, q_enc, docs.ids, d_enc, qrels, candidates=20, depth=20, show_progress=False
    ).results
    assert evaluate_ranking(single, qrels) == pytest.approx(reference["single"])
    assert evaluate_ranking(smart, qrels) == pytest.approx(reference["smart-rerank"])
    assert all(len(ranked) == 20 for ranked in smart.values()) and all(set(smart[q]) == set(single[q]) for q in single)


def test_smart_rankings_with_an_adapter_score_adapted_tokens():
    """SMART with an adapter = pooled top candidates, re-scored as cos + late on adapted query and doc tokens."""
    queries, docs, _ = synthetic_states(n_queries=6)
    adapter = _random_adapter(16, 8)
    single, smart = smart_rankings(
        queries, docs, adapter, query_ids=["q1", "q4"], candidates=10, lambda_pool=0.5, lambda_late=2.0
    )
    assert set(smart) == {"q1", "q4"}
    d_pooled = torch.from_numpy(docs.pooled)
    with torch.no_grad():
        adapted = [adapter(torch.from_numpy(docs.tokens.item(i).astype(np.float32))).half() for i in range(len(docs))]
        for qid in ("q1", "q4"):
            q = queries.row[qid]
            pooled = d_pooled @ torch.from_numpy(queries.pooled[q])
            cand = torch.topk(pooled, 10).indices.tolist()
            assert single[qid] == [docs.ids[d] for d in cand]
            q_tokens = adapter(torch.from_numpy(queries.tokens.item(q).astype(np.float32))).half()
            late = maxsim(*pad_tokens([q_tokens]), *pad_tokens([adapted[d] for d in cand]))[0]
            fused = 0.5 * pooled[cand] + 2.0 * late
            assert smart[qid] == [docs.ids[cand[i]] for i in torch.argsort(fused, descending=True, stable=True)]


# ---- BEIR data checks ---------------------------------------------------------------


def write_beir(root: Path, n_items: int = 30, test_from: int = 20, qrels_rows: list[str] | None = None) -> Path:
    """A tiny BEIR layout: facts about coloured animals, one query per fact."""
    colours = ["red", "blue", "green", "yellow", "black", "white"]
    animals = ["fox", "owl", "whale", "beetle", "lizard"]
    places = ["a cave", "the marsh", "an oak tree", "the reef", "a desert", "the tundra", "a barn"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    docs, queries = [], []
    for i in range(n_items):
        colour, animal, place = colours[i % 6], animals[i % 5], places[(i * 3) % 7]
        docs.append(
            {
                "_id": f"d{i}",
                "title": f"The {colour} {animal}",
                "text": f"The {colour} {animal} lives in {place} and eats at dusk.",
            }
        )
        queries.append({"_id": f"q{i}", "text": f"where does the {colour} {animal} live?"})
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    header = "query-id\tcorpus-id\tscore\n"
    train = qrels_rows if qrels_rows is not None else [f"q{i}\td{i}\t1" for i in range(test_from)]
    (root / "qrels" / "train.tsv").write_text(header + "".join(r + "\n" for r in train))
    (root / "qrels" / "test.tsv").write_text(header + "".join(f"q{i}\td{i}\t1\n" for i in range(test_from, n_items)))
    return root


def test_load_training_data_refuses_empty_and_inconsistent_qrels(tmp_path):
    with pytest.raises(TrainingDataError, match="no usable judgements"):
        load_training_data(write_beir(tmp_path / "empty", qrels_rows=[]))
    with pytest.raises(TrainingDataError, match="no positive"):
        load_training_data(write_beir(tmp_path / "zero", qrels_rows=["q0\td0\t0", "q1\td1\t0"]))
    bad = write_beir(tmp_path / "bad", qrels_rows=["q0\td0\t1", "q1\tnope\t1", "q2\td2\t1"])
    with pytest.raises(TrainingDataError, match="inconsistent qrels"):
        load_training_data(bad)
    with pytest.warns(UserWarning, match="dropped"):
        assert set(load_training_data(bad, skip_unknown=True).qrels) == {"q0", "q2"}
    with pytest.raises(FileNotFoundError, match="available splits"):
        load_training_data(bad, split="dev")


def test_train_cli_stops_cleanly_on_bad_qrels(tmp_path, capsys):
    from smart_retrievers import cli

    beir = write_beir(tmp_path / "beir", qrels_rows=["q0\tnope\t1"])
    assert cli.main(["train", str(beir), "--out", str(tmp_path / "out")]) == 2
    assert "inconsistent qrels" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert cli.main(["train", str(write_beir(tmp_path / "empty", qrels_rows=[])), "--out", str(tmp_path / "out")]) == 2
    assert "no usable judgements" in capsys.readouterr().err
    assert cli.main(["train", str(beir), "--out", str(tmp_path / "out"), "--tau", "0"]) == 2
    assert "invalid TrainConfig (tau > 0)" in capsys.readouterr().err


# ---- with the real model --------------------------------------------------------------


def test_encode_states_caches_on_disk(tmp_path, encoder, monkeypatch):
    texts = ["alpha beta gamma", "a much longer document about delta and epsilon", "!"]
    first = encode_states(encoder, ["a", "b", "c"], texts, kind="document", cache_dir=tmp_path, show_progress=False)
    for row, expected in enumerate(encoder.encode_documents(texts)):
        np.testing.assert_array_equal(first.tokens.item(row), expected.tokens.astype(np.float16))
        np.testing.assert_array_equal(first.pooled[row], expected.pooled)
    assert first.tokens.lengths.tolist() == [len(e.tokens) for e in encoder.encode_documents(texts)]
    assert first.dim == 384 and first.row == {"a": 0, "b": 1, "c": 2}
    monkeypatch.setattr(type(encoder), "encode_documents", lambda *a, **k: pytest.fail("re-encoded despite the cache"))
    second = encode_states(encoder, ["a", "b", "c"], texts, kind="document", cache_dir=tmp_path)
    assert isinstance(second.tokens.values, np.memmap)
    np.testing.assert_array_equal(first.tokens.values, second.tokens.values)
    np.testing.assert_array_equal(first.tokens.offsets, second.tokens.offsets)
    np.testing.assert_array_equal(first.pooled, second.pooled)
    assert second.ids == ["a", "b", "c"] and len(list(tmp_path.iterdir())) == 1
    monkeypatch.undo()
    expected = encoder.encode_queries(texts[:1])[0]
    queries = encode_states(encoder, ["a"], texts[:1], kind="query", cache_dir=tmp_path)  # another entry
    np.testing.assert_array_equal(queries.tokens.values, expected.tokens)
    assert len(list(tmp_path.iterdir())) == 2
    with pytest.raises(ValueError, match="without adapter"):
        encode_states(SmartEncoder.default(adapter=SmartAdapter(384)), ["a"], ["x"], kind="query", cache_dir=tmp_path)


def test_cli_trains_and_evaluates_end_to_end(tmp_path, capsys):
    from smart_retrievers import cli

    beir = write_beir(tmp_path / "beir")
    out, summary = tmp_path / "adapter", tmp_path / "train.json"
    argv = [
        "train",
        str(beir),
        "--out",
        str(out),
        "--dim",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--hard-negatives",
        "2",
        "--negative-pool",
        "4",
        "--remine",
        "--max-minutes",
        "5",
        "--val-split",
        "0.2",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
        str(summary),
    ]
    assert cli.main(argv) == 0
    assert "saved adapter (r=32" in capsys.readouterr().out
    trained = json.loads(summary.read_text())
    assert trained["dim"] == 32 and len(trained["history"]) == 3 and trained["data"]["train_queries"] == 16

    adapter = SmartAdapter.load(out)
    assert adapter.out_dim == 32 and adapter.info["data"]["split"] == "train"
    options = adapter.info["hyperparameters"]
    assert (options["negative_pool"], options["remine"], options["max_minutes"]) == (4, True, 5.0)
    assert not trained["stopped_early"] and trained["train_cpu_seconds"] > 0
    assert cli.main(["eval", str(beir), "--adapter", str(out), "--json", str(tmp_path / "eval.json")]) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["fingerprint"]["adapter"] == adapter.fingerprint() and evaluated["fingerprint"]["token_dim"] == 32
    assert 0 < evaluated["results"]["smart-rerank"]["ndcg@10"] <= 1
