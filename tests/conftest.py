"""Shared fixtures: one real bundled encoder per test session, one torch thread, a small BEIR folder, and one
other Python process for the tests that need a second process (tests/other_process.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from other_process import OtherProcess

from smart_retrievers import SmartEncoder
from smart_retrievers.encoders import default_encoder

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


LONGEST_FIRST = ("tests/test_distributed.py", "tests/reliability/", "tests/integrations/", "tests/upgrade/")
"""Files that run longest (Ray's workers, other processes, races), collected first: the two xdist workers take
files in collection order, so a long file left for last would keep one worker busy while the other idles."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The :data:`LONGEST_FIRST` files' tests first, in its order (longest-processing-time-first scheduling), the
    collection order kept otherwise."""

    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)


@pytest.fixture(scope="session")
def encoder() -> SmartEncoder:
    """The bundled all-MiniLM-L6-v2 on CPU: the process's shared copy, the one an index, retriever or
    reranker opened without an encoder gets (on this CPU-only machine), so the model is loaded once."""
    return default_encoder(device="cpu")


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
    return write_binding_beir(tmp_path)


def write_binding_beir(parent: Path) -> Path:
    """Write the sample binding corpus as the BEIR folder ``parent/bind``; returns it."""
    from smart_retrievers.sample_corpus import binding_corpus

    texts, _, cases = binding_corpus()
    root = parent / "bind"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in texts.items()))
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{n}", "text": c.query}) + "\n" for n, c in enumerate(cases))
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{n}\t{c.answer_id}\t1\n" for n, c in enumerate(cases))
    )
    return root


@pytest.fixture(scope="session")
def other_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtherProcess]:
    """One other Python process for the session (tests/other_process.py), begun as a user's fresh process:
    its first commands are ``python examples/quickstart.py`` and ``python -m smart_retrievers.cli index``
    on the sample BEIR folder, whose output ``first_runs`` keeps ("quickstart", "cli index") for
    tests/test_quiet_output.py; then it runs what the tests send it."""
    root = tmp_path_factory.mktemp("other_process")
    process = OtherProcess(root / "runs")
    try:
        process.first_runs["quickstart"] = process.run(
            [ROOT / "examples" / "quickstart.py", "--db", root / "quickstart-db"], cwd=root
        )
        beir = write_binding_beir(root)
        process.first_runs["cli index"] = process.run(
            ["-m", "smart_retrievers.cli", "index", beir, "--db", root / "cli-db", "--compression", "none"], cwd=root
        )
        yield process
    finally:
        process.close()
