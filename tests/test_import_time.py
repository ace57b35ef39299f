"""Importing the package, its framework modules or the index loads no model code and no LanceDB.

Each check runs in a fresh interpreter, so modules imported by other tests do not count.
transformers (and the vision encoders, which import it) load with the first model; lancedb
with the first :class:`~smart_retrievers.store.SmartStore`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import smart_retrievers

HEAVY = ("transformers", "smart_retrievers.encoders.clip", "smart_retrievers.encoders.qwen_vl", "lancedb")


def loaded_after(*modules: str) -> list[str]:
    """Which of :data:`HEAVY` are in ``sys.modules`` after importing ``modules`` in a new interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "modules",
    [
        ("smart_retrievers", "smart_retrievers.langchain"),
        ("smart_retrievers", "smart_retrievers.llama_index"),
        ("smart_retrievers.index",),
    ],
    ids=["langchain", "llama_index", "index"],
)
def test_import_loads_no_model_code_and_no_lancedb(modules):
    assert loaded_after(*modules) == []


def test_public_names_resolve_lazily():
    """``smart_retrievers.SmartIndex`` works although the root imported nothing (its ``__getattr__``)."""
    assert loaded_after("smart_retrievers") == []
    code = "import smart_retrievers as s; print(s.SmartIndex.__module__, s.__version__)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["smart_retrievers.index", smart_retrievers.__version__]
