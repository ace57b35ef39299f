"""SmartIndex: the verbs (add, delete, get, search, explain, optimize...) over an encoder and a LanceDB store.

Each verb checks its arguments and delegates: writes to :mod:`.ingest`, searches to :mod:`.search`
and :mod:`.vectors`, token upkeep to :mod:`.upkeep`, evidence to :mod:`smart_retrievers.explain`,
λ calibration to :mod:`smart_retrievers.evaluation.calibrate`, in-place upgrades to
:mod:`smart_retrievers.upgrade`. Every integration calls this class.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders import as_encoder
from ..encoders.images import IMAGE_TYPES, ImageInput
from ..encoding import Encoder, Encoding
from ..evaluation.calibrate import DEFAULT_LEX_GRID, Calibration
from ..evaluation.index_calibration import calibrate_index
from ..explain import Evidence, explain_row
from ..lexical import DEFAULT_LAMBDA_LEX
from ..options import DEFAULT_READ_CONSISTENCY, ResolvedSearchOptions, SearchOptions
from ..store import DEFAULT_ANN_INDEX, DEFAULT_ANN_MIN_ROWS, META_COLUMNS, SmartStore, TextIndexSettings, vectors_block
from ..upgrade import upgrade_table
from ..validation import check_text
from .hits import Hit, hit_from_row
from .lexical_evidence import add_lexical_evidence
from .maintenance import UpkeepVerbs
from .options import DEFAULT_TEXT_INDEX, DEFAULT_TOKEN_FETCH, IndexOptions, TokenFetch
from .search import run_search
from .vectors import mmr_select, vector_query
from .writes import WriteVerbs

__all__ = ["SmartIndex", "open_index"]


def _setting(name: str) -> property:
    return property(
        lambda self: getattr(self.options, name), doc=f"``options.{name}`` (change it with :meth:`configure`)."
    )


class SmartIndex(WriteVerbs, UpkeepVerbs):
    """A SMART late-interaction index on a single-vector embedder, stored in LanceDB.

    Args:
        uri: where the LanceDB database lives: a local directory (embedded, the
            default), ``s3://``/``gs://``/``az://`` object storage, or ``db://`` LanceDB Cloud.
        encoder: a :class:`SmartEncoder` (or vision encoder); the bundled
            all-MiniLM-L6-v2 when None; a hub id or local model directory (str or path) is
            loaded through :func:`~smart_retrievers.encoders.load_encoder` (text or vision).
        table: table name inside the database.
        lambda_pool / lambda_late / lambda_lex / candidates / write_batch_size / compression / ann_min_rows / ann_index_type / token_fetch / text_index / storage_options / read_consistency_interval: the
            :class:`~smart_retrievers.index.IndexOptions` (see there); ``compression`` is
            ``"pca128-sign"`` style presets or ``"none"``, fitted on the first write; an existing
            table keeps its own (None). ``read_consistency_interval`` is how often a read looks for
            other processes' commits (default: every read; docs: "Security and guarantees").
        **connect_kwargs: passed to ``lancedb.connect``.

    The settings are read back as ``index.options`` (and ``index.candidates``...), changed with
    :meth:`configure`.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()  # or "./smart_db", "s3://bucket/db"...
        >>> index = SmartIndex(tmp.name)  # the bundled all-MiniLM-L6-v2
        >>> index.add(
        ...     ["The red star is K7.", "The blue circle is P2.", "The red star was K9."],
        ...     ids=["a", "b", "c"],
        ...     metadatas=[{"year": 2021}, {"year": 2022}, {"year": 2019}],
        ... )
        ['a', 'b', 'c']
        >>> hits = index.search("which code labels the red star?", k=1, where={"year": {"$gte": 2020}})
        >>> [(hit.id, hit.metadata) for hit in hits]
        [('a', {'year': 2021})]
        >>> tmp.cleanup()
    """

    lambda_pool = _setting("lambda_pool")
    lambda_late = _setting("lambda_late")
    lambda_lex = _setting("lambda_lex")
    candidates = _setting("candidates")
    write_batch_size = _setting("write_batch_size")
    ann_min_rows = _setting("ann_min_rows")
    ann_index_type = _setting("ann_index_type")
    token_fetch = _setting("token_fetch")

    def __init__(
        self,
        uri: str = "./smart_db",
        encoder: Encoder | str | Path | None = None,
        table: str = "smart",
        *,
        lambda_pool: float | None = None,
        lambda_late: float | None = None,
        lambda_lex: float | None = None,
        candidates: int = 100,
        write_batch_size: int = 1024,
        compression: str | None = None,
        ann_min_rows: int | None = DEFAULT_ANN_MIN_ROWS,
        ann_index_type: str = DEFAULT_ANN_INDEX,
        token_fetch: TokenFetch = DEFAULT_TOKEN_FETCH,
        text_index: TextIndexSettings | None = DEFAULT_TEXT_INDEX,
        storage_options: Mapping[str, str] | None = None,
        read_consistency_interval: timedelta | None = DEFAULT_READ_CONSISTENCY,
        **connect_kwargs: Any,
    ) -> None:
        options = IndexOptions(  # every setting is checked before the model loads
            lambda_pool=lambda_pool,
            lambda_late=lambda_late,
            lambda_lex=DEFAULT_LAMBDA_LEX if lambda_lex is None else lambda_lex,
            candidates=candidates,
            write_batch_size=write_batch_size,
            compression=compression,
            ann_min_rows=ann_min_rows,
            ann_index_type=ann_index_type,
            token_fetch=token_fetch,
            text_index=text_index,
            storage_options=storage_options,
            read_consistency_interval=read_consistency_interval,
            connect_kwargs=connect_kwargs,
        )
        self.encoder = as_encoder(encoder)  # None: the bundled model; a str/path: load_encoder (hub id or directory)
        self.store = SmartStore(
            uri,
            table,
            self.encoder.fingerprint,
            compression=compression,
            storage_options=storage_options,
            read_consistency_interval=read_consistency_interval,
            **connect_kwargs,
        )
        saved = self.store.fusion_weights or {}  # saved by calibrate(save=True), else 1/1 and the default λ_lex
        self.options = options.updated(
            lambda_pool=saved.get("lambda_pool", 1.0) if lambda_pool is None else lambda_pool,
            lambda_late=saved.get("lambda_late", 1.0) if lambda_late is None else lambda_late,
            lambda_lex=saved.get("lambda_lex", DEFAULT_LAMBDA_LEX) if lambda_lex is None else lambda_lex,
        )
        self.last_truncated = 0

    def configure(self, **changes: Any) -> IndexOptions:
        """Change settings of this open index (``candidates``, ``token_fetch``, the weights...); returns the new options.

        Checked as the constructor checks them; the connection's and the table's settings
        (``compression``, ``storage_options``...) are fixed at open (ValueError).
        """
        self.options = self.options.updated(**changes)
        return self.options

    @classmethod
    def upgrade(
        cls,
        uri: str,
        table: str,
        *,
        encoder: Encoder | str | Path | None = None,
        text_column: str = "text",
        vector_column: str = "vector",
        id_column: str = "id",
        storage_options: Mapping[str, str] | None = None,
        **options: Any,
    ) -> SmartIndex:
        """Upgrade an existing single-vector LanceDB table to SMART in place, and open it.

        The table (written by LanceDB's LlamaIndex or LangChain store, or plain LanceDB
        code) gains ``tokens`` / ``n_tokens`` columns; its rows stay, and its own store keeps
        writing it. ``options`` are :func:`smart_retrievers.upgrade.upgrade_table`'s
        (``metadata_column``, ``reencode_vectors``, ``compression``, ``batch_size``...). The
        returned index searches the table; ``add`` raises
        :class:`~smart_retrievers.store.UpgradedTableError` (write through the user's store).
        """
        encoder = as_encoder(encoder)
        upgrade_table(
            uri,
            table,
            encoder,
            storage_options=storage_options,
            text_column=text_column,
            vector_column=vector_column,
            id_column=id_column,
            **options,
        )
        return cls(uri, encoder=encoder, table=table, storage_options=storage_options)

    # ---- reads ---------------------------------------------------------

    def count(self, where: Any = None) -> int:
        """Number of rows (matching ``where`` if given)."""
        return self.store.count(where)

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Stored items for these ids, in the given order (missing ids are skipped; scores are 0)."""
        return [hit_from_row(row) for row in self.store.get(ids).to_pylist()]

    def pooled_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored pooled vectors (float32) of these ids; missing ids are absent."""
        rows = self.store.get(ids, columns=["id", "vector"])
        return dict(zip(rows.column("id").to_pylist(), vectors_block(rows.column("vector")).numpy()))

    def rows(self, where: Any = None, *, batch_size: int = 2048) -> Iterator[Hit]:
        """Every stored item (matching ``where``), streamed in table order, without vectors (scores are 0)."""
        if self.store.table is None:
            return
        for batch in self.store.scan(META_COLUMNS, where=self.store.where_sql(where), batch_size=batch_size):
            yield from (hit_from_row(row) for row in batch.to_pylist())

    def search(
        self, query: str, k: int | None = None, *, options: SearchOptions | None = None, **settings: Any
    ) -> list[Hit]:
        """Search with SMART scoring: the ``k`` (default 10) best rows for the query text.

        ``options`` is a :class:`~smart_retrievers.options.SearchOptions`; ``k`` and ``settings`` (any of
        its fields: ``where``, ``candidates``, ``mode`` ("hybrid", the default, "rerank",
        "exhaustive", "pooled" or "text"), ``lambda_pool`` / ``lambda_late`` / ``lambda_lex``,
        ``modality``, the ANN knobs) override it; None means the index's default.
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        check_text(query, what="query")  # a lone surrogate: a clear error, not the tokenizer's
        opts = (options or SearchOptions()).updated(k=k, **settings)
        encoded = self.encoder.encode_queries([query], show_progress=False)[0]
        return self.search_encoded(encoded, options=opts, text=query)

    def search_image(
        self,
        image: ImageInput,
        k: int | None = None,
        *,
        text: str | None = None,
        options: SearchOptions | None = None,
        **settings: Any,
    ) -> list[Hit]:
        """Search with an image as the query (with ``text`` too: one interleaved query, Qwen-VL encoders).

        The other arguments are those of :meth:`search`; each hit's ``modality`` says whether it
        is a text or an image row.
        """
        if not isinstance(image, IMAGE_TYPES):
            raise TypeError(f"image must be a path, URI, bytes or PIL.Image, got {type(image).__name__}")
        if text is not None and not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if text is not None:
            check_text(text, what="text")
        opts = (options or SearchOptions()).updated(k=k, **settings)
        query = self._image_encoder().encode_inputs(texts=[text], images=[image], query=True, show_progress=False)[0]
        return self.search_encoded(query, options=opts)  # an image query has no words for the full-text index

    def search_encoded(
        self,
        query: Encoding,
        k: int | None = None,
        *,
        options: SearchOptions | None = None,
        text: str | None = None,
        **settings: Any,
    ) -> list[Hit]:
        """:meth:`search` for an already encoded query (text or image); ``text`` (the query's words) feeds
        the full-text index in "hybrid" and "text" mode (without it, "hybrid" ranks as "rerank")."""
        return run_search(self.store, query, self.resolve(options, k=k, **settings), self.options, text=text)

    def search_by_vector(
        self, vector: Sequence[float] | np.ndarray, k: int | None = None, *, where: Any = None
    ) -> list[Hit]:
        """The ``k`` rows nearest a caller's embedding (the encoder's pooled dimension) by pooled cosine alone.

        A bare vector has no token states, so no late interaction: ``score`` is the pooled cosine.
        """
        return self.search_encoded(vector_query(vector, self.encoder.dim), k=k, mode="pooled", where=where)

    def max_marginal_relevance(
        self,
        query: str | Sequence[float] | np.ndarray,
        k: int = 4,
        *,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        where: Any = None,
    ) -> list[Hit]:
        """``k`` of the pooled top-``fetch_k`` rows in maximal-marginal-relevance order (see :mod:`.vectors`).

        ``query`` is a text (encoded by the index's encoder) or a caller's embedding. Relevance and
        redundancy are pooled cosines; ``lambda_mult`` 1 is plain similarity order, 0 maximal diversity.
        Each hit's ``score`` is its pooled cosine.
        """
        if isinstance(query, str):
            check_text(query, what="query")
            encoded = self.encoder.encode_queries([query], show_progress=False)[0]
        else:
            encoded = vector_query(query, self.encoder.dim)
        hits = self.search_encoded(encoded, k=max(k, fetch_k), mode="pooled", where=where)
        return mmr_select(self.store, encoded, hits, k, lambda_mult)

    def resolve(self, options: SearchOptions | None = None, **settings: Any) -> ResolvedSearchOptions:
        """``options`` with ``settings`` applied and every default taken from this index."""
        opts = (options or SearchOptions()).updated(**settings)
        return opts.resolved(
            candidates=self.candidates,
            lambda_pool=self.lambda_pool,
            lambda_late=self.lambda_late,
            lambda_lex=self.lambda_lex,
        )

    def explain(
        self,
        query: str,
        doc_id_or_hit: str | Hit,
        *,
        lambda_pool: float | None = None,
        lambda_late: float | None = None,
        lambda_lex: float | None = None,
        image: ImageInput | None = None,
    ) -> Evidence:
        """Why a stored row matched ``query``: an :class:`~smart_retrievers.explain.Evidence` (see
        :func:`~smart_retrievers.explain.explain_row`). Weights default to the index's; ``image`` is
        the source of an image row stored without a location.

        A text row of a table with a full-text index also gets its lexical part
        (:attr:`Evidence.terms`): the query words that matched and what each added. For a hit, its
        own ``lex_score`` (pass the ``lambda_lex`` it was searched with, if not the index's); for a
        row id, what an unfiltered "hybrid" search gives the row. ``lambda_lex=0`` leaves it out.
        """
        weights = (
            self.lambda_pool if lambda_pool is None else lambda_pool,
            self.lambda_late if lambda_late is None else lambda_late,
        )
        evidence = explain_row(self, query, doc_id_or_hit, weights=weights, image=image)
        if evidence.modality != "text":
            return evidence
        lam_lex = self.lambda_lex if lambda_lex is None else lambda_lex
        return add_lexical_evidence(self, query, evidence, doc_id_or_hit, lam_lex)

    def calibrate(
        self,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        *,
        grid: Sequence[Sequence[float]] | None = None,
        lex_grid: Sequence[float] = DEFAULT_LEX_GRID,
        folds: int = 5,
        candidates: int | None = None,
        min_gain: float = 0.0,
        seed: int = 0,
        where: Any = None,
        save: bool = False,
        show_progress: bool | None = None,
    ) -> Calibration:
        """Choose ``lambda_pool`` / ``lambda_late`` / ``lambda_lex`` for this table by cross-validated nDCG@10
        on judged queries.

        See :func:`~smart_retrievers.evaluation.index_calibration.calibrate_index` for the arguments (``candidates``
        defaults to the index's). ``save`` stores the chosen weights in the table: this index and any
        opened on it later without explicit weights then default to them. ``.table()`` of the result
        prints the report.
        """
        result = calibrate_index(
            self,
            queries,
            qrels,
            grid=grid,
            lex_grid=lex_grid,
            folds=folds,
            candidates=self.candidates if candidates is None else candidates,
            min_gain=min_gain,
            seed=seed,
            where=where,
            show_progress=show_progress,
        )
        if save:
            self.store.set_fusion_weights(
                result.lambda_pool,
                result.lambda_late,
                result.lambda_lex,
                cv_ndcg_at_10=result.cv_selected,
                default_cv_ndcg_at_10=result.cv_ndcg[result.default],
                folds=result.folds,
                n_queries=result.n_queries,
            )
            self.configure(lambda_pool=result.lambda_pool, lambda_late=result.lambda_late, lambda_lex=result.lambda_lex)
        return result

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"SmartIndex(uri={self.store.uri!r}, table={self.store.table_name!r}, rows={self.count()}, encoder={self.encoder!r})"


def open_index(
    index: SmartIndex | None,
    uri: str | None,
    *,
    table: str | None = None,
    encoder: Any = None,
    owner: str = "this class",
    **index_kwargs: Any,
) -> SmartIndex:
    """``index`` when one is given (then nothing else may be), else a :class:`SmartIndex` opened at ``uri``.

    The one rule of every integration class built "on an open index, or on a uri": errors name ``owner``.
    """
    if index is not None:
        if uri is not None or table is not None or encoder is not None or index_kwargs:
            raise ValueError("pass either index= (an open SmartIndex) or uri=/table=/encoder=/index options, not both")
        if not isinstance(index, SmartIndex):
            raise TypeError(f"index must be a SmartIndex, got {type(index).__name__}")
        return index
    if uri is None:
        raise ValueError(f"{owner} needs uri= (a LanceDB directory or object-store URI) or index= (an open SmartIndex)")
    return SmartIndex(str(uri), encoder=encoder, table=table or "smart", **index_kwargs)
