"""ClipEncoder: SMART on dual-encoder image-text models (CLIP, SigLIP, SigLIP 2).

The pooled vector is the model's own text / image embedding (``get_text_features`` /
``get_image_features``). The token states are an **approximation**: these models were
trained to match pooled vectors only, never token states, so nothing guarantees that
their per-token states are meaningful under MaxSim. We map every token into the pooled
space through the model's own head, so text and image tokens share that space:

* CLIP text: each token's final hidden state (after ``final_layer_norm``, as the pooled
  EOS state is) through ``text_projection``. BOS, EOS and padding are dropped.
* CLIP image: each patch's final hidden state through the vision ``post_layernorm``, then
  ``visual_projection``. The CLS position (the pooled one) is dropped; patches are kept.
* SigLIP text: each token's final hidden state (after ``final_layer_norm``) through the
  text ``head`` (the pooled vector is the head applied to the last position). EOS and
  padding are dropped. Texts are padded to ``max_length`` as SigLIP was trained.
* SigLIP image: the pooled vector comes from a multihead-attention-pooling (MAP) head,
  which has no per-token counterpart. Each patch state (after ``post_layernorm``) is
  passed through that head *as a one-patch sequence*: attention over a single key is the
  identity, so this is the head's value/output projection plus its MLP, i.e. the image
  embedding the model would give if all attention went to that patch. All patches are
  kept (SigLIP 2: only the non-padding ones).

For CLIP and for SigLIP text, the pooled position's token state equals the pooled vector
exactly (tested); for SigLIP images there is no such identity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

from ..encoding import Encoding
from . import model_types_of
from .base import states_to_encodings, tokenizer_limit
from .spans import Spans, kept_spans, require_offsets
from .vision import ImageGrid, VisionEncoder

SUPPORTED_MODEL_TYPES = model_types_of("clip:ClipEncoder")


class ClipEncoder(VisionEncoder):
    """SMART encodings from a CLIP, SigLIP or SigLIP 2 model (token states approximate).

    Args:
        model_name_or_path: a model directory or hub id whose config ``model_type`` is
            ``clip``, ``siglip`` or ``siglip2`` (the full two-tower model).
        max_length: text token limit; defaults to the tokenizer's / text model's limit
            (77 for CLIP, 64 for SigLIP). Longer texts are truncated and counted.
        max_pixels / min_pixels: pixel bounds applied when loading each image, before the
            image processor resizes it to the model's input size.
        token_policy: ``drop_punctuation`` drops punctuation text tokens (``drop_prompt``
            has no effect: there is no prompt).
        batch_size: items per forward pass (default 32).
        **kwargs: these settings and ``device``, ``dtype``, ``adapter``,
            ``local_files_only``, ``show_progress``, ``name`` go to :class:`VisionEncoder`
            and :class:`BaseEncoder`.

    Queries and documents are encoded the same way (these models take no instruction).
    An item must be a text or an image, not both.
    """

    pooling = "native"

    def __init__(
        self, model_name_or_path: str | Path, *, max_length: int | None = None, batch_size: int = 32, **kwargs: Any
    ) -> None:
        self._requested_max_length = max_length
        super().__init__(model_name_or_path, batch_size=batch_size, **kwargs)

    def _load(self, path: str, local_files_only: bool, dtype: torch.dtype) -> None:
        config = AutoConfig.from_pretrained(path, local_files_only=local_files_only)
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"{path!r} is a {config.model_type!r} model; ClipEncoder supports {SUPPORTED_MODEL_TYPES}")
        self.architecture = config.model_type
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
        self.image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=local_files_only)
        self.model = AutoModel.from_pretrained(path, local_files_only=local_files_only, dtype=dtype)
        limits = [
            self._requested_max_length,
            config.text_config.max_position_embeddings,
            tokenizer_limit(self.tokenizer),
        ]
        self.max_length = min(x for x in limits if x)
        self._is_clip = self.architecture == "clip"
        # What the model's own processor gives its text tower: SigLIP is trained on
        # texts padded to max_length; the attention mask only where the tokenizer returns one.
        self._text_padding = True if self._is_clip else "max_length"
        self._text_mask = "attention_mask" in self.tokenizer.model_input_names

    @property
    def dim(self) -> int:
        """Pooled embedding dimension (the shared image-text space)."""
        if self._is_clip:
            return int(self.model.config.projection_dim)
        text = self.model.config.text_config
        return int(getattr(text, "projection_size", None) or text.hidden_size)

    def _fingerprint_extra(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "token_states": "projected",
            "image_pixels": [self.min_pixels, self.max_pixels],
        }

    # ---- encoding ------------------------------------------------------

    def _encode_batch(
        self, indices: list[int], texts: list[str | None], images: list[Image.Image | None], query: bool
    ) -> list[Encoding]:
        both = next((i for i, t, im in zip(indices, texts, images) if t is not None and im is not None), None)
        if both is not None:
            raise ValueError(f"item {both} has a text and an image; {self.architecture} encodes one or the other")
        out: list[Encoding | None] = [None] * len(texts)
        text_rows = [r for r, im in enumerate(images) if im is None]
        image_rows = [r for r, im in enumerate(images) if im is not None]
        if text_rows:
            for r, enc in zip(text_rows, self._text_batch([texts[r] for r in text_rows])):  # type: ignore[misc]
                out[r] = enc
        if image_rows:
            for r, enc in zip(image_rows, self._image_batch([images[r] for r in image_rows])):  # type: ignore[misc]
                out[r] = enc
        return out  # type: ignore[return-value]

    def _tokenize(self, texts: str | list[str], **extra: Any) -> Any:
        """The tokenizer's output as encoding sees it: truncated, padded, with special-token and attention masks."""
        return self.tokenizer(
            texts,
            truncation=True,
            max_length=self.max_length,
            padding=self._text_padding,
            return_special_tokens_mask=True,
            return_attention_mask=True,
            **extra,
        )

    def text_states(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[bool]]:
        """Pooled embeddings (B, d), projected token states (B, L, d), keep mask (B, L), truncated flags."""
        tokenized = self._tokenize(texts)
        truncated = [bool(e.overflowing) for e in tokenized.encodings] if tokenized.encodings else [False] * len(texts)
        input_ids = torch.tensor(tokenized["input_ids"], device=self.device)
        attention = torch.tensor(tokenized["attention_mask"], device=self.device)
        special = torch.tensor(tokenized["special_tokens_mask"], device=self.device).bool()
        out = self.model.get_text_features(input_ids=input_ids, attention_mask=attention if self._text_mask else None)
        if self._is_clip:  # last_hidden_state is already after final_layer_norm
            states = self.model.text_projection(out.last_hidden_state)
        else:
            states = self.model.text_model.head(out.last_hidden_state)
        return out.pooler_output, states, self._text_keep(input_ids, attention, special), truncated

    def _text_keep(self, input_ids: torch.Tensor, attention: torch.Tensor, special: torch.Tensor) -> torch.Tensor:
        """The text token states kept: attended, not special, and (by policy) not punctuation."""
        return attention.bool() & ~special & ~self._drop_punctuation(input_ids)

    def token_spans(self, text: str, *, query: bool = False) -> tuple[Spans, bool]:
        """The spans in ``text`` of the token states kept for it (no prompt: queries and documents alike)."""
        require_offsets(self)
        tokenized = self._tokenize(text, return_offsets_mapping=True)
        keep = self._text_keep(
            torch.tensor(tokenized["input_ids"]),
            torch.tensor(tokenized["attention_mask"]),
            torch.tensor(tokenized["special_tokens_mask"]).bool(),
        )
        truncated = bool(tokenized.encodings[0].overflowing) if tokenized.encodings else False
        return kept_spans(text, tokenized["offset_mapping"], keep.tolist()), truncated

    def image_states(self, images: list[Image.Image]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pooled embeddings (B, d), projected patch states (B, P, d) and keep mask (B, P)."""
        processed = self.image_processor(images=images, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in processed.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        out = self.model.get_image_features(**inputs)
        hidden = out.last_hidden_state
        keep = torch.ones(hidden.shape[:2], dtype=torch.bool, device=self.device)
        if self._is_clip:
            vision = self.model.vision_model
            states = self.model.visual_projection(vision.post_layernorm(hidden))
            keep[:, 0] = False  # CLS: the pooled position, not a patch
        else:  # last_hidden_state is already after post_layernorm; each patch through the MAP head alone
            head = self.model.vision_model.head
            states = head(hidden.reshape(-1, 1, hidden.shape[-1])).reshape(*hidden.shape[:2], -1)
            if "pixel_attention_mask" in inputs:  # SigLIP 2: padded patches
                keep &= inputs["pixel_attention_mask"].bool()
        return out.pooler_output, states, keep

    def image_token_grid(self, image: Image.Image) -> ImageGrid:
        """The patch grid of ``image``'s token states: ``image_size / patch_size`` square, row-major
        (CLIP's CLS position is not a token state). It covers what the image processor keeps:
        all of the image when it resizes to a fixed height and width (SigLIP), the center crop
        after a shortest-edge resize (CLIP), to within a pixel of the processed image."""
        if self.architecture == "siglip2":
            raise NotImplementedError("image evidence for SigLIP 2 (variable patch grids) is not implemented")
        vision = self.model.config.vision_config
        side = int(vision.image_size) // int(vision.patch_size)
        processor = self.image_processor
        size = dict(processor.size) if getattr(processor, "do_resize", True) else {}
        width, height = image.size
        if size.get("height") and size.get("width"):
            new_w, new_h = float(size["width"]), float(size["height"])
        elif size.get("shortest_edge") and not size.get("longest_edge"):
            scale = size["shortest_edge"] / min(width, height)
            new_w, new_h = width * scale, height * scale
        elif not size:
            new_w, new_h = float(width), float(height)
        else:
            raise NotImplementedError(f"image evidence: unsupported image processor size {size}")
        box = (0.0, 0.0, 1.0, 1.0)
        crop = dict(getattr(processor, "crop_size", None) or {})
        if getattr(processor, "do_center_crop", False) and crop:
            crop_w, crop_h = crop["width"], crop["height"]
            left, top = (new_w - crop_w) / 2, (new_h - crop_h) / 2
            box = (left / new_w, top / new_h, (left + crop_w) / new_w, (top + crop_h) / new_h)
        return ImageGrid(rows=side, cols=side, box=box, cells=tuple(range(side * side)))

    def _text_batch(self, texts: list[str]) -> list[Encoding]:
        pooled, states, keep, truncated = self.text_states(texts)
        encodings = states_to_encodings(pooled, states, keep, adapter=self.adapter)
        for enc, cut in zip(encodings, truncated):
            enc.truncated = cut
        return encodings

    def _image_batch(self, images: list[Image.Image]) -> list[Encoding]:
        pooled, states, keep = self.image_states(images)
        return states_to_encodings(pooled, states, keep, adapter=self.adapter, modalities=["image"] * len(images))
