"""A missing framework names the extra that installs it; other import errors pass unchanged."""

from __future__ import annotations

import importlib
import sys

import pytest

from smart_retrievers.integrations.extras import requires_extra


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [
        ("smart_retrievers.llama_index", "llama_index", "llama-index"),
        ("smart_retrievers.integrations.llama_index", "llama_index", "llama-index"),
        ("smart_retrievers.langchain", "langchain_core", "langchain"),
        ("smart_retrievers.integrations.langchain", "langchain_core", "langchain"),
    ],
)
def test_a_missing_framework_names_its_extra(monkeypatch, module, framework, extra):
    for name in list(sys.modules):  # import the integration afresh, with the framework gone
        if name == framework or name.startswith(framework + ".") or name.startswith(module):
            monkeypatch.delitem(sys.modules, name)
    for name in list(sys.modules):
        if name.startswith("smart_retrievers.integrations." + module.rsplit(".", 1)[-1]):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, framework, None)  # "import framework" now raises ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError, match=rf'pip install "smart-retrievers\[{extra}\]"'):
        importlib.import_module(module)


def test_other_import_errors_pass_unchanged():
    with pytest.raises(ModuleNotFoundError, match="No module named 'no_such_module'") as caught:
        with requires_extra("llama_index"):
            import no_such_module  # noqa: F401
    assert "smart-retrievers[" not in str(caught.value)
