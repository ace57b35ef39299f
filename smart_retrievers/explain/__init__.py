"""Match evidence: which document words (or image patches) earned each query token's late-interaction score.

SMART's late score is ``mean_i max_j cos(q_i, d_j)``: every query token takes its score from one
document token. Evidence finds that token for each query token and maps it back to its character
span in the document text (:mod:`.text`) or its patch of the image (:mod:`.image`), so a result can
show *why* it matched. The encoder says which span each kept token state comes from
(``encoder.token_spans``); the scores come from :mod:`smart_retrievers.scoring` (:mod:`.matching`).

Scores are those of float token states; on a coded table ``Evidence.late`` is the exact late score
the codec approximates. :mod:`.rows` explains an index's stored rows (``SmartIndex.explain``) and
gives the frameworks' ``evidence=True`` form (:func:`compact_evidence`); :mod:`.evidence` holds the
result types and their renderings.
"""

from __future__ import annotations

from .evidence import Evidence, Match, TermMatch
from .image import explain_image
from .rows import EVIDENCE_SPANS, compact_evidence, explain_row
from .text import explain_text, explain_texts

__all__ = [
    "EVIDENCE_SPANS",
    "Evidence",
    "Match",
    "TermMatch",
    "compact_evidence",
    "explain_image",
    "explain_row",
    "explain_text",
    "explain_texts",
]
