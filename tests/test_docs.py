"""Every Python block of README.md and of the docs site (docs/**/*.md) runs as written: self-contained,
offline, on the bundled model.

A block that cannot run here says why, in an HTML comment on the line before its fence:
``<!-- readme-test: skip REASON -->`` (e.g. it needs a vision model's weights). Pages and blocks are
found when the tests are collected, so pages and sections added later are covered without touching
this file.
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*(\S*)")
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b\s*(.*?)\s*-->")


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """``(line of the opening fence, code, skip reason or None)`` for each ```python block."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, language = match.group(2), match.group(3).lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence[:3]):
            j += 1
        if language in ("python", "py", "python3"):
            above = i - 1
            while above >= 0 and not lines[above].strip():
                above -= 1
            skip = SKIP.search(lines[above]) if above >= 0 else None
            code = textwrap.dedent("\n".join(lines[i + 1 : j]))
            blocks.append((i + 1, code, None if skip is None else skip.group(1)))
        i = j + 1
    return blocks


BLOCKS = [
    (f"{page.relative_to(ROOT).as_posix()}:{line}", code, reason)
    for page in PAGES
    for line, code, reason in python_blocks(page.read_text(encoding="utf-8"))
]


def test_parser_finds_blocks_and_markers() -> None:
    sample = "text\n<!-- readme-test: skip needs weights -->\n```python\nx = 1\n```\n\n  ```python\n  y = 2\n  ```\n```bash\nls\n```\n"
    assert python_blocks(sample) == [(3, "x = 1", "needs weights"), (7, "y = 2", None)]


def test_pages_have_python_blocks_and_every_skip_says_why() -> None:
    pages = {where.split(":")[0] for where, _, _ in BLOCKS}
    assert {"README.md", "docs/getting-started.md", "docs/llama-index.md", "docs/langchain.md"} <= pages
    assert len(BLOCKS) >= 15
    assert sum(reason is None for _, _, reason in BLOCKS) >= 12  # most blocks run
    for where, _, reason in BLOCKS:
        assert reason is None or len(reason) > 10, f"{where}: a skipped block must say why"


@pytest.mark.parametrize(("where", "code", "reason"), BLOCKS, ids=[where for where, _, _ in BLOCKS])
def test_doc_block_runs(where: str, code: str, reason: str | None, tmp_path, monkeypatch) -> None:
    if reason is not None:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)  # ./smart_db and friends land in a fresh directory
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline, as the docs promise
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    exec(compile(code, where, "exec"), {"__name__": "__docs__"})  # noqa: S102


def test_docs_extension_turns_sphinx_roles_into_links(tmp_path) -> None:
    """docs/_ext/sphinx_roles.py: each role is an optional autorefs link to the resolved target, and a
    singular ``Example:`` is a doctest section (as in Napoleon), so the API pages render them."""
    griffe = pytest.importorskip("griffe", reason="griffe comes with llama-index-core (through banks) and with [docs]")
    spec = importlib.util.spec_from_file_location("sphinx_roles", ROOT / "docs" / "_ext" / "sphinx_roles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text(
        "class Thing:\n"
        '    """See :class:`Other`, :meth:`~pkg.mod.Thing.run`, :mod:`.mod` and :func:`the helper <pkg.mod.helper>`.\n\n'
        "    Example:\n"
        "        >>> 1 + 1\n"
        "        2\n"
        '    """\n\n'
        "    def run(self) -> None:\n"
        '        """Run; :unknownrole:`x` stays as it is."""\n\n\n'
        "class Other:\n    pass\n\n\n"
        "def helper() -> None:\n    pass\n"
    )
    pkg = griffe.load("pkg", search_paths=[tmp_path], extensions=griffe.load_extensions(module.SphinxRoles()))
    text = pkg["mod.Thing"].docstring.value

    def link(target: str, title: str) -> str:
        return f'<autoref identifier="{target}" optional><code>{title}</code></autoref>'

    assert link("pkg.mod.Other", "Other") in text
    assert link("pkg.mod.Thing.run", "run") in text
    assert link("pkg.mod", "mod") in text
    assert link("pkg.mod.helper", "the helper") in text
    assert ":class:`" not in text and "Examples:" in text
    assert [section.kind.value for section in pkg["mod.Thing"].docstring.parse("google")][-1] == "examples"
    assert pkg["mod.Thing.run"].docstring.value == "Run; :unknownrole:`x` stays as it is."
