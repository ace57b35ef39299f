"""Every Python block of README.md runs as written: self-contained, offline, on the bundled model.

A block that cannot run here says why, in an HTML comment on the line before its fence:
``<!-- readme-test: skip REASON -->`` (e.g. it needs a vision model's weights). Blocks are found
when the tests are collected, so sections added later are covered without touching this file.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
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


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_parser_finds_blocks_and_markers() -> None:
    sample = "text\n<!-- readme-test: skip needs weights -->\n```python\nx = 1\n```\n\n  ```python\n  y = 2\n  ```\n```bash\nls\n```\n"
    assert python_blocks(sample) == [(3, "x = 1", "needs weights"), (7, "y = 2", None)]


def test_readme_has_python_blocks_and_every_skip_says_why() -> None:
    assert len(BLOCKS) >= 8
    assert sum(reason is None for _, _, reason in BLOCKS) >= 6  # most blocks run
    for line, _, reason in BLOCKS:
        assert reason is None or len(reason) > 10, f"README.md:{line}: a skipped block must say why"


@pytest.mark.parametrize(("line", "code", "reason"), BLOCKS, ids=[f"README.md:{line}" for line, _, _ in BLOCKS])
def test_readme_block_runs(line: int, code: str, reason: str | None, tmp_path, monkeypatch) -> None:
    if reason is not None:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)  # ./smart_db and friends land in a fresh directory
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline, as the README promises
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})  # noqa: S102
