"""The evidence of one match: :class:`Match` per query token, :class:`Evidence` per document, and their
renderings (top spans, HTML, terminal, image heat map)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import io
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import numpy as np

__all__ = ["Evidence", "Match", "TermMatch"]

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
class TermMatch:
    """One query word that matched the document in the full-text index.

    Attributes:
        term: the word, lower-cased, as the query holds it.
        count: how often the query holds it (each occurrence counts in BM25).
        bm25: its BM25 in this document, all occurrences together.
        contribution: its part of the hit's score: ``λ_lex · lex · bm25 / Σ bm25``.
    """

    term: str
    count: int
    bm25: float
    contribution: float


@dataclass
class Evidence:
    """Why a document matched a query: the score parts, one :class:`Match` per query token and, for a
    hybrid hit, one :class:`TermMatch` per query word the full-text index matched.

    ``score = lambda_pool * pooled + lambda_late * late + lambda_lex * lex``; ``late`` is the mean of
    the matches' similarities; ``lex`` is the hit's lexical term (normalised BM25 at the query's
    lexical trust, 0 outside "hybrid" search) and the terms' contributions add up to
    ``lambda_lex * lex``. ``truncated`` says the document was cut at the encoder's ``max_length`` (no
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
    lex: float = 0.0
    lambda_lex: float = 0.0
    terms: list[TermMatch] = field(default_factory=list)

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
            f"{self._lexical_sum('&times;')}{' (document truncated)' if self.truncated else ''}</div>"
            f"{self._terms_html()}"
        )

    def _lexical_sum(self, times: str) -> str:
        """`` + λ_lex × lex`` for the score line, "" when the hit has no lexical part."""
        return f" + {self.lambda_lex:g}{times}lex {self.lex:.4f}" if self.terms or self.lex else ""

    def _terms_html(self) -> str:
        if not self.terms:
            return ""
        items = ", ".join(f"<b>{html.escape(t.term)}</b> +{t.contribution:.4f}" for t in self.terms)
        return f'<div style="font-size: 90%">matched words (BM25): {items}</div>'

    def _terms_lines(self) -> list[str]:
        return [f"  word {t.term!r:>16}  bm25 {t.bm25:.3f}  adds {t.contribution:.4f}" for t in self.terms]

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
            + self._lexical_sum("*")
            + (" (document truncated)" if self.truncated else "")
        ]
        if self.modality == "image":  # the heat map in characters, then the top patches
            heat = self.heatmap()
            level = heat / (heat.max() or 1.0)
            lines.append(f"patch grid {heat.shape[0]}x{heat.shape[1]} (rows x columns), share per patch:")
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
        return "\n".join(lines + self._terms_lines())

    def __str__(self) -> str:
        return self.render(color=False)


def _supports_color(stream: TextIO) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()
