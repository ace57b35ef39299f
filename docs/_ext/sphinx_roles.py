"""Griffe extension: read the package's docstrings as Sphinx's Napoleon does, for mkdocstrings.

The docstrings are Google style with Sphinx cross-reference roles (``:class:`X```), which Markdown
shows as literal text. Each role becomes an optional autorefs link: a link where the target is on the
site, plain code where it is not (no warning either way, so ``mkdocs build --strict`` stays meaningful).
A singular ``Example:`` section is an examples section (doctest code), as in Napoleon; griffe would
render it as an admonition of Markdown text.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
EXPLICIT = re.compile(r"^(.*?)\s*<([^<>]+)>$")  # :meth:`title <target>`


def _target(obj: griffe.Object, name: str) -> str:
    """The full path of a role's target, resolved in ``obj``'s scope (the name itself when unknown)."""
    if name.startswith("."):  # relative to the package of obj's module
        package = obj.module.path if obj.module.is_init_module else obj.module.path.rpartition(".")[0]
        dots = len(name) - len(name.lstrip("."))
        for _ in range(dots - 1):
            package = package.rpartition(".")[0]
        return f"{package}.{name.lstrip('.')}"
    head, _, rest = name.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            full = scope.resolve(head)
        except griffe.NameResolutionError:
            scope = scope.parent
            continue
        return f"{full}.{rest}" if rest else full
    return name


def _render(obj: griffe.Object, match: re.Match[str]) -> str:
    short, name = match.group(1) == "~", match.group(2).strip()
    explicit = EXPLICIT.match(name)
    if explicit:
        title, name = explicit.group(1), explicit.group(2)
    else:
        title = name.rsplit(".", 1)[-1] if short else name.lstrip(".")
    target = html.escape(_target(obj, name), quote=True)
    return f'<autoref identifier="{target}" optional><code>{html.escape(title)}</code></autoref>'


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg, seen=set())

    def _rewrite(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            text = EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = ROLE.sub(lambda match: _render(obj, match), text)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member, seen)
