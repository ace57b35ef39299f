"""How an integration class gets its :class:`~smart_retrievers.SmartIndex`: given one, or opened at a uri.

Framework-free, so the LlamaIndex and LangChain classes share one rule: a ``SmartIndex`` (or a
framework object holding one as ``smart_index``, so both frameworks can share a table) is taken
as it is; otherwise :func:`~smart_retrievers.index.open_index` opens one, after unknown keyword
arguments are refused by name (LanceDB's own error would print their whole repr).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..index import SmartIndex

__all__ = ["check_index_kwargs", "open_smart_index", "smart_index_of"]


def smart_index_of(value: Any) -> SmartIndex:
    """``value`` if it is a SmartIndex, else the one it holds as ``smart_index`` (a LlamaIndex ``SmartVectorIndex``).

    Raises:
        TypeError: for anything else.
    """
    from ..index import SmartIndex

    inner = getattr(value, "smart_index", None)
    if not isinstance(value, SmartIndex) and isinstance(inner, SmartIndex):
        return inner
    if not isinstance(value, SmartIndex):
        raise TypeError(
            f"index must be a SmartIndex, got {type(value).__name__} (a LlamaIndex SmartVectorIndex works too)"
        )
    return value


def check_index_kwargs(kwargs: Mapping[str, Any], owner: str) -> None:
    """Refuse keyword arguments that neither :class:`SmartIndex` nor ``lancedb.connect`` takes, naming them."""
    import lancedb

    from ..index import SmartIndex

    known = set()
    for function in (SmartIndex.__init__, lancedb.connect):
        known |= {
            name
            for name, param in inspect.signature(function).parameters.items()
            if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
        }
    unknown = sorted(set(kwargs) - known - {"self"})
    if unknown:
        raise TypeError(
            f"{owner} got unexpected keyword argument(s) {unknown}; it takes uri=, index=, encoder=, table= "
            "and SmartIndex's options (lambda_pool, candidates, compression, storage_options...)"
        )


def open_smart_index(
    index: SmartIndex | None,
    uri: str | None,
    *,
    owner: str,
    table: str | None = None,
    encoder: Any = None,
    **index_kwargs: Any,
) -> SmartIndex:
    """``index``, or a SmartIndex opened at ``uri`` with ``index_kwargs`` (checked first); errors name ``owner``."""
    from ..index import open_index

    check_index_kwargs(index_kwargs, owner)
    return open_index(index, uri, table=table, encoder=encoder, owner=owner, **index_kwargs)
