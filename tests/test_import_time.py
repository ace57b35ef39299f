"""The one import-lightness guard: importing the package, its framework modules, the index or the encoders
package loads no model code (and, where no table is opened, no LanceDB).

Each check runs in a fresh interpreter, so modules imported by other tests do not count. transformers (and
the vision encoders, which import it) load with the first model; lancedb with the first
:class:`~smart_retrievers.store.SmartStore`; PIL with the first image.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import smart_retrievers

VISION = ("smart_retrievers.encoders.vision", "smart_retrievers.encoders.clip", "smart_retrievers.encoders.qwen_vl")
MODEL_CODE = ("transformers", *VISION)
WATCHED = (*MODEL_CODE, "lancedb", "PIL")


def loaded_after(*modules: str) -> set[str]:
    """Which of :data:`WATCHED` are in ``sys.modules`` after importing ``modules`` in a new interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {list(WATCHED)!r} if m in sys.modules]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return set(json.loads(run.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    ("modules", "never", "always"),
    [
        (("smart_retrievers",), (*MODEL_CODE, "lancedb", "PIL"), ()),
        (("smart_retrievers", "smart_retrievers.langchain"), (*MODEL_CODE, "lancedb"), ()),
        (("smart_retrievers", "smart_retrievers.llama_index"), (*MODEL_CODE, "lancedb"), ()),
        (("smart_retrievers.index",), (*MODEL_CODE, "lancedb"), ()),
        (("smart_retrievers.cli",), (*MODEL_CODE, "lancedb"), ()),
        (("smart_retrievers.encoding",), MODEL_CODE, ()),
        (("smart_retrievers.encoders",), (*MODEL_CODE, "PIL"), ()),
        (("smart_retrievers.encoders.text",), VISION, ("transformers",)),  # text users never load vision code
    ],
    ids=["root", "langchain", "llama_index", "index", "cli", "encoding", "encoders", "text-encoder"],
)
def test_import_loads_only_what_it_needs(modules, never, always):
    loaded = loaded_after(*modules)
    assert loaded.isdisjoint(never), sorted(loaded & set(never))
    assert loaded.issuperset(always)


def test_public_names_resolve_lazily():
    """``smart_retrievers.SmartIndex`` works although the root imported nothing (its ``__getattr__``)."""
    code = "import smart_retrievers as s; print(s.SmartIndex.__module__, s.__version__)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    module, version = run.stdout.split()
    assert module.startswith("smart_retrievers.index") and version == smart_retrievers.__version__
