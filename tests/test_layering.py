"""Imports only go down: the package's layers, checked on the source (every import, also those inside functions).

Bottom to top:

* L0 ``encoding``, ``filters``, ``options``, ``codec``, ``scoring``, ``progress``, ``validation``, ``cache``
  (and ``_version``): import nothing from the package, except ``options`` -> ``validation`` (``check_count``), ``filters`` -> ``validation`` and ``codec`` -> ``cache``;
  ``scoring`` names ``codec`` under ``TYPE_CHECKING`` only;
* L1 ``encoders``, ``adapter``, ``store``: ``encoders`` may use ``adapter``;
* L2 ``evaluation``, ``training``, ``explain``, ``upgrade``: ``training`` may use ``evaluation``; ``explain`` and
  ``evaluation.calibrate`` take an index as an argument, they never import it;
* L3 ``index``: ``SmartIndex`` delegates down to explain, calibration and upgrade;
* L4 ``rerank``, ``distributed``;
* L5 ``integrations``, ``langchain``, ``llama_index``, ``lancedb``, ``cli``, ``sample_corpus``; the package root is above all.

A module may import a lower layer, its own group (``encoders.text`` -> ``encoders.base``) and the same-layer
groups listed in :data:`SAME_LAYER`. Nothing imports the package root (``from smart_retrievers import X``,
``from . import X`` at package level): the root re-exports, it is not a home. Imports under
``if TYPE_CHECKING:`` are ignored (they never run). The core (L0-L4) imports no LangChain or LlamaIndex.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = "smart_retrievers"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

LAYERS: dict[str, int] = {
    "_version": 0,
    "encoding": 0,
    "filters": 0,
    "options": 0,
    "codec": 0,
    "scoring": 0,
    "lexical": 0,
    "progress": 0,
    "validation": 0,
    "cache": 0,
    "encoders": 1,
    "adapter": 1,
    "store": 1,
    "evaluation": 2,
    "training": 2,
    "explain": 2,
    "upgrade": 2,
    "index": 3,
    "rerank": 4,
    "distributed": 4,
    "integrations": 5,
    "langchain": 5,
    "llama_index": 5,
    "lancedb": 5,
    "cli": 5,
    "sample_corpus": 5,
}
"""Group (first name under the package) -> layer. A new module needs a line here."""

SAME_LAYER: dict[str, set[str]] = {
    "options": {"validation"},  # check_count, the one positive-int check
    "codec": {"cache"},  # the generic codec sample's disk cache
    "filters": {"validation"},  # the reserved metadata keys, int64 bounds, numpy/pandas scalars as Python values
    "encoders": {"adapter"},
    "training": {"evaluation"},
    "langchain": {"integrations"},
    "llama_index": {"integrations"},
    "lancedb": {"integrations"},
}
"""Group -> the other groups of its own layer it may import."""

CORE_LAYERS = range(5)
FRAMEWORKS = ("langchain", "langchain_core", "langchain_classic", "llama_index")
"""Top-level third-party packages the core never imports (a prefix: ``langchain_*`` too)."""


def module_name(path: Path) -> str:
    """``smart_retrievers/encoders/text.py`` -> ``smart_retrievers.encoders.text`` (``__init__`` -> the package)."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except the body of ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def imports_of(source: str, module: str, is_package: bool, modules: set[str]) -> Iterator[tuple[int, str]]:
    """(line, imported name) for each import in ``source``, relative imports resolved to absolute names.

    ``from X import name`` yields ``X.name`` when that is a module of the package (``modules``), else ``X``.
    """
    for line, base, name in _imported_names(source, module, is_package):
        sub = f"{base}.{name}"
        yield line, base if name is None else sub if sub in modules else base


def _imported_names(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str, str | None]]:
    """(line, module, name) for each imported name: ``from X import name`` gives (X, name), ``import X`` (X, None)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in _import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
            continue
        if node.level:
            base_parts = package.split(".")
            base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join(base_parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            yield node.lineno, base, alias.name


def group_of(name: str) -> str | None:
    """``smart_retrievers.encoders.text`` -> ``encoders``; None for the package root and outside names."""
    parts = name.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        return None
    return parts[1]


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported`` (both absolute names), or None if it may."""
    src = group_of(importer)
    if src is not None and src not in LAYERS:
        return f"{PACKAGE}.{src} has no layer (add it to LAYERS in tests/test_layering.py)"
    if imported == PACKAGE:
        return None if importer == PACKAGE else "imports the package root"
    dst = group_of(imported)
    if dst is None:  # third-party or standard library
        top = imported.split(".")[0]
        if src is not None and LAYERS[src] in CORE_LAYERS and top.startswith(FRAMEWORKS):
            return f"core (L{LAYERS[src]}) imports the framework {top!r}"
        return None
    if dst not in LAYERS:
        return f"{PACKAGE}.{dst} has no layer (add it to LAYERS in tests/test_layering.py)"
    if src is None:  # the root imports what it re-exports
        return None
    if src == dst or LAYERS[dst] < LAYERS[src] or dst in SAME_LAYER.get(src, ()):
        return None
    return f"L{LAYERS[src]} {src} imports L{LAYERS[dst]} {dst}"


def check_source(source: str, module: str, *, is_package: bool = False, modules: set[str] | None = None) -> list[str]:
    """The layering violations of one module's source, as ``"module:line: imports X (why)"``."""
    out = []
    for line, imported in imports_of(source, module, is_package, modules or set()):
        why = violation(module, imported)
        if why:
            out.append(f"{module}:{line}: imports {imported} ({why})")
    return out


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


# ---- the package -------------------------------------------------------------


def test_every_module_has_a_layer():
    groups = {group_of(m) for m in package_modules()} - {None}
    assert groups <= set(LAYERS), f"modules without a layer: {sorted(groups - set(LAYERS))}"


def test_imports_only_go_down():
    modules = package_modules()
    found = []
    for module, path in modules.items():
        found += check_source(
            path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py", modules=set(modules)
        )
    assert not found, "upward imports:\n" + "\n".join(found)


def test_codec_and_scoring_stand_alone():
    """The codec imports nothing from the package but its own modules and the cache directory; scoring names the
    codec only for type checking."""
    modules = package_modules()
    for name, path in modules.items():
        if group_of(name) not in ("codec", "scoring"):
            continue
        imported = {
            target
            for _, target in imports_of(
                path.read_text(encoding="utf-8"), name, path.name == "__init__.py", set(modules)
            )
        }
        allowed = {"codec", "cache"} if group_of(name) == "codec" else set()
        assert not {t for t in imported if t.split(".")[0] == PACKAGE and group_of(t) not in allowed}, (name, imported)


# ---- files inside integrations/ -------------------------------------------------------

INTEGRATIONS = f"{PACKAGE}.integrations"
FACADES = tuple(f"{PACKAGE}.{name}" for name in ("langchain", "llama_index", "lancedb"))


def in_integrations(module: str) -> bool:
    return module == INTEGRATIONS or module.startswith(INTEGRATIONS + ".") or module in FACADES


def private_imports(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """``from X import _y`` where X is another module of the package: ``"module:line: imports X._y"``."""
    return [
        f"{module}:{line}: imports {base}.{name} (a private name of another file)"
        for line, base, name in _imported_names(source, module, is_package)
        if name and name.startswith("_") and not name.startswith("__") and base != module and group_of(base)
    ]


def import_graph(modules: dict[str, Path], keep: Callable[[str], bool]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in the file), for the modules ``keep`` selects."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        if keep(module):
            imported = imports_of(path.read_text(encoding="utf-8"), module, path.name == "__init__.py", set(modules))
            graph[module] = {name for _, name in imported if name in modules and keep(name) and name != module}
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (``[a, b, a]``), or None if it has none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_integration_files_import_no_private_names():
    """Integrations share public names only (no ``from .llama_index import _hit_node``)."""
    found = []
    for module, path in package_modules().items():
        if in_integrations(module):
            found += private_imports(path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py")
    assert not found, "private names imported across files:\n" + "\n".join(found)


def test_integration_files_form_no_import_cycle():
    """Inside integrations/ imports go one way between files, also those inside functions."""
    cycle = find_cycle(import_graph(package_modules(), in_integrations))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_file_checks_report_private_names_and_cycles():
    source = "from .llama_index import _hit_node, to_smart_filter\nfrom .nodes import __all__\n"
    found = private_imports(source, f"{INTEGRATIONS}.llama_index_store")
    assert found == [
        f"{INTEGRATIONS}.llama_index_store:1: imports {INTEGRATIONS}.llama_index._hit_node (a private name of another file)"
    ]
    assert private_imports("from typing import _T\n", f"{INTEGRATIONS}.x") == []  # not the package's
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


# ---- the checker itself ---------------------------------------------------------------


MODULES = {f"{PACKAGE}.{m}" for m in ("index", "store", "codec", "encoders", "encoders.base", "adapter", "rerank")}


@pytest.mark.parametrize(
    ("module", "source", "is_package", "expected"),
    [
        ("smart_retrievers.store", "from .index import SmartIndex\n", False, "L1 store imports L3 index"),
        (
            "smart_retrievers.explain.rows",
            "def f():\n    from ..index import SmartIndex\n",
            False,
            "L2 explain imports L3 index",
        ),
        (
            "smart_retrievers.evaluation.calibrate",
            "from ..index import SmartIndex\n",
            False,
            "L2 evaluation imports L3 index",
        ),
        ("smart_retrievers.codec", "def f():\n    from .scoring import rank\n", False, "L0 codec imports L0 scoring"),
        (
            "smart_retrievers.evaluation.beir",
            "from ..training import fit\n",
            False,
            "L2 evaluation imports L2 training",
        ),
        ("smart_retrievers.adapter", "from . import __version__\n", False, "imports the package root"),
        ("smart_retrievers.index", "import smart_retrievers\n", False, "imports the package root"),
        ("smart_retrievers.rerank", "from smart_retrievers import SmartIndex\n", False, "imports the package root"),
        ("smart_retrievers.encoders", "from ..langchain import SmartRetriever\n", True, "L1 encoders imports L5"),
        ("smart_retrievers.scoring", "import langchain_core.documents\n", False, "imports the framework"),
        ("smart_retrievers.store", "from llama_index.core import Document\n", False, "imports the framework"),
        ("smart_retrievers.brand_new", "import numpy\n", False, "has no layer"),
    ],
)
def test_checker_reports_an_upward_import(module, source, is_package, expected):
    found = check_source(source, module, is_package=is_package, modules=MODULES)
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize(
    ("module", "source", "is_package"),
    [
        ("smart_retrievers.index", "from .store import SmartStore\nfrom .encoders.base import load_adapter\n", False),
        (
            "smart_retrievers.encoders.text",
            "from .base import BaseEncoder\nfrom ..adapter import SmartAdapter\n",
            False,
        ),
        ("smart_retrievers.encoders.clip", "from . import model_types_of\n", False),  # its own package
        ("smart_retrievers.training.fit", "from ..evaluation.metrics import ndcg_at_k\n", False),
        (
            "smart_retrievers.scoring",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .index import X\n",
            False,
        ),
        ("smart_retrievers.integrations.langchain", "from langchain_core.documents import Document\n", False),
        ("smart_retrievers", "from .index import SmartIndex\n", True),  # the root re-exports
    ],
)
def test_checker_accepts_downward_imports(module, source, is_package):
    assert check_source(source, module, is_package=is_package, modules=MODULES) == []
