"""A small built-in corpus for the quickstart and tests: bindings that a pooled vector blurs.

Each report shares the same boilerplate and mentions two coded items. Every report has a
"swapped twin" with the same words in which the codes are bound to the other item, so the
documents differ only in which code goes with which item: a bag-of-words or averaged
(pooled) vector can barely tell a report from its twin, token-level matching can.
"""

from __future__ import annotations

from dataclasses import dataclass

BOILERPLATE = (
    "Quarterly warehouse report. All crates were counted twice, damaged items were set aside, and the "
    "inventory team confirmed the shelf layout against last month's plan. Forklift maintenance is due next week. "
)
ITEMS = ("red star", "blue circle", "green square", "yellow triangle", "purple hexagon", "orange arrow")
CODES = ("K7", "P2", "Z9", "M4", "Q5", "T3")


@dataclass(frozen=True)
class BindingCase:
    """A query, the report that answers it, and that report's swapped twin."""

    query: str
    answer_id: str
    twin_id: str


def binding_corpus() -> tuple[dict[str, str], dict[str, dict], list[BindingCase]]:
    """Return (id -> text, id -> metadata, cases): 12 reports and 6 queries like "K7 red star"."""
    texts: dict[str, str] = {}
    metadata: dict[str, dict] = {}
    cases: list[BindingCase] = []
    for i, (code, item) in enumerate(zip(CODES, ITEMS)):
        other, other_code = ITEMS[(i + 1) % len(ITEMS)], CODES[(i + 1) % len(CODES)]
        answer, twin = f"report-{i}", f"report-{i}-swapped"
        texts[answer] = BOILERPLATE + f"Code {code} labels the {item}. The {other} carries code {other_code}."
        texts[twin] = BOILERPLATE + f"Code {code} labels the {other}. The {item} carries code {other_code}."
        metadata[answer] = {"quarter": i % 4 + 1, "swapped": False}
        metadata[twin] = {"quarter": i % 4 + 1, "swapped": True}
        cases.append(BindingCase(query=f"{code} {item}", answer_id=answer, twin_id=twin))
    return texts, metadata, cases
