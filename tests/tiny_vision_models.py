"""Tiny, randomly initialised vision-language models saved to disk, for offline tests.

Each builder writes a complete model directory (config, safetensors weights, a small
tokenizer trained here, the image processor and, for Qwen, a chat template) that the
encoders load by path, exactly as they would load real weights. The models are built
from transformers' own config classes; only the sizes are tiny.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLImageProcessorPil,
    Qwen2VLModel,
    Qwen3VLConfig,
    Qwen3VLModel,
    SiglipConfig,
    SiglipImageProcessorPil,
    SiglipModel,
)

from smart_retrievers.encoders.qwen_vl import QWEN_CHAT_TEMPLATE

CORPUS = [
    "A child in a pink dress is climbing up a set of stairs .",
    "A black dog and a spotted dog are fighting .",
    "a red star in the night sky, and a blue square!",
    "two children play with a ball on the grass",
    "Represent the user's input. You are a helpful assistant.",
    "system user assistant image picture photo",
]
QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _bpe(specials: list[str], vocab_size: int = 400) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def build_qwen(out: Path, version: int = 2) -> Path:
    """A tiny Qwen2-VL (version=2) or Qwen3-VL (version=3) model directory."""
    torch.manual_seed(0)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_bpe(QWEN_SPECIALS),
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=QWEN_SPECIALS[1:],
    )
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    text = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=1024,
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    special = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
    )
    if version == 2:
        text["rope_parameters"] = {"rope_type": "default", "mrope_section": [2, 1, 1], "rope_theta": 10000.0}
        vision = dict(
            depth=1,
            embed_dim=32,
            hidden_size=32,
            num_heads=4,
            mlp_ratio=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        )
        model = Qwen2VLModel(Qwen2VLConfig(text_config=text, vision_config=vision, **special))
        patch = 14
    else:
        text.update(
            head_dim=8,
            rope_parameters={
                "rope_type": "default",
                "mrope_section": [2, 1, 1],
                "mrope_interleaved": True,
                "rope_theta": 10000.0,
            },
        )
        vision = dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=4,
            out_hidden_size=32,
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            num_position_embeddings=64,
            deepstack_visual_indexes=[1],
        )
        model = Qwen3VLModel(
            Qwen3VLConfig(text_config=text, vision_config=vision, vision_end_token_id=ids["<|vision_end|>"], **special)
        )
        patch = 16
    factor = patch * 2
    processor = Qwen2VLImageProcessorPil(
        patch_size=patch,
        merge_size=2,
        temporal_patch_size=2,
        min_pixels=factor * factor * 4,
        max_pixels=factor * factor * 64,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_clip(out: Path) -> Path:
    """A tiny CLIP model directory (32x32 images, 8x8 patches, 16-dim projection)."""
    torch.manual_seed(0)
    tok = _bpe(["<|endoftext|>", "<|startoftext|>"])
    bos, eos = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=24,
    )
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=24,
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=eos,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    out.mkdir(parents=True, exist_ok=True)
    CLIPModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_siglip(out: Path) -> Path:
    """A tiny SigLIP model directory (texts padded to 16 tokens, 32x32 images, 8x8 patches)."""
    torch.manual_seed(0)
    tok = _bpe(["<pad>", "</s>", "<unk>"])
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", pad_token="</s>", unk_token="<unk>", model_max_length=16
    )
    config = SiglipConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            pad_token_id=eos,
            eos_token_id=eos,
            bos_token_id=None,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
    )
    processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    out.mkdir(parents=True, exist_ok=True)
    SiglipModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def drawn_images(n: int, size: tuple[int, int] = (96, 64)) -> list[Image.Image]:
    """``n`` distinct synthetic RGB images (coloured shapes on coloured backgrounds)."""
    images = []
    for i in range(n):
        img = Image.new("RGB", size, ((37 * i) % 256, (91 * i + 40) % 256, (53 * i + 90) % 256))
        draw = ImageDraw.Draw(img)
        x, y = (13 * i) % (size[0] // 2), (7 * i) % (size[1] // 2)
        draw.ellipse(
            [x, y, x + size[0] // 2, y + size[1] // 2],
            fill=((200 + 11 * i) % 256, (17 * i) % 256, 255 - (29 * i) % 256),
        )
        images.append(img)
    return images
