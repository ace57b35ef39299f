"""λ calibration: the cross-validated grid search, saving the weights in the table, and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from smart_retrievers import SmartIndex
from smart_retrievers.cli import main
from smart_retrievers.evaluation import ndcg_at_k
from smart_retrievers.evaluation.calibrate import (
    DEFAULT_GRID,
    DEFAULT_LEX_GRID,
    CandidateScores,
    calibrate_scores,
    fold_assignment,
)
from smart_retrievers.lexical import DEFAULT_LAMBDA_LEX as L
from smart_retrievers.sample_corpus import binding_corpus

RANK_2 = 1 / math.log2(3)  # nDCG@10 of one relevant doc at rank 2


def _late_wins(n: int = 20) -> tuple[dict, dict]:
    """Each query: a distractor first by pooled cosine, the relevant doc first once λ_late/λ_pool > 2.

    relevant: pooled 0.2, late 0.9; distractor: pooled 0.8, late 0.6 -> relevant wins iff 0.3·r > 0.6.
    At r = 2 they tie and the candidates' own order (distractor first) decides.
    """
    scores, qrels = {}, {}
    for q in range(n):
        qid = f"q{q}"
        scores[qid] = CandidateScores(
            doc_ids=["dis", f"rel{q}", "other"],
            pooled=np.array([0.8, 0.2, 0.1]),
            late=np.array([0.6, 0.9, 0.1]),
        )
        qrels[qid] = {f"rel{q}": 1}
    return scores, qrels


def test_picks_the_setting_that_clearly_wins():
    scores, qrels = _late_wins()
    result = calibrate_scores(scores, qrels, folds=5)
    assert result.cv_ndcg[(1.0, 1.0, L)] == pytest.approx(RANK_2)
    assert result.cv_ndcg[(1.0, 2.0, L)] == pytest.approx(RANK_2)  # the tie goes to the distractor
    assert result.cv_ndcg[(1.0, 4.0, L)] == pytest.approx(1.0)
    assert result.cv_ndcg[(0.0, 1.0, L)] == pytest.approx(1.0)
    assert result.cv_ndcg[(1.0, 0.0, L)] == pytest.approx(RANK_2)
    # the first best of the grid, in every fold and on all queries
    assert [f["chosen"] for f in result.fold_choices] == [(1.0, 4.0, L)] * 5
    assert all(f["test_ndcg"] == pytest.approx(1.0) for f in result.fold_choices)
    assert all(f["default_test_ndcg"] == pytest.approx(RANK_2) for f in result.fold_choices)
    assert result.cv_selected == pytest.approx(1.0)
    assert result.chosen == result.best_all == (1.0, 4.0, L)
    assert (result.lambda_pool, result.lambda_late, result.lambda_lex) == (1.0, 4.0, L) and not result.kept_default
    assert sum(f["n_queries"] for f in result.fold_choices) == result.n_queries == 20
    table = result.table()
    assert "CHOSEN" in table and "late only" in table and "pooled only" in table
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["chosen"] == [1.0, 4.0, L] and payload["cv_ndcg@10"]["1/1/0.5"] == pytest.approx(RANK_2)
    assert not result.lexical and "lambda_lex kept at 0.5" in table  # no candidate had lexical evidence


def test_keeps_the_default_when_nothing_beats_it():
    scores, qrels = _late_wins()
    for cand in scores.values():  # pooled and late agree: every setting ranks the relevant doc first
        cand.pooled[:] = cand.late
    result = calibrate_scores(scores, qrels, folds=4)
    assert all(v == pytest.approx(1.0) for v in result.cv_ndcg.values())
    assert [f["chosen"] for f in result.fold_choices] == [(1.0, 1.0, L)] * 4  # ties go to the default
    assert result.chosen == (1.0, 1.0, L) and result.kept_default


def test_min_gain_keeps_the_default():
    scores, qrels = _late_wins()
    result = calibrate_scores(scores, qrels, folds=5, min_gain=0.5)  # the gain is 1 - 0.631 = 0.369
    assert result.best_all == (1.0, 4.0, L) and result.chosen == (1.0, 1.0, L)
    assert calibrate_scores(scores, qrels, folds=5, min_gain=0.3).chosen == (1.0, 4.0, L)


def test_the_choice_follows_the_cross_validated_comparison():
    """Late-only wins the relevant doc on 2 queries of 10 and loses it (rank > 10) on 1: best on all
    queries, but the held-out folds do not all agree; the report still compares both honestly."""
    scores, qrels = {}, {}
    for q in range(10):
        qid = f"q{q}"
        late_first = q < 2
        lost = q == 2
        ids = ["dis", f"rel{q}"] + [f"x{j}" for j in range(12)]
        pooled = np.array([0.8, 0.5] + [0.4] * 12)
        late = np.array([0.6, 0.9 if late_first else 0.3] + ([0.95] * 12 if lost else [0.1] * 12))
        if not late_first and not lost:
            pooled[1] = 0.9  # the relevant doc first under every setting
        scores[qid] = CandidateScores(doc_ids=ids, pooled=pooled, late=late)
        qrels[qid] = {f"rel{q}": 1}
    result = calibrate_scores(scores, qrels, folds=10)  # leave-one-out
    # every query held out once: calibrating's CV score is the mean of each held-out query's chosen setting
    per_fold = [f["test_ndcg"] for f in result.fold_choices]
    assert result.cv_selected == pytest.approx(np.mean(per_fold))
    assert result.cv_ndcg[(1.0, 1.0, L)] == pytest.approx(result.full_ndcg[(1.0, 1.0, L)])
    assert (result.chosen == result.best_all) == (result.cv_selected > result.cv_ndcg[(1.0, 1.0, L)])


def test_bad_inputs():
    scores, qrels = _late_wins(4)
    with pytest.raises(ValueError, match="cannot be split into 5 folds"):
        calibrate_scores(scores, qrels, folds=5)
    with pytest.raises(ValueError, match="folds must be >= 2"):
        calibrate_scores(scores, qrels, folds=1)
    with pytest.raises(ValueError, match="not both 0"):
        calibrate_scores(scores, qrels, folds=2, grid=[(0, 0)])
    with pytest.raises(ValueError, match="qrels is empty"):
        calibrate_scores(scores, {}, folds=2)
    result = calibrate_scores(scores, qrels, folds=2, grid=[(1, 0), (0, 1)])
    assert result.grid == [(1.0, 0.0, L), (0.0, 1.0, L), (1.0, 1.0, L)]  # the default is always compared


def test_fold_assignment_is_balanced_and_seeded():
    folds = fold_assignment(23, 5, seed=3)
    assert sorted(np.bincount(folds).tolist()) == [4, 4, 5, 5, 5]
    assert (fold_assignment(23, 5, seed=3) == folds).all()
    assert not (fold_assignment(23, 5, seed=4) == folds).all()


def _binding_index(encoder, path) -> tuple[SmartIndex, dict[str, str], dict[str, dict[str, int]]]:
    texts, _, cases = binding_corpus()
    index = SmartIndex(str(path), encoder=encoder, compression="none")
    index.add(list(texts.values()), ids=list(texts))
    queries = {f"q{n}": c.query for n, c in enumerate(cases)}
    qrels = {f"q{n}": {c.answer_id: 1} for n, c in enumerate(cases)}
    return index, queries, qrels


def test_index_calibrate_fuses_as_a_search_ranks(encoder, tmp_path):
    """Re-fusing the candidates' scores gives what a search with those weights gives; saved weights persist."""
    index, queries, qrels = _binding_index(encoder, tmp_path / "db")
    result = index.calibrate(queries, qrels, folds=3, candidates=100)
    assert result.lexical and len(result.grid) == len(DEFAULT_GRID) * len(DEFAULT_LEX_GRID)
    for pool, late, lex in result.grid:  # lambda_lex 0 is "rerank": the pooled candidates alone
        ranking = {
            qid: [h.id for h in index.search(q, k=10, lambda_pool=pool, lambda_late=late, lambda_lex=lex)]
            for qid, q in queries.items()
        }
        assert result.full_ndcg[(pool, late, lex)] == pytest.approx(ndcg_at_k(ranking, qrels, 10), abs=1e-9)
    # SMART binds codes to their shapes where the pooled vector does not (5/6 vs 3/6 answers first)
    assert result.full_ndcg[(1.0, 1.0, L)] > result.full_ndcg[(1.0, 0.0, L)]
    assert (index.lambda_pool, index.lambda_late, index.lambda_lex) == (1.0, 1.0, L)  # not saved
    assert SmartIndex(str(tmp_path / "db"), encoder=encoder).store.fusion_weights is None

    saved = index.calibrate(queries, qrels, folds=3, save=True)
    assert (index.lambda_pool, index.lambda_late, index.lambda_lex) == saved.chosen
    reopened = SmartIndex(str(tmp_path / "db"), encoder=encoder)
    assert (reopened.lambda_pool, reopened.lambda_late, reopened.lambda_lex) == saved.chosen
    assert tuple(reopened.store.fusion_weights.values()) == saved.chosen


def test_saved_weights_are_the_default_and_explicit_ones_win(encoder, tmp_path):
    index, _, _ = _binding_index(encoder, tmp_path / "db")
    index.store.set_fusion_weights(0.0, 1.0)
    reopened = SmartIndex(str(tmp_path / "db"), encoder=encoder)
    assert (reopened.lambda_pool, reopened.lambda_late) == (0.0, 1.0)
    hit = reopened.search("P2 blue circle", k=1, mode="rerank")[0]
    assert hit.score == pytest.approx(hit.late_score)
    hybrid = reopened.search("P2 blue circle", k=1)[0]  # the default adds λ_lex · lex_score
    assert hybrid.score == pytest.approx(hybrid.late_score + 0.5 * hybrid.lex_score)
    explicit = SmartIndex(str(tmp_path / "db"), encoder=encoder, lambda_pool=1.0)
    assert (explicit.lambda_pool, explicit.lambda_late) == (1.0, 1.0)
    assert search_ids(reopened) != [] and reopened.count() == 12  # rows untouched by the metadata commit
    with pytest.raises(ValueError, match="does not exist yet"):
        SmartIndex(str(tmp_path / "empty"), encoder=encoder).store.set_fusion_weights(1.0, 2.0)
    with pytest.raises(ValueError, match="lambda_pool"):
        SmartIndex(str(tmp_path / "db"), encoder=encoder, lambda_pool=-1.0)


def search_ids(index: SmartIndex) -> list[str]:
    return [h.id for h in index.search("red star", k=3)]


def test_cli_calibrate_saves(binding_beir_dir, tmp_path, capsys):
    root = binding_beir_dir
    db = str(tmp_path / "db")
    with pytest.raises(SystemExit, match="no index at"):
        main(["calibrate", str(root), "--db", db])
    assert main(["index", str(root / "corpus.jsonl"), "--db", db, "--compression", "none"]) == 0
    capsys.readouterr()
    assert main(["calibrate", str(root), "--db", db, "--grid", "1/x"]) == 2
    assert "--grid entry '1/x'" in capsys.readouterr().err
    out = tmp_path / "cal.json"
    assert main(["calibrate", str(root), "--db", db, "--folds", "3", "--save", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cross-validated nDCG@10 of calibrating" in printed and "saved lambda_pool=" in printed
    payload = json.loads(out.read_text())
    assert payload["dataset"] == "bind" and len(payload["folds"]) == 3 and payload["n_queries"] == 6
    pool_late = ("1/0", "1/0.25", "1/0.5", "1/1", "1/2", "1/4", "0/1")
    assert set(payload["cv_ndcg@10"]) == {f"{w}/{x}" for w in pool_late for x in ("0", "0.25", "0.5", "1")}
    import lancedb

    meta = lancedb.connect(db).open_table("smart").schema.field("vector").metadata
    stored = json.loads(meta[b"smart_retrievers.weights"])
    assert [stored["lambda_pool"], stored["lambda_late"], stored["lambda_lex"]] == payload["chosen"]


def test_lambda_lex_zero_ranks_the_pooled_candidates_alone():
    """The relevant doc is a full-text candidate only: found under every lambda_lex > 0, never at 0 (as "rerank")."""
    scores, qrels = {}, {}
    for q in range(6):
        scores[f"q{q}"] = CandidateScores(
            doc_ids=["dis", f"rel{q}"],
            pooled=np.array([0.5, 0.9]),
            late=np.array([0.5, 0.9]),
            lex=np.array([0.0, 0.2]),
            pooled_candidate=np.array([True, False]),
        )
        qrels[f"q{q}"] = {f"rel{q}": 1}
    result = calibrate_scores(scores, qrels, folds=3, grid=[(1, 1)], lex_grid=[0.0, 0.25, 1.0])
    assert result.lexical and result.grid == [(1.0, 1.0, 0.0), (1.0, 1.0, 0.25), (1.0, 1.0, 1.0), (1.0, 1.0, L)]
    assert result.full_ndcg[(1.0, 1.0, 0.0)] == 0.0  # not a pooled candidate: a search without lexical term misses it
    assert all(result.full_ndcg[w] == 1.0 for w in result.grid[1:])
    assert result.chosen == (1.0, 1.0, L)  # ties go to the default
    with pytest.raises(ValueError, match="lambda_lex must be a finite number >= 0"):
        calibrate_scores(scores, qrels, folds=3, lex_grid=[-1.0])
    with pytest.raises(ValueError, match="lex_grid is empty"):
        calibrate_scores(scores, qrels, folds=3, lex_grid=[])
    assert calibrate_scores(scores, qrels, folds=3, grid=[(1, 1, 0)]).grid == [(1.0, 1.0, 0.0), (1.0, 1.0, L)]


# Twelve ~95-word work orders that differ only in a ticket number (permutations of the same five digits, which
# the embedder barely tells apart) and in one sentence saying what was wrong.
FILLER = (
    "The maintenance crew inspected the site on the north side of the plant and logged the readings for each "
    "room, the state of the main line and the temperature of the equipment before noon.",
    "They replaced worn parts where needed, cleaned the screens and checked the rest of the building. Nothing "
    "else unusual was reported and the issue will be reviewed at the next visit by the team. The supervisor "
    "signed the sheet and the crew moved on to the east reservoir for the afternoon round.",
)
FAULTS = [  # (what the work order says, a query's paraphrase sharing no word with it)
    ("the boiler in the basement was leaking water", "furnace dripping"),
    ("the roof over the garage had loose shingles", "carport tiles"),
    ("the elevator stopped between floors", "lift stuck"),
    ("the parking lot lights were flickering", "lamps blinking"),
    ("the kitchen sink drain was clogged", "blocked basin"),
    ("the front door lock was jammed", "latch stuck"),
    ("the air conditioner made a loud rattling noise", "cooling clattering"),
    ("the fire alarm went off without any smoke", "siren blaze"),
    ("a window pane in the lobby was cracked", "broken glass"),
    ("the water heater produced no hot water", "geyser cold"),
    ("the backup generator failed to start", "standby power"),
    ("the conveyor belt slipped off its rollers", "transport band"),
]
TICKETS = ["95137", "51397", "91375", "95731", "51973", "13975", "35791", "57931", "57319", "51793", "97351", "91735"]


def test_calibrate_fits_lambda_lex_where_lexical_evidence_decides_and_drops_it_where_it_misleads(encoder, tmp_path):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none")
    n = len(FAULTS)
    texts = [f"{FILLER[0]} Ticket {TICKETS[i]}: {fault}. {FILLER[1]}" for i, (fault, _) in enumerate(FAULTS)]
    index.add(texts, ids=[f"r{i}" for i in range(n)])
    qrels = {f"q{i}": {f"r{i}": 1} for i in range(n)}
    # the ticket number decides: only the exact number in the full-text index tells the work orders apart
    by_ticket = {f"q{i}": f"ticket {TICKETS[i]}" for i in range(n)}
    decisive = index.calibrate(by_ticket, qrels, folds=3, grid=[(1, 1)])
    assert decisive.lambda_lex > 0 and decisive.lexical
    assert decisive.cv_ndcg[(1.0, 1.0, 0.0)] < decisive.cv_ndcg[decisive.chosen] == 1.0
    # the query excludes the next work order's number: its exact match misleads, the paraphrase is the answer
    excluding = {f"q{i}": f"{FAULTS[i][1]} not {TICKETS[(i + 1) % n]}" for i in range(n)}
    misleading = index.calibrate(excluding, qrels, folds=3, grid=[(1, 1)])
    assert misleading.lambda_lex == 0 and not misleading.kept_default
    assert misleading.cv_ndcg[(1.0, 1.0, 0.0)] > misleading.cv_ndcg[(1.0, 1.0, L)] + 0.1


def test_judged_documents_missing_from_the_index_are_warned_about(encoder, tmp_path, binding_beir_dir, capsys):
    index, queries, qrels = _binding_index(encoder, tmp_path / "db")
    qrels = {**qrels, "q0": {**qrels["q0"], "gone-1": 1}, "q1": {**qrels["q1"], "gone-2": 2}}
    with pytest.warns(
        UserWarning, match=r"2 of 8 judged documents are not in the index \(e\.g\. \['gone-1', 'gone-2'\]\)"
    ):
        result = index.calibrate(queries, qrels, folds=3, grid=[(1, 1)])
    assert result.missing_judged == ["gone-1", "gone-2"] and result.judged == 8
    assert "warning: 2 of 8 judged documents are not in the index" in result.table()
    assert result.to_dict()["missing_judged_documents"] == ["gone-1", "gone-2"]
    # the CLI says it on stderr, once: an index built from part of the corpus
    db = str(tmp_path / "cli")
    answer = next(iter(qrels["q0"]))
    lines = (binding_beir_dir / "corpus.jsonl").read_text().splitlines(keepends=True)
    part = tmp_path / "part.jsonl"
    part.write_text("".join(line for line in lines if json.loads(line)["_id"] != answer))
    assert main(["index", str(part), "--db", db, "--compression", "none"]) == 0
    capsys.readouterr()
    assert main(["calibrate", str(binding_beir_dir), "--db", db, "--folds", "3", "--grid", "1/1"]) == 0
    out, err = capsys.readouterr()
    assert err.count(f"warning: 1 of 6 judged documents are not in the index (e.g. [{answer!r}])") == 1
    assert "warning: 1 of 6 judged documents" in out  # in the report too
