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

Text rows need an encoder with a fast (offset-mapping) tokenizer (the text encoders, CLIP/SigLIP,
Qwen-VL). **Image rows** (:func:`explain_image`, vision encoders): the image is loaded and
re-encoded as the encoder does, and each image token state is mapped back to its cell of the
encoder's patch grid (:meth:`~smart_retrievers.encoders.vision.VisionEncoder.image_token_grid`:
CLIP/SigLIP patches, CLS excluded; Qwen-VL merged patches, ``image_grid_thw / merge_size``).
A match then names a ``patch`` (row, column) and its ``box`` on the image instead of a character
span, and :meth:`Evidence.heatmap_png` draws the shares over the image.

The frameworks' ``evidence=True`` (LangChain and LlamaIndex retrievers) use
:func:`compact_evidence`: the top :data:`EVIDENCE_SPANS` spans of each text hit, one query
encoding and one batched document encoding per search.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import io
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import numpy as np
import torch

from .encoders.base import punctuation_token_ids

__all__ = [
    "EVIDENCE_SPANS",
    "Evidence",
    "Match",
    "compact_evidence",
    "explain_image",
    "explain_text",
    "explain_texts",
    "token_spans",
]

EVIDENCE_SPANS = 5
"""Matched spans per hit in the frameworks' compact evidence (``metadata["smart_evidence"]``, ``evidence=True``)."""

_SHADES = " .:-=+*#%@"  # terminal heat map, cold to hot


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
        patch: for an image document, the matched token's cell ``(row, column)`` in the patch
            grid (None for text, or for a kept instruction token).
        box: that cell's ``(x0, y0, x1, y1)`` on the image, as fractions of its width and height.
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
    patch: tuple[int, int] | None = None
    box: tuple[float, float, float, float] | None = None


@dataclass
class Evidence:
    """Why a document matched a query: the two score parts and one :class:`Match` per query token.

    ``score = lambda_pool * pooled + lambda_late * late``; ``late`` is the mean of the matches'
    similarities. ``truncated`` says the document was cut at the encoder's ``max_length`` (no
    evidence can come from past the cut).

    For an image document (``modality == "image"``), ``text`` is the row's stored caption (not
    encoded), ``grid`` the encoder's ``(rows, cols)`` patch grid, ``grid_box`` the part of the
    image it covers (fractions) and ``image`` the image as encoded (a PIL image, left out of
    :meth:`to_dict`); :meth:`heatmap` / :meth:`heatmap_png` show where the matches are.
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
    modality: str = "text"
    grid: tuple[int, int] | None = None
    grid_box: tuple[float, float, float, float] | None = None
    image: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (every field but ``image``, matches as dicts)."""
        out = asdict(dataclasses.replace(self, image=None))
        del out["image"]
        return out

    def top_spans(self, n: int = 5) -> list[dict[str, Any]]:
        """The ``n`` matched document tokens with the largest summed share (several query tokens may share one).

        Each: ``{"text", "start", "end", "share", "similarity" (the best), "query_tokens"}``, and for
        an image document ``"patch"`` and ``"box"`` (``text`` "" and no span); JSON-serialisable.
        """
        spans: dict[int, dict[str, Any]] = {}
        for m in self.matches:
            span = spans.get(m.doc_position)
            if span is None:
                span = spans[m.doc_position] = {
                    "text": m.doc_token,
                    "start": m.start,
                    "end": m.end,
                    "share": 0.0,
                    "similarity": -1.0,
                    "query_tokens": [],
                }
                if self.modality == "image":
                    span["patch"] = list(m.patch) if m.patch is not None else None
                    span["box"] = [round(x, 4) for x in m.box] if m.box is not None else None
            span["share"] += m.share
            span["similarity"] = max(span["similarity"], m.similarity)
            span["query_tokens"].append(m.query_token)
        return sorted(spans.values(), key=lambda s: -s["share"])[:n]

    # ---- images ----------------------------------------------------------

    def heatmap(self) -> np.ndarray:
        """An image document's summed shares per patch: a ``(rows, cols)`` float array (sums to the
        shares of the matches that landed on image tokens, 1 for an image alone)."""
        if self.grid is None:
            raise ValueError("heatmap() needs the evidence of an image document")
        heat = np.zeros(self.grid, dtype=np.float64)
        for m in self.matches:
            if m.patch is not None:
                heat[m.patch] += m.share
        return heat

    def heatmap_image(self, *, overlay: bool = True, alpha: float = 0.6) -> Any:
        """The heat map as an RGB PIL image the size of the image as encoded: each patch coloured
        by its share (red to pale yellow; no colour where nothing matched), over the image
        (darkened) when ``overlay``, else over black."""
        from PIL import Image

        heat = self.heatmap()
        if self.image is None:
            raise ValueError("this evidence holds no image (it was rebuilt from a dict?)")
        width, height = self.image.size
        top = heat.max() or 1.0
        level = heat / top
        # "hot" colour ramp from red (the smallest share) through orange to pale yellow (the largest)
        ramp = np.where(heat > 0, 1 / 3 + 2 / 3 * level, 0.0)
        colours = np.stack(
            [np.clip(3 * ramp, 0, 1), np.clip(3 * ramp - 1, 0, 1), np.clip(3 * ramp - 2, 0, 1) * 0.6], axis=-1
        )
        opacity = np.where(heat > 0, alpha * (0.35 + 0.65 * level), 0.0)
        x0, y0, x1, y1 = self.grid_box or (0.0, 0.0, 1.0, 1.0)
        left, top_px = round(x0 * width), round(y0 * height)
        box_w, box_h = max(1, round(x1 * width) - left), max(1, round(y1 * height) - top_px)
        rgba = np.dstack([colours, opacity[..., None]])
        cells = Image.fromarray((255 * rgba).round().astype(np.uint8), "RGBA")
        layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        layer.paste(cells.resize((box_w, box_h), Image.Resampling.NEAREST), (left, top_px))
        base = self.image.convert("RGB") if overlay else Image.new("RGB", (width, height))
        if overlay:
            base = Image.blend(base, Image.new("RGB", base.size), 0.35)
        return Image.alpha_composite(base.convert("RGBA"), layer).convert("RGB")

    def heatmap_png(self, *, overlay: bool = True, alpha: float = 0.6) -> bytes:
        """:meth:`heatmap_image` encoded as PNG bytes."""
        buf = io.BytesIO()
        self.heatmap_image(overlay=overlay, alpha=alpha).save(buf, "PNG", optimize=True)
        return buf.getvalue()

    # ---- renderings --------------------------------------------------------

    def to_html(self) -> str:
        """A self-contained HTML fragment: the document with matched spans highlighted by strength
        (summed share), each query token linked to its span (``href="#..."``), and the scores.
        For an image document: the heat map (an inline PNG) and the matched patches."""
        uid = "ev" + hashlib.sha1(f"{self.doc_id}\0{self.query}".encode()).hexdigest()[:8]  # stable anchors
        if self.modality == "image":
            return self._image_html(uid)
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
        header = self._header_html()
        return (
            f'<div class="smart-evidence" id="{uid}" style="font-family: sans-serif; line-height: 1.6">{header}'
            f"<div>query: {html.escape(self.query)}</div>"
            f'<div style="font-size: 90%">{" &middot; ".join(links)}</div>'
            f'<p style="border-left: 3px solid #ccc; padding-left: 8px">{"".join(parts)}</p></div>'
        )

    def _header_html(self) -> str:
        return (
            f"<div><b>{html.escape(self.doc_id or '')}</b> score {self.score:.4f} = "
            f"{self.lambda_pool:g}&times;pooled {self.pooled:.4f} + {self.lambda_late:g}&times;late {self.late:.4f}"
            f"{' (document truncated)' if self.truncated else ''}</div>"
        )

    def _image_html(self, uid: str) -> str:
        png = base64.b64encode(self.heatmap_png()).decode() if self.image is not None else None
        rows = [
            f"<li>{html.escape(', '.join(s['query_tokens']))} &rarr; patch {tuple(s['patch']) if s['patch'] else '-'}"
            f" (share {s['share']:.2f}, cos {s['similarity']:.2f})</li>"
            for s in self.top_spans(8)
        ]
        figure = f'<img src="data:image/png;base64,{png}" alt="match heat map" style="max-width: 100%">' if png else ""
        caption = f"<div>{html.escape(self.text)}</div>" if self.text else ""
        return (
            f'<div class="smart-evidence" id="{uid}" style="font-family: sans-serif; line-height: 1.6">'
            f"{self._header_html()}<div>query: {html.escape(self.query)}</div>{figure}{caption}"
            f'<ul style="font-size: 90%">{"".join(rows)}</ul></div>'
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
        if self.modality == "image":  # the heat map in characters, then the top patches
            heat = self.heatmap()
            level = heat / (heat.max() or 1.0)
            lines.append(f"patch grid {self.grid[0]}x{self.grid[1]} (rows x columns), share per patch:")
            lines += ["  " + "".join(_SHADES[int(round(v * (len(_SHADES) - 1)))] * 2 for v in row) for row in level]
            for s in self.top_spans(top):
                lines.append(
                    f"  {', '.join(s['query_tokens'])!r:>24} -> patch {tuple(s['patch']) if s['patch'] else '-'}"
                    f"  cos {s['similarity']:.3f}  share {s['share']:.3f}"
                )
            return "\n".join(lines)
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
    tokens when ``token_policy.drop_punctuation``. Spans of tokens inside the prompt are never
    returned (a kept prompt token gets ``(0, 0)``). A Qwen-VL encoder's input is its chat
    template (:meth:`~smart_retrievers.encoders.QwenVLEncoder.prepare_input`): its keep mask and
    the user text's place in it are used instead.
    """
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is None or not getattr(tokenizer, "is_fast", False):
        raise NotImplementedError(
            f"match evidence needs a text encoder with a fast tokenizer (offset mapping); {type(encoder).__name__} has none"
        )
    policy = encoder.token_policy
    if hasattr(encoder, "prepare_input"):  # chat-formatted input (Qwen-VL)
        prepared = encoder.prepare_input(text, 0, query=query)
        offsets = tokenizer(prepared.prompt, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        ids = torch.tensor(prepared.input_ids)
        keep = torch.tensor(prepared.keep, dtype=torch.bool)
        if policy.drop_punctuation:
            keep &= ~torch.isin(ids, punctuation_token_ids(tokenizer))
        start, end = prepared.text_span
        spans = [
            (min(max(0, s - start), end - start), min(max(0, e - start), end - start))
            for (s, e), k in zip(offsets, keep.tolist())
            if k
        ]
        return _trimmed(text, spans), prepared.truncated
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
    return _trimmed(text, spans), truncated


def _trimmed(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans without the surrounding whitespace that byte-level BPE offsets include (" red" -> "red")."""
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        out.append((s, e))
    return out


def _query_side(encoder: Any, query: str) -> tuple[Any, list[tuple[int | None, int | None]]]:
    """The query's encoding and the spans of its token states."""
    q_enc = encoder.encode_queries([query], show_progress=False)[0]
    q_spans: list[tuple[int | None, int | None]] = list(token_spans(encoder, query, query=True)[0])
    if len(q_spans) != len(q_enc.tokens):  # nothing kept: the pooled stand-in is the one token
        q_spans = [(None, None)] * len(q_enc.tokens)
    return q_enc, q_spans


def _best(q_enc: Any, d_enc: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Per query token: its best document token, their cosine and its share; the pooled and late scores."""
    q_tokens = q_enc.tokens.astype(np.float32)
    sims = q_tokens @ d_enc.tokens.astype(np.float32).T
    best = sims.argmax(axis=1)
    best_sims = sims[np.arange(len(q_tokens)), best].astype(np.float64)
    total = float(best_sims.sum())
    shares = best_sims / total if total > 0 else np.full(len(best_sims), 1.0 / len(best_sims))
    pooled = float(np.dot(q_enc.pooled.astype(np.float32), d_enc.pooled.astype(np.float32)))
    return best, best_sims, shares, pooled, float(best_sims.mean())


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
    return explain_texts(encoder, query, [text], doc_ids=[doc_id], lambda_pool=lambda_pool, lambda_late=lambda_late)[0]


def explain_texts(
    encoder: Any,
    query: str,
    texts: Sequence[str],
    *,
    doc_ids: Sequence[str | None] | None = None,
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
) -> list[Evidence]:
    """:func:`explain_text` for several documents: the query is encoded once, the documents in one batched call."""
    texts = list(texts)
    doc_ids = list(doc_ids) if doc_ids is not None else [None] * len(texts)
    if len(doc_ids) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(doc_ids)} doc_ids")
    if not texts:
        return []
    q_enc, q_spans = _query_side(encoder, query)
    out = []
    for text, doc_id, d_enc in zip(texts, doc_ids, encoder.encode_documents(texts, show_progress=False)):
        d_spans: list[tuple[int | None, int | None]]
        d_spans, truncated = token_spans(encoder, text, query=False)  # type: ignore[assignment]
        if len(d_spans) != len(d_enc.tokens):
            d_spans = [(None, None)] * len(d_enc.tokens)
        best, best_sims, shares, pooled, late = _best(q_enc, d_enc)
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
        out.append(
            Evidence(
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
        )
    return out


def explain_image(
    encoder: Any,
    query: str,
    image: Any,
    *,
    doc_id: str | None = None,
    text: str = "",
    lambda_pool: float = 1.0,
    lambda_late: float = 1.0,
) -> Evidence:
    """Evidence for an image document (encoded alone, as :meth:`SmartIndex.add_images` does) against a text query.

    ``image`` is anything the vision encoder reads (a path, URI, bytes, PIL image), loaded under
    its image policy and pixel bounds; ``text`` is the row's caption (kept, not encoded). Each
    match names the patch of its best image token (:class:`Match` ``patch`` / ``box``);
    :meth:`Evidence.heatmap_png` draws them over the image.
    """
    grid_of = getattr(encoder, "image_token_grid", None)
    if grid_of is None:
        raise NotImplementedError(f"{type(encoder).__name__} cannot explain image documents")
    loaded = encoder._load_image(image, 0)  # the image exactly as encode_images would see it
    grid = grid_of(loaded)
    d_enc = encoder.encode_images([loaded], show_progress=False)[0]
    if len(grid.cells) != len(d_enc.tokens):
        raise RuntimeError(
            f"{type(encoder).__name__}: {len(d_enc.tokens)} image token states but {len(grid.cells)} mapped cells"
        )
    q_enc, q_spans = _query_side(encoder, query)
    best, best_sims, shares, pooled, late = _best(q_enc, d_enc)
    matches = []
    for i, j in enumerate(best.tolist()):
        qs, qe = q_spans[i]
        cell = grid.cells[j]
        patch = divmod(cell, grid.cols) if cell is not None else None
        matches.append(
            Match(
                query_token=query[qs:qe] if qs is not None else "",
                query_start=qs,
                query_end=qe,
                doc_token=f"patch {patch[0]},{patch[1]}" if patch is not None else "",
                start=None,
                end=None,
                similarity=float(best_sims[i]),
                share=float(shares[i]),
                doc_position=int(j),
                patch=patch,
                box=grid.cell_box(cell) if cell is not None else None,
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
        modality="image",
        grid=(grid.rows, grid.cols),
        grid_box=grid.box,
        image=loaded,
    )


def compact_evidence(index: Any, query: str, hits: Sequence[Any], n: int = EVIDENCE_SPANS) -> list[Any]:
    """The frameworks' ``evidence=True`` form: per hit, its top ``n`` matched spans
    (:meth:`Evidence.top_spans`, JSON-serialisable), or None for an image row (use
    :meth:`SmartIndex.explain` for its heat map). One query encoding and one batched
    re-encoding of the text hits."""
    text_rows = [i for i, hit in enumerate(hits) if hit.modality == "text" and hit.image is None]
    out: list[Any] = [None] * len(hits)
    if not text_rows:
        return out
    evidence = explain_texts(
        index.encoder,
        query,
        [hits[i].text for i in text_rows],
        doc_ids=[hits[i].id for i in text_rows],
        lambda_pool=index.lambda_pool,
        lambda_late=index.lambda_late,
    )
    for i, ev in zip(text_rows, evidence):
        out[i] = ev.top_spans(n)
    return out
