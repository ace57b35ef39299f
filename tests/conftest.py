"""Shared fixtures: one real bundled encoder per test session, one torch thread, a small BEIR folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from smart_retrievers import SmartEncoder

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def encoder() -> SmartEncoder:
    """The bundled all-MiniLM-L6-v2, on CPU."""
    return SmartEncoder.default(device="cpu")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Test inputs are tiny: one intra-op thread is as fast, and far faster when the CPUs are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def binding_beir_dir(tmp_path: Path) -> Path:
    """The sample binding corpus (smart_retrievers.sample_corpus) written as a BEIR folder ``bind/`` (corpus, queries, qrels/test.tsv)."""
    from smart_retrievers.sample_corpus import binding_corpus

    texts, _, cases = binding_corpus()
    root = tmp_path / "bind"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in texts.items()))
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{n}", "text": c.query}) + "\n" for n, c in enumerate(cases))
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{n}\t{c.answer_id}\t1\n" for n, c in enumerate(cases))
    )
    return root
