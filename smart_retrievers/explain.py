"""Match evidence: which document words earned each query token's late-interaction score.

SMART's late score is ``mean_i max_j cos(q_i, d_j)``: every query token takes its score from one
document token. :func:`explain_text` finds that token for each query token and maps it back to its
character span in the document text, so a result can show *why* it matched.

How the spans are found. The document text is **re-encoded** by the index's encoder (one forward
pass): the stored token states may be pooled (``pool2-...``) or coded (``...-sign``) by the table's
codec, which no longer maps one stored state to one token, so only a re-encoding gives exact
per-token evidence. The text is tokenized again exactly as the encoder tokenizes it (document
prompt in front, truncation at ``max_length``, special tokens dropped, prompt tokens and, when the
token policy says so, punctuation tokens dropped), with the tokenizer's offset mapping; the kept
positions are, in order, the rows of the re-encoded token states. The offsets, shifted past the
prompt, are spans in the stored text. A document cut at ``max_length`` only has evidence in the
part the model saw (``Evidence.truncated``). The query is treated the same way (query prompt).

Scores are those of float token states (``compression="none"``); on a coded table
``Evidence.late`` is the exact late score the codec approximates.

Only text rows of text encoders with a fast (offset-mapping) tokenizer are explained; image rows
raise ``NotImplementedError``.
"""

from __future__ import annotations

import hashlib
import html
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import numpy as np
import torch

from .encoders.base import punctuation_token_ids

__all__ = ["Evidence", "Match", "explain_text", "token_spans"]


@dataclass
class Match:
    """One query token's best document token.

    Attributes:
        query_token: the query token's text (its span in the query).
        query_start / query_end: that span's characters in the query.
        doc_token: the best document token's text (``text[start:end]``).
        start / end: its character span in the stored document text (None for the pooled
            stand-in of a document that kept no token).
        similarity: cos(query token, document token); the late score is their mean.
        share: similarity / sum of similarities: this token's share of the late score (the shares sum to 1).
        doc_position: index of the document token among the kept ones.
    """

    query_token: str
    query_start: int | None
    query_end: int | None
    doc_token: str
    start: int | None
    end: int | None
    similarity: float
    share: float
    doc_position: int


@dataclass
class Evidence:
    """Why a document matched a query: the two score parts and one :class:`Match` per query token.

    ``score = lambda_pool * pooled + lambda_late * late``; ``late`` is the mean of the matches'
    similarities. ``truncated`` says the document was cut at the encoder's ``max_length`` (no
    evidence can come from past the cut).
    """

    query: str
    doc_id: str | None
    text: str
    pooled: float
    late: float
    score: float
    lambda_pool: float
    lambda_late: float
    matches: list[Match] = field(default_factory=list)
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (every field, matches as dicts)."""
        return asdict(self)

    def top_spans(self, n: int = 5) -> list[dict[str, Any]]:
        """The ``n`` document spans with the largest summed share (several query tokens may share one span).

        Each: ``{"text", "start", "end", "share", "similarity" (the best), "query_tokens"}``; JSON-serialisable.
        """
        spans: dict[tuple[int | None, int | None], dict[str, Any]] = {}
        for m in self.matches:
            span = spans.setdefault(
                (m.start, m.end),
                {
                    "text": m.doc_token,
                    "start": m.start,
                    "end": m.end,
                    "share": 0.0,
                    "similarity": -1.0,
                    "query_tokens": [],
                },
            )
            span["share"] += m.share
            span["similarity"] = max(span["similarity"], m.similarity)
            span["query_tokens"].append(m.query_token)
        return sorted(spans.values(), key=lambda s: -s["share"])[:n]

    def to_html(self) -> str:
        """A self-contained HTML fragment: the document with matched spans highlighted by strength
        (summed share), each query token linked to its span (``href="#..."``), and the scores."""
        uid = "ev" + hashlib.sha1(f"{self.doc_id}\0{self.query}".encode()).hexdigest()[:8]  # stable anchors
        spans = {(s["start"], s["end"]): s for s in self.top_spans(len(self.matches)) if s["start"] is not None}
        top = max((s["share"] for s in spans.values()), default=1.0) or 1.0
        anchor = {key: f"{uid}-{i}" for i, key in enumerate(sorted(spans))}
        parts, cursor = [], 0
        for key in sorted(spans):
            start, end = key
            if start < cursor:  # overlapping offsets (should not happen): skip the later one
                continue
            s = spans[key]
            alpha = 0.15 + 0.75 * s["share"] / top
            title = f"{', '.join(s['query_tokens'])}: share {s['share']:.2f}, cos {s['similarity']:.2f}"
            parts.append(html.escape(self.text[cursor:start]))
            parts.append(
                f'<mark id="{anchor[key]}" style="background: rgba(255, 170, 0, {alpha:.2f})" '
                f'title="{html.escape(title)}">{html.escape(self.text[start:end])}</mark>'
            )
            cursor = end
        parts.append(html.escape(self.text[cursor:]))
        links = []
        for m in self.matches:
            target = anchor.get((m.start, m.end))
            label = f"{html.escape(m.query_token)}&nbsp;&rarr;&nbsp;{html.escape(m.doc_token)} ({m.similarity:.2f})"
            links.append(f'<a href="#{target}">{label}</a>' if target else f"<span>{label}</span>")
        header = (
            f"<div><b>{html.escape(self.doc_id or '')}</b> score {self.score:.4f} = "
            f"{self.lambda_pool:g}&times;pooled {self.pooled:.4f} + {self.lambda_late:g}&times;late {self.late:.4f}"
            f"{' (document truncated)' if self.truncated else ''}</div>"
        )
        return (
            f'<div class="smart-evidence" id="{uid}" style="font-family: sans-serif; line-height: 1.6">{header}'
            f"<div>query: {html.escape(self.query)}</div>"
            f'<div style="font-size: 90%">{" &middot; ".join(links)}</div>'
            f'<p style="border-left: 3px solid #ccc; padding-left: 8px">{"".join(parts)}</p></div>'
        )

    def render(self, *, color: bool | None = None, top: int = 8, width: int = 400) -> str:
        """A terminal rendering: the scores, the document (first ``width`` characters past the first
        match's context) with matched spans bold and coloured by strength (or ``[bracketed]`` without
        colour), then the ``top`` matches. ``color=None``: colour when stdout is a terminal and
        ``NO_COLOR`` is unset."""
        if color is None:
            color = _supports_color(sys.stdout)
        lines = [
            f"score {self.score:.4f} = {self.lambda_pool:g}*pooled {self.pooled:.4f} + {self.lambda_late:g}*late {self.late:.4f}"
            + (" (document truncated)" if self.truncated else "")
        ]
        spans = sorted((s["start"], s["end"], s["share"]) for s in self.top_spans(top) if s["start"] is not None)
        top_share = max((s[2] for s in spans), default=1.0) or 1.0
        first = max(0, (spans[0][0] if spans else 0) - 40)
        stop = min(len(self.text), first + width)
        out, cursor = [], first
        for start, end, share in spans:
            if start < cursor or end > stop:
                continue
            out.append(self.text[cursor:start])
            word = self.text[start:end]
            if color:
                code = "1;31" if share / top_share > 0.66 else "1;33" if share / top_share > 0.33 else "1;36"
                out.append(f"\033[{code}m{word}\033[0m")
            else:
                out.append(f"[{word}]")
            cursor = end
        out.append(self.text[cursor:stop])
        lines.append(
            ("..." if first else "") + "".join(out).replace("\n", " ") + ("..." if stop < len(self.text) else "")
        )
        for m in sorted(self.matches, key=lambda m: -m.share)[:top]:
            lines.append(f"  {m.query_token!r:>16} -> {m.doc_token!r:<18} cos {m.similarity:.3f}  share {m.share:.3f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render(color=False)


def _supports_color(stream: TextIO) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def token_spans(encoder: Any, text: str, *, query: bool) -> tuple[list[tuple[int, int]], bool]:
    """The character spans in ``text`` of the token states ``encoder`` keeps for it, in order, and whether it was truncated.

    Tokenizes ``prompt + text`` as :class:`~smart_retrievers.encoders.SmartEncoder` does (its
    query or document prompt, truncation at ``max_length``) with offsets, and applies the same
    masks: special tokens, the prompt's tokens when ``token_policy.drop_prompt``, punctuation
    tokens when ``token_policy.drop_punctuation``. Spans of tokens inside the prompt are never returned.
    """
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is None or not getattr(tokenizer, "is_fast", False):
        raise NotImplementedError(
            f"match evidence needs a text encoder with a fast tokenizer (offset mapping); {type(encoder).__name__} has none"
        )
    prompt = (getattr(encoder, "query_prompt", "") if query else getattr(encoder, "document_prompt", "")) or ""
    tokenized = tokenizer(
        prompt + text,
        truncation=True,
        max_length=encoder.max_length,
        return_special_tokens_mask=True,
        return_offsets_mapping=True,
    )
    ids = torch.tensor(tokenized["input_ids"])
    keep = ~torch.tensor(tokenized["special_tokens_mask"]).bool()
    policy = encoder.token_policy
    if prompt and policy.drop_prompt:  # the prompt's tokens are the first kept ones, as in the encoder
        prompt_len = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        keep &= ~(keep & (keep.long().cumsum(0) <= prompt_len))
    if policy.drop_punctuation:
        keep &= ~torch.isin(ids, punctuation_token_ids(tokenizer))
    encodings = getattr(
        tokenized, "encodings", None
    )  # the fast tokenizer's own record of the cut, as the encoder reads it
    truncated = bool(encodings[0].overflowing) if encodings else False
    shift = len(prompt)
    spans = [
        (max(0, s - shift), max(0, e - shift)) for (s, e), k in zip(tokenized["offset_mapping"], keep.tolist()) if k
    ]
    return spans, truncated


def explain_text(
    encoder: Any,
    query: str,
    text: str,
    *,
    doc_id: str | None = None,
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
) -> Evidence:
    """Evidence for ``text`` (a document, encoded as one) against ``query``, both encoded by ``encoder``.

    See the module docstring for how spans are aligned and why the document is re-encoded.
    """
    q_enc = encoder.encode_queries([query], show_progress=False)[0]
    d_enc = encoder.encode_documents([text], show_progress=False)[0]
    q_spans, _ = token_spans(encoder, query, query=True)
    d_spans, truncated = token_spans(encoder, text, query=False)
    q_tokens = q_enc.tokens.astype(np.float32)
    d_tokens = d_enc.tokens.astype(np.float32)
    if len(q_spans) != len(q_tokens):  # nothing kept: the pooled stand-in is the one token
        q_spans = [(None, None)] * len(q_tokens)
    if len(d_spans) != len(d_tokens):
        d_spans = [(None, None)] * len(d_tokens)
    sims = q_tokens @ d_tokens.T
    best = sims.argmax(axis=1)
    best_sims = sims[np.arange(len(q_tokens)), best].astype(np.float64)
    total = float(best_sims.sum())
    shares = best_sims / total if total > 0 else np.full(len(best_sims), 1.0 / len(best_sims))
    pooled = float(np.dot(q_enc.pooled.astype(np.float32), d_enc.pooled.astype(np.float32)))
    late = float(best_sims.mean())
    matches = []
    for i, j in enumerate(best.tolist()):
        qs, qe = q_spans[i]
        ds, de = d_spans[j]
        matches.append(
            Match(
                query_token=query[qs:qe] if qs is not None else "",
                query_start=qs,
                query_end=qe,
                doc_token=text[ds:de] if ds is not None else "",
                start=ds,
                end=de,
                similarity=float(best_sims[i]),
                share=float(shares[i]),
                doc_position=int(j),
            )
        )
    return Evidence(
        query=query,
        doc_id=doc_id,
        text=text,
        pooled=pooled,
        late=late,
        score=lambda_pool * pooled + lambda_late * late,
        lambda_pool=lambda_pool,
        lambda_late=lambda_late,
        matches=matches,
        truncated=truncated or bool(d_enc.truncated),
    )
