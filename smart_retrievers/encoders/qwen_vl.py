"""QwenVLEncoder: SMART on Qwen2-VL / Qwen2.5-VL / Qwen3-VL based single-vector embedders.

This covers GME-Qwen2-VL, Qwen3-VL-Embedding and VLM2Vec (Qwen2-VL backbone) style
embedders: one chat-formatted input per item, pooled on its last token.

* Input: the model's chat template, the instruction in the system turn ("Represent the
  user's input." by default), the image (if any) before the text in the user turn, and
  the generation prompt on. Each image placeholder is expanded to the number of visual
  tokens the image processor gives it, exactly as the Qwen processors do.
* Pooled vector: the final-layer hidden state (after the final norm) of the last non-pad
  token, L2-normalised in fp32.
* Token states: the same final-layer states of the user's content: its text tokens and
  its image tokens (image tokens are kept as document tokens). Template tokens (roles,
  ``<|im_start|>``...), the system instruction, ``<|vision_start|>``/``<|vision_end|>``,
  special tokens and padding are dropped.

The Qwen processors need torchvision (for their video processor) in transformers 5, so
this encoder uses the model's tokenizer and image processor directly (the image processor
falls back to its PIL backend without torchvision); the result is what the processor
would build for an image + text conversation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

from ..encoding import Encoding
from . import model_types_of
from .base import states_to_encodings
from .loading import resolve_file
from .spans import Spans, kept_spans, require_offsets
from .vision import ImageGrid, VisionEncoder

DEFAULT_INSTRUCTION = "Represent the user's input."
SUPPORTED_MODEL_TYPES = model_types_of("qwen_vl:QwenVLEncoder")
DEFAULT_MAX_LENGTH = 8192
_MAX_ASPECT_RATIO = 200  # the Qwen image processors reject longer/narrower images

# Qwen2-VL's own chat template: used only when the model ships none.
QWEN_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Private-use markers rendered through the template, then replaced by the real values,
# so we know the exact character span of the instruction and of the user's text.
_SLOT_MARKS = {"instruction": "\ue000smart-instruction\ue001", "text": "\ue000smart-text\ue001"}
_SLOT_RE = re.compile("(" + "|".join(map(re.escape, _SLOT_MARKS.values())) + ")")
_SLOT_OF_MARK = {mark: slot for slot, mark in _SLOT_MARKS.items()}


@dataclass
class PreparedInput:
    """One item as the model sees it (see :meth:`QwenVLEncoder.prepare_input`).

    Attributes:
        prompt: the chat-formatted input string, image placeholders expanded.
        input_ids: its token ids.
        keep: per position, whether its final state becomes a token state (image tokens
            and the user's text tokens; not template, instruction or special tokens).
        truncated: whether the user's text was cut to fit ``max_length``.
        text_span: the character span of the user's text (as kept) in ``prompt``.
    """

    prompt: str
    input_ids: list[int]
    keep: list[bool]
    truncated: bool
    text_span: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class _Layout:
    """The rendered chat template for one item shape, cut around its slots.

    ``pieces[k]`` is template text; ``slots[k]`` ("instruction" or "text") goes between
    ``pieces[k]`` and ``pieces[k + 1]``.
    """

    pieces: tuple[str, ...]
    slots: tuple[str, ...]


def _shipped_chat_template(path: str, local_files_only: bool) -> str | None:
    """A chat template saved with the processor (chat_template.jinja / .json), if any."""
    for filename in ("chat_template.jinja", "chat_template.json"):
        resolved = resolve_file(path, filename, local_files_only)
        if resolved is not None:
            text = resolved.read_text(encoding="utf-8")
            return text if filename.endswith(".jinja") else json.loads(text)["chat_template"]
    return None


class QwenVLEncoder(VisionEncoder):
    """SMART encodings from a Qwen2-VL / Qwen2.5-VL / Qwen3-VL based embedder.

    Args:
        model_name_or_path: a model directory or hub id whose config ``model_type`` is one
            of ``qwen2_vl``, ``qwen2_5_vl``, ``qwen3_vl`` (GME-Qwen2-VL, Qwen3-VL-Embedding,
            VLM2Vec-Qwen2VL...).
        query_instruction / document_instruction: the system-turn instruction for queries
            and for documents (text or image).
        pool_suffix: text appended after the generation prompt; pooling is on its last
            token. GME-Qwen2-VL appends ``"<|endoftext|>"``; Qwen3-VL-Embedding appends
            nothing.
        max_length: token limit per item (default 8192, capped by the model's positions).
            Longer user texts are cut (and counted as truncated); an image alone that does
            not fit raises, suggesting a lower ``max_pixels``.
        chat_template: a Jinja chat template overriding the model's.
        max_pixels / min_pixels: pixel bounds applied when loading each image and given to
            the image processor, whose ``smart_resize`` sets the visual token count
            (about pixels / (patch_size * merge_size)^2). Default cap: about 1 megapixel,
            or the model's own processor cap when that is lower; ``min_pixels`` (default:
            the processor's) overrides the processor's floor.
        token_policy: ``drop_punctuation`` drops punctuation text tokens;
            ``drop_prompt=False`` keeps the instruction's tokens too.
        **kwargs: these settings and ``batch_size`` (default 8), ``device``, ``dtype``,
            ``adapter``, ``local_files_only``, ``show_progress``, ``name`` go to
            :class:`VisionEncoder` and :class:`BaseEncoder`.

    Example (needs the model's weights, so it is not run as a doctest)::

        enc = QwenVLEncoder("Alibaba-NLP/gme-Qwen2-VL-2B-Instruct", pool_suffix="<|endoftext|>")
        docs = enc.encode_images(["page1.png", "photo.jpg"])
        queries = enc.encode_queries(["a chart of revenue by year"])
    """

    pooling = "lasttoken"

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        query_instruction: str = DEFAULT_INSTRUCTION,
        document_instruction: str = DEFAULT_INSTRUCTION,
        pool_suffix: str = "",
        max_length: int | None = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.query_instruction = query_instruction
        self.document_instruction = document_instruction
        self.pool_suffix = pool_suffix
        self._requested_max_length = max_length
        self._requested_chat_template = chat_template
        self._layouts: dict[tuple[bool, bool], _Layout] = {}
        super().__init__(model_name_or_path, **kwargs)

    # ---- loading -------------------------------------------------------

    def _load(self, path: str, local_files_only: bool, dtype: torch.dtype) -> None:
        config = AutoConfig.from_pretrained(path, local_files_only=local_files_only)
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"{path!r} is a {config.model_type!r} model; QwenVLEncoder supports {SUPPORTED_MODEL_TYPES}"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
        self.image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=local_files_only)
        size = self.image_processor.size  # smart_resize bounds: never raise the model's own cap
        shortest = self.min_pixels or size["shortest_edge"]
        longest = min(self.max_pixels or size["longest_edge"], size["longest_edge"])
        if (shortest, longest) != (size["shortest_edge"], size["longest_edge"]):
            self.image_processor = AutoImageProcessor.from_pretrained(
                path, local_files_only=local_files_only, min_pixels=shortest, max_pixels=max(shortest, longest)
            )
        self.model = AutoModel.from_pretrained(path, local_files_only=local_files_only, dtype=dtype)
        self.chat_template = (
            self._requested_chat_template
            or self.tokenizer.chat_template
            or _shipped_chat_template(path, local_files_only)
            or QWEN_CHAT_TEMPLATE
        )
        self.image_token = getattr(self.tokenizer, "image_token", None) or "<|image_pad|>"
        self.image_token_id = int(config.image_token_id)
        if self.tokenizer.convert_tokens_to_ids(self.image_token) != self.image_token_id:
            raise ValueError(
                f"{path!r}: tokenizer id of {self.image_token!r} does not match config.image_token_id={self.image_token_id}"
            )
        self._text_config = getattr(config, "text_config", config)
        limit = getattr(self._text_config, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH
        self.max_length = min(self._requested_max_length or DEFAULT_MAX_LENGTH, limit)
        added = getattr(self.tokenizer, "added_tokens_decoder", {})
        self._special_ids = (set(self.tokenizer.all_special_ids) | {i for i, tok in added.items() if tok.special}) - {
            self.image_token_id
        }

    @property
    def dim(self) -> int:
        """Pooled embedding dimension (the language model's hidden size)."""
        return int(self._text_config.hidden_size)

    def _fingerprint_extra(self) -> dict[str, Any]:
        size = self.image_processor.size
        return {
            "document_instruction": self.document_instruction,
            "pool_suffix": self.pool_suffix,
            "image_pixels": {
                "load": [self.min_pixels, self.max_pixels],
                "processor": [size["shortest_edge"], size["longest_edge"]],
            },
        }

    def _image_problem(self, image: Image.Image) -> str | None:
        ratio = max(image.size) / min(image.size)
        if ratio > _MAX_ASPECT_RATIO:
            return f"aspect ratio {ratio:.0f} exceeds {_MAX_ASPECT_RATIO}, which the Qwen-VL image processor rejects"
        return None

    # ---- chat layout ---------------------------------------------------

    def _layout(self, has_image: bool, has_text: bool) -> _Layout:
        """Render the chat template once per item shape and cut it around the slots."""
        key = (has_image, has_text)
        if key not in self._layouts:
            user: list[dict[str, str]] = [{"type": "image"}] if has_image else []
            if has_text:
                user.append({"type": "text", "text": _SLOT_MARKS["text"]})
            messages = [
                {"role": "system", "content": [{"type": "text", "text": _SLOT_MARKS["instruction"]}]},
                {"role": "user", "content": user},
            ]
            rendered = self.tokenizer.apply_chat_template(
                messages, chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
            )
            parts = _SLOT_RE.split(rendered + self.pool_suffix)
            pieces, slots = tuple(parts[0::2]), tuple(_SLOT_OF_MARK[m] for m in parts[1::2])
            expected = ["instruction", "text"] if has_text else ["instruction"]
            if sorted(slots) != sorted(expected) or sum(p.count(self.image_token) for p in pieces) != int(has_image):
                raise ValueError(
                    f"the chat template of {self.name!r} does not render the system instruction, one "
                    f"{self.image_token!r} per image and the user text exactly once; pass chat_template="
                )
            self._layouts[key] = _Layout(pieces, slots)
        return self._layouts[key]

    def _compose(
        self, layout: _Layout, instruction: str, text: str, n_image_tokens: int
    ) -> tuple[str, dict[str, tuple[int, int]]]:
        """The full input string for one item and the character spans of its slots."""
        out: list[str] = []
        spans: dict[str, tuple[int, int]] = {}
        pos = 0
        for k, piece in enumerate(layout.pieces):
            if n_image_tokens:
                piece = piece.replace(self.image_token, self.image_token * n_image_tokens)
            out.append(piece)
            pos += len(piece)
            if k < len(layout.slots):
                value = instruction if layout.slots[k] == "instruction" else text
                spans[layout.slots[k]] = (pos, pos + len(value))
                out.append(value)
                pos += len(value)
        return "".join(out), spans

    def _tokenize(self, string: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(string, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]

    def prepare_input(
        self, text: str | None = None, n_image_tokens: int = 0, *, query: bool = False, index: int = 0
    ) -> PreparedInput:
        """Build one item's model input: chat template, expanded image placeholder, keep mask.

        Args:
            text: the user's text (None: an image-only item).
            n_image_tokens: visual tokens of the item's image (0: no image); the image
                processor's ``image_grid_thw.prod() // merge_size**2``.
            query: use the query instruction instead of the document one.
            index: the item's position, for error messages.

        The user's text is cut (at token boundaries) so the whole input fits ``max_length``.
        """
        if text is None and not n_image_tokens:
            raise ValueError(f"item {index} has neither a text nor an image")
        layout = self._layout(n_image_tokens > 0, text is not None)
        instruction = self.query_instruction if query else self.document_instruction
        text = text or ""
        truncated = False
        while True:
            string, spans = self._compose(layout, instruction, text, n_image_tokens)
            ids, offsets = self._tokenize(string)
            text_span = spans.get("text", (0, 0))
            in_text = [s < text_span[1] and e > text_span[0] and e > s for s, e in offsets]
            if len(ids) <= self.max_length:
                break
            text_positions = [j for j, inside in enumerate(in_text) if inside]
            if not text_positions:
                raise ValueError(
                    f"item {index}: {len(ids)} tokens ({n_image_tokens} for its image) exceed "
                    f"max_length={self.max_length}; lower max_pixels or raise max_length"
                )
            keep_n = max(0, len(text_positions) - (len(ids) - self.max_length))
            cut = offsets[text_positions[keep_n - 1]][1] - text_span[0] if keep_n else 0
            text = text[: min(cut, len(text) - 1)]
            truncated = True
        n_found = sum(i == self.image_token_id for i in ids)
        if n_found != n_image_tokens:
            raise ValueError(f"item {index}: its text contains the image placeholder {self.image_token!r}")
        instr_span = spans["instruction"]
        keep_instruction = not self.token_policy.drop_prompt
        keep = []
        for token_id, (s, e), inside in zip(ids, offsets, in_text):
            in_instruction = keep_instruction and s < instr_span[1] and e > instr_span[0] and e > s
            keep.append(
                token_id == self.image_token_id or ((inside or in_instruction) and token_id not in self._special_ids)
            )
        return PreparedInput(
            prompt=string, input_ids=ids, keep=keep, truncated=truncated, text_span=spans.get("text", (0, 0))
        )

    def token_spans(self, text: str, *, query: bool = False) -> tuple[Spans, bool]:
        """The spans in ``text`` of the token states kept for it: :meth:`prepare_input`'s keep mask less
        punctuation by policy; kept instruction tokens get an empty span at the text's edge."""
        require_offsets(self)
        prepared = self.prepare_input(text, 0, query=query)
        keep = torch.tensor(prepared.keep, dtype=torch.bool) & ~self._drop_punctuation(torch.tensor(prepared.input_ids))
        start, end = prepared.text_span
        offsets = self._tokenize(prepared.prompt)[1]
        return kept_spans(text, offsets, keep.tolist(), start=start, end=end), prepared.truncated

    def image_token_grid(self, image: Image.Image) -> ImageGrid:
        """The merged-patch grid of ``image``'s token states: the image processor's
        ``image_grid_thw`` (h, w) divided by ``merge_size``, row-major over the whole (resized)
        image. Instruction tokens that the token policy keeps map to no cell."""
        grid = self.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()
        t, h, w = (int(x) for x in grid)
        merge = int(self.image_processor.merge_size)
        if t != 1:
            raise ValueError(f"an image gave {t} temporal patches; image evidence expects 1")
        rows, cols = h // merge, w // merge
        prepared = self.prepare_input(None, rows * cols)
        punct = set(self._drop_punctuation(torch.tensor(prepared.input_ids)).nonzero().flatten().tolist())
        cells, n = [], 0
        for j, (token_id, keep) in enumerate(zip(prepared.input_ids, prepared.keep)):
            if keep and j not in punct:
                cells.append(n if token_id == self.image_token_id else None)
            n += token_id == self.image_token_id
        return ImageGrid(rows=rows, cols=cols, box=(0.0, 0.0, 1.0, 1.0), cells=tuple(cells))

    # ---- encoding ------------------------------------------------------

    def _encode_batch(
        self, indices: list[int], texts: list[str | None], images: list[Image.Image | None], query: bool
    ) -> list[Encoding]:
        present = [im for im in images if im is not None]
        n_tokens = [0] * len(images)
        pixel_inputs: dict[str, torch.Tensor] = {}
        if present:
            processed = self.image_processor(images=present, return_tensors="pt")
            merge = self.image_processor.merge_size**2
            counts = iter((processed["image_grid_thw"].prod(dim=-1) // merge).tolist())
            n_tokens = [next(counts) if im is not None else 0 for im in images]
            pixel_inputs = {
                "pixel_values": processed["pixel_values"].to(self.device, dtype=self.model.dtype),
                "image_grid_thw": processed["image_grid_thw"].to(self.device),
            }
        rows = [self.prepare_input(t, n, query=query, index=i) for i, t, n in zip(indices, texts, n_tokens)]
        batch = self.tokenizer.pad(
            {"input_ids": [r.input_ids for r in rows], "attention_mask": [[1] * len(r.input_ids) for r in rows]},
            return_tensors="pt",
        )
        input_ids = batch["input_ids"].to(self.device)
        attention = batch["attention_mask"].to(self.device).bool()
        inputs: dict[str, torch.Tensor] = {
            "input_ids": input_ids,
            "attention_mask": batch["attention_mask"].to(self.device),
        }
        if present:
            inputs["mm_token_type_ids"] = (input_ids == self.image_token_id).int()
            inputs.update(pixel_inputs)
        hidden = self.model(**inputs).last_hidden_state
        keep = torch.zeros_like(attention)
        for r, row in enumerate(rows):
            keep[r, attention[r]] = torch.tensor(row.keep, device=self.device)  # padding-side agnostic
        keep &= ~self._drop_punctuation(input_ids)
        positions = torch.arange(attention.shape[1], device=self.device)
        last = (positions * attention.long()).argmax(dim=1)  # last non-pad token, left or right padding
        pooled = hidden[torch.arange(hidden.shape[0], device=self.device), last]
        modalities = ["image" if im is not None else "text" for im in images]
        encodings = states_to_encodings(pooled, hidden, keep, adapter=self.adapter, modalities=modalities)
        for enc, row in zip(encodings, rows):
            enc.truncated = row.truncated
        return encodings
