"""The full-text (BM25) index on a table's text column: LanceDB's native FTS, its settings and its query.

LanceDB searches rows written since the index was last built or updated exhaustively and merges
them in (tested in tests/store/test_fulltext.py), so an index that lags behind still finds every
row; ``optimize()`` folds new rows into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["TextIndexSettings", "bm25_top", "create_text_index", "text_index", "text_query"]


@dataclass(frozen=True)
class TextIndexSettings:
    """How the full-text index tokenizes text (LanceDB's ``FTS`` config; fixed when the index is built).

    Attributes:
        language: the stemmer's and stop-word list's language (LanceDB's names: "English",
            "French", "German", ...).
        stem: reduce words to their stem ("binding" matches "binds").
        remove_stop_words: drop the language's stop words.
        ascii_folding: fold accents ("café" matches "cafe").
        lower_case: match regardless of case.
        max_token_length: longer tokens (hashes, base64) are not indexed.
    """

    language: str = "English"
    stem: bool = True
    remove_stop_words: bool = True
    ascii_folding: bool = True
    lower_case: bool = True
    max_token_length: int = 40

    def __post_init__(self) -> None:
        if not isinstance(self.language, str) or not self.language:
            raise ValueError(f"language must be a non-empty str, got {self.language!r}")
        for name in ("stem", "remove_stop_words", "ascii_folding", "lower_case"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if (
            isinstance(self.max_token_length, bool)
            or not isinstance(self.max_token_length, int)
            or self.max_token_length < 1
        ):
            raise ValueError(f"max_token_length must be an int >= 1, got {self.max_token_length!r}")

    def config(self) -> Any:
        """The LanceDB ``FTS`` index config (positions off: BM25 needs none)."""
        from lancedb.index import FTS

        return FTS(with_position=False, base_tokenizer="simple", **asdict(self))


def text_index(table: Any, column: str) -> Any:
    """The FTS index config on ``column`` of ``table`` (None: none, or no table)."""
    if table is None:
        return None
    return next((i for i in table.list_indices() if list(i.columns) == [column] and i.index_type == "FTS"), None)


def create_text_index(table: Any, column: str, settings: TextIndexSettings) -> None:
    """Build the FTS index on ``column`` over every row (one index commit; existing one replaced)."""
    table.create_index(column, config=settings.config(), replace=True)


def text_query(
    table: Any,
    column: str,
    text: str,
    k: int,
    *,
    select: Sequence[str],
    where: str | None = None,
    with_row_id: bool = False,
) -> Any:
    """The LanceDB query for the ``k`` best rows by BM25 on ``column``, with ``select`` and ``_score``.

    ``text`` is matched as plain words (any of them; no query syntax), the filter applies
    before the top-k (prefilter).
    """
    from lancedb.query import MatchQuery

    # MatchQuery is a pydantic dataclass whose defaults come from Field(kw_only=True), which mypy does not read
    query = table.search(MatchQuery(text, column), query_type="fts")  # type: ignore[call-arg]
    if where:
        query = query.where(where, prefilter=True)
    if with_row_id:
        query = query.with_row_id(True)
    return query.select([*select, "_score"]).limit(k)


def bm25_top(
    texts: Sequence[str], queries: Sequence[str], k: int, *, show_progress: bool = False
) -> list[dict[int, float]]:
    """Each query's BM25 top-``k`` among ``texts`` as {text position: score}: LanceDB's native full-text
    index on a temporary table (default :class:`TextIndexSettings`), for texts that live in no table
    (an evaluation corpus, a reranker's candidates)."""
    import tempfile

    import lancedb
    import pyarrow as pa
    from tqdm.auto import tqdm

    with tempfile.TemporaryDirectory() as tmp:
        table = lancedb.connect(tmp).create_table("texts", pa.table({"pos": range(len(texts)), "text": list(texts)}))
        create_text_index(table, "text", TextIndexSettings())
        out = []
        for query in tqdm(queries, desc="BM25", disable=not show_progress):
            found = text_query(table, "text", query, k, select=["pos"]).to_arrow()
            out.append(dict(zip(found.column("pos").to_pylist(), found.column("_score").to_pylist())))
    return out
