"""What :class:`SmartVectorIndex` accepts besides its own arguments: an ``embed_model``, a ``storage_context``
and ``as_retriever`` keyword arguments, each refused with its reason rather than silently dropped."""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from llama_index.core.storage.storage_context import StorageContext

from .embedding import SmartEmbedding
from .retriever import SmartRetriever

__all__ = ["RETRIEVER_ARGS", "check_retriever_kwargs", "check_storage_context", "embed_model_encoder"]


def embed_model_encoder(embed_model: Any) -> Any:
    """The SMART encoder behind ``embed_model=``: a ``SmartEmbedding``'s; any other embed model is refused."""
    if isinstance(embed_model, SmartEmbedding):
        return embed_model.encoder
    named = getattr(embed_model, "model_name", None)
    hint = f", e.g. encoder={named!r}" if isinstance(named, str) and named not in ("", "unknown") else ""
    raise TypeError(
        f"SmartVectorIndex cannot use embed_model={type(embed_model).__name__}: SMART scores with the token states "
        "(per-token hidden states) of the same forward pass that gives the pooled vector, and an embedding "
        "model's API returns only the pooled vector. Pass the model itself as encoder= (a hub id, a local directory or an "
        f"encoder object){hint}; the index loads it and keeps both (or pass a SmartEmbedding)"
    )


def check_storage_context(storage_context: StorageContext | None) -> None:
    """A storage context holding another vector store would be silently unused: refuse it, briefly."""
    if storage_context is None:
        return
    if not isinstance(storage_context, StorageContext):
        raise TypeError(f"storage_context must be a llama_index StorageContext, got {type(storage_context).__name__}")
    stores = {name: type(store).__name__ for name, store in storage_context.vector_stores.items()}
    foreign = {name: kind for name, kind in stores.items() if kind != "SimpleVectorStore"}
    if foreign:
        raise ValueError(
            f"SmartVectorIndex keeps its nodes in its own LanceDB table (uri=, table=), so the storage_context's "
            f"vector store ({', '.join(sorted(set(foreign.values())))}) would never be used; pass uri= instead "
            "(a storage_context without a vector store is fine: persist() saves a pointer to the table)"
        )


RETRIEVER_ARGS = frozenset(inspect.signature(SmartRetriever.__init__).parameters) - {"self", "index"}
_HYBRID_ARGS = {
    "alpha": "alpha weights dense against sparse scores in hybrid search",
    "sparse_top_k": "sparse_top_k is the sparse half of hybrid search",
    "hybrid_top_k": "hybrid_top_k is the size of a hybrid search's fused list",
    "vector_store_kwargs": "vector_store_kwargs go to a vector store's query",
}


def _engine_args() -> frozenset[str]:
    """Arguments that as_query_engine / as_chat_engine pass on to the engines (not to the retriever)."""
    from llama_index.core import get_response_synthesizer
    from llama_index.core.chat_engine import (
        CondensePlusContextChatEngine,
        CondenseQuestionChatEngine,
        ContextChatEngine,
        SimpleChatEngine,
    )
    from llama_index.core.query_engine import RetrieverQueryEngine

    functions: list[Callable[..., Any]] = [
        RetrieverQueryEngine.from_args,
        get_response_synthesizer,
        CondensePlusContextChatEngine.from_defaults,
        CondenseQuestionChatEngine.from_defaults,
        ContextChatEngine.from_defaults,
        SimpleChatEngine.from_defaults,
    ]
    names = {"chat_mode", "llm", "query_engine", "streaming", "use_async", "verbose"}
    for function in functions:
        names |= set(inspect.signature(function).parameters)
    return frozenset(names - {"self", "cls", "kwargs", "retriever"})


def check_retriever_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Refuse or warn about as_retriever() arguments that SmartRetriever would otherwise drop silently."""
    mode = kwargs.get("vector_store_query_mode")
    if mode is not None and str(getattr(mode, "value", mode)) != "default":
        raise ValueError(
            f"vector_store_query_mode={str(getattr(mode, 'value', mode))!r} is not supported by SmartRetriever: it "
            "always ranks by SMART (pooled candidates, then late interaction; see mode=). For hybrid search fuse "
            "it with a BM25 retriever through QueryFusionRetriever; MMR is not implemented"
        )
    for name, what in _HYBRID_ARGS.items():
        if name in kwargs:
            raise ValueError(
                f"{name}= is not supported by SmartRetriever: {what}, which SMART does not do. SMART's own weights "
                "are lambda_pool / lambda_late; for hybrid search use QueryFusionRetriever"
            )
    engine = None
    for name in kwargs:
        if name in RETRIEVER_ARGS or name == "vector_store_query_mode":
            continue
        engine = engine if engine is not None else _engine_args()
        if name in engine:
            continue
        close = difflib.get_close_matches(name, sorted(RETRIEVER_ARGS), n=1, cutoff=0.8)
        if close:
            raise TypeError(f"as_retriever() got an unexpected keyword argument {name!r}; did you mean {close[0]!r}?")
        warnings.warn(
            f"as_retriever(): {name!r} is not an argument of SmartRetriever or of the LlamaIndex engines; it is ignored",
            UserWarning,
            stacklevel=3,
        )
