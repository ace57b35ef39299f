"""Token pooling: contiguous short runs, the counts promised, the least squared error, near-duplicate neighbours
first, identical states kept exactly, late scores (and a document's match with itself) kept."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from smart_retrievers.codec import pool_documents, pool_tokens
from smart_retrievers.scoring import maxsim_flat


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _docs(seed: int = 0) -> list[np.ndarray]:
    """Documents of many lengths whose neighbouring tokens are correlated, as contextual states are."""
    gen = np.random.default_rng(seed)
    docs = []
    for n in [1, 2, 3, 4, 5, 9, 16, 31, 64, 200]:
        walk = np.cumsum(gen.normal(size=(n, 48)), axis=0) * 0.5 + gen.normal(size=(n, 48))
        docs.append(_unit(walk + 3 * gen.normal(size=48)))
    return docs


@pytest.mark.parametrize("factor", [1, 2, 3, 4])
def test_counts_runs_and_means(factor):
    docs = _docs()
    pooled = pool_documents(docs, factor)
    expected = [len(d) if factor == 1 or len(d) < 3 else -(-len(d) // factor) for d in docs]
    assert pooled.lengths.tolist() == expected and len(pooled.tokens) == sum(expected)
    offsets = np.concatenate([[0], np.cumsum(pooled.lengths)])
    for i, doc in enumerate(docs):
        runs = pooled.runs(i, len(doc))
        # the runs tile the document in order: every token is in exactly one contiguous run
        assert runs[0][0] == 0 and runs[-1][1] == len(doc)
        assert all(a < b for a, b in runs) and all(b == c for (_, b), (c, _) in zip(runs, runs[1:]))
        assert all(b - a <= max(1, 2 * factor - 1) for a, b in runs)  # no long chain averaged into one vector
        for k, (a, b) in enumerate(runs):  # each pooled token is the unit mean of its run
            np.testing.assert_allclose(pooled.tokens[offsets[i] + k], _unit(doc[a:b].sum(axis=0)), atol=1e-5)
    # pooling a batch is pooling each document alone
    for i, doc in enumerate(docs):
        np.testing.assert_allclose(pool_tokens(doc, factor), pooled.tokens[offsets[i] : offsets[i + 1]], atol=1e-6)


def test_near_duplicate_neighbours_merge_first():
    gen = np.random.default_rng(3)
    words = _unit(gen.normal(size=(6, 32)))
    # five words as ten pieces: words 0, 1 and 4 come as near-identical sub-word pieces
    pieces = [0, 0, 1, 1, 1, 2, 3, 4, 4, 4]
    doc = _unit(words[pieces] + 1e-3 * gen.normal(size=(len(pieces), 32)))
    pooled = pool_documents([doc], 2)  # 10 tokens -> 5: the five merges are the five near-duplicate links
    assert pooled.runs(0, len(doc)) == [(0, 2), (2, 5), (5, 6), (6, 7), (7, 10)]
    assert (np.max(pooled.tokens @ words.T, axis=1) > 0.999).all()


def test_short_documents_and_min_tokens_are_kept_whole():
    docs = _docs()
    pooled = pool_documents(docs, 2, min_tokens=10)
    assert pooled.lengths.tolist()[:6] == [1, 2, 3, 4, 5, 9]  # under 10 tokens: as they are
    assert pooled.lengths.tolist()[6:] == [8, 16, 32, 100]
    with pytest.raises(ValueError, match="factor"):
        pool_documents(docs, 0)
    empty = pool_documents([], 2)
    assert empty.tokens.shape[0] == 0 and len(empty.lengths) == 0


def test_pooled_late_scores_track_the_float_ones():
    """MaxSim against pooled tokens stays close to MaxSim against every token, and ranks documents alike."""
    docs = _docs(seed=1) * 3
    gen = np.random.default_rng(2)
    queries = [_unit(d[gen.integers(0, len(d), 4)] + 0.3 * gen.normal(size=(4, 48))) for d in docs[:10]]
    flat = np.concatenate(docs)
    lengths = [len(d) for d in docs]
    pooled = pool_documents(docs, 2)
    for q in queries:
        exact = maxsim_flat(q, flat, lengths)
        approx = maxsim_flat(q, pooled.tokens, pooled.lengths)
        assert (exact - approx).abs().mean() < 0.1
        assert torch.corrcoef(torch.stack([exact, approx]))[0, 1] > 0.9


def _squared_error(doc: np.ndarray, runs: list[tuple[int, int]]) -> float:
    return float(sum(((doc[a:b] - doc[a:b].mean(axis=0)) ** 2).sum() for a, b in runs))


@pytest.mark.parametrize("factor", [2, 3])
def test_the_runs_lose_least_among_balanced_segmentations(factor):
    """Every segmentation into ⌈L / factor⌉ runs of 1 to 2·factor - 1 tokens whose balance factor·runs - tokens
    stays within ±factor, enumerated: none has a smaller squared error around its runs' means."""
    gen = np.random.default_rng(7)
    for n in range(3, 13):
        walk = np.cumsum(gen.normal(size=(n, 16)), axis=0) * 0.7 + gen.normal(size=(n, 16))
        doc = _unit(walk + 2 * gen.normal(size=16))
        keep = -(-n // factor)
        best = np.inf
        for sizes in itertools.product(range(1, 2 * factor), repeat=keep):
            ends = np.cumsum(sizes)
            if ends[-1] != n or np.abs(factor * np.arange(1, keep + 1) - ends).max() > factor:
                continue
            best = min(best, _squared_error(doc, list(zip(np.concatenate([[0], ends[:-1]]), ends))))
        pooled = pool_documents([doc], factor)
        assert _squared_error(doc, pooled.runs(0, n)) == pytest.approx(best, abs=1e-5)


def test_identical_states_pool_losslessly():
    """A document of one repeated state (or of long blocks of one state each) keeps exactly those states."""
    gen = np.random.default_rng(4)
    same = np.repeat(_unit(gen.normal(size=(1, 48))), 40, axis=0)
    blocks = np.repeat(_unit(gen.normal(size=(5, 48))), [6, 4, 8, 2, 10], axis=0)
    for factor in [2, 3, 4]:
        pooled = pool_documents([same, blocks], factor)
        offsets = np.concatenate([[0], np.cumsum(pooled.lengths)])
        np.testing.assert_allclose(pooled.tokens[: offsets[1]], same[: offsets[1]], atol=1e-6)
        # every original state is matched exactly: MaxSim of the document with its pooled self is 1
        for i, doc in enumerate([same, blocks]):
            assert (doc @ pooled.tokens[offsets[i] : offsets[i + 1]].T).max(axis=1).min() > 1 - 1e-6


def test_exact_duplicates_match_themselves_at_least_as_well_as_before():
    """A document scored against its own pooled tokens (float MaxSim, the late half of an exact duplicate's
    relevance): the mean and the worst of the test documents are no lower than with the pooling this replaced
    (cutting the ⌈L/2⌉ - 1 weakest neighbour links, whatever the runs' length: 0.98357 and 0.95396)."""
    docs = _docs()
    pooled = pool_documents(docs, 2)
    offsets = np.concatenate([[0], np.cumsum(pooled.lengths)])
    own = [float((d @ pooled.tokens[offsets[i] : offsets[i + 1]].T).max(axis=1).mean()) for i, d in enumerate(docs)]
    assert np.mean(own) >= 0.98357 and min(own) >= 0.95396
