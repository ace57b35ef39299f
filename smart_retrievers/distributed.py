"""Distributed encoding with Ray Data (extra ``[ray]``): a pool of encoder actors, one index commit.

Encoding is the expensive, embarrassingly parallel part of indexing. :func:`index_with_ray`
runs it on Ray Data with ``map_batches`` over a pool of :class:`EncodeBatch` actors (one
model load per actor, on CPU or with ``num_gpus``), and streams their output into
:meth:`SmartIndex.add_records <smart_retrievers.index.SmartIndex.add_records>` on the driver.
So the table is exactly what ``SmartIndex.add`` writes (schema, codec, fingerprint, field
types), the whole corpus is one LanceDB commit (all rows or none), and the URI may be a
local directory or object storage.

Ray's own Lance sink (``Dataset.write_lance``) is not used: it would bypass the codec, the
fingerprint and the field map, and with Ray 2.60 it fails against pylance 14
(``write_fragments() got an unexpected keyword argument 'storage_options_provider'``).
The driver fits the table's codec on a sample first, so the actors also code (and pool)
the token states, the second most expensive step; what stays serial is the driver's
write, which overlaps the actors' work (see BENCHMARKS.md "Distributed encoding").
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .codec import TokenCodec
from .encoders import as_encoder
from .encoding import Encoding
from .index import SmartIndex
from .index.upkeep import set_fitted_codec
from .store import Record, tokens_from_arrow, tokens_to_arrow
from .validation import check_count, corpus_item

__all__ = ["EncodeBatch", "index_with_ray", "read_corpus"]


class EncodeBatch:
    """A Ray Data actor: loads the encoder once, then encodes batches of corpus rows.

    Args:
        model: what ``SmartIndex(encoder=...)`` takes as a name: None for the bundled
            all-MiniLM-L6-v2, a hub id or a local directory (see ``encoders.as_encoder``).
        encoder_options: keyword arguments of the encoder (``batch_size``, ``device``...).
        lines: rows are ``{"text": <one JSON line>}`` (from ``ray.data.read_text``), else
            ``id``/``_id``, ``title``, ``text``, ``metadata`` columns.
        threads: torch threads in this actor (its CPU share); None leaves torch's default.
        codec: the table's token codec (its JSON): token states are coded here, in parallel,
            rather than on the driver (None: float16 states).
    """

    def __init__(
        self,
        model: str | None = None,
        encoder_options: Mapping[str, Any] | None = None,
        lines: bool = False,
        threads: int | None = None,
        codec: str | None = None,
    ) -> None:
        if threads:  # torch would otherwise use every core of the node in every actor
            import torch

            torch.set_num_threads(threads)
        self.encoder = as_encoder(model, **dict(encoder_options or {}))
        self.lines = lines
        self.codec = TokenCodec.from_json(codec) if codec else None

    @staticmethod
    def items(rows: Sequence[Mapping[str, Any]], lines: bool) -> list[dict[str, Any]]:
        """Corpus rows as checked ``{id, text, metadata}`` items."""
        return [corpus_item(json.loads(row["text"]) if lines else row) for row in rows]

    def __call__(self, batch: pa.Table) -> pa.Table:
        items = self.items(batch.to_pylist(), self.lines)
        encodings = self.encoder.encode_documents([item["text"] for item in items], show_progress=False)
        pooled = np.stack([e.pooled for e in encodings]).astype(np.float32)
        return pa.table(
            {
                "id": [item["id"] for item in items],
                "text": [item["text"] for item in items],
                "metadata": [json.dumps(item["metadata"]) for item in items],
                "pooled": pa.FixedSizeListArray.from_arrays(pa.array(pooled.reshape(-1)), pooled.shape[1]),
                "tokens": tokens_to_arrow([e.tokens for e in encodings], self.encoder.token_dim, self.codec),
                "truncated": [bool(e.truncated) for e in encodings],
            }
        )


def read_corpus(source: Any) -> tuple[Any, bool]:
    """A Ray Dataset of corpus rows, and whether its rows are raw JSON lines.

    ``source`` is a Ray Dataset (``id``/``text``/optional ``title``/``metadata`` columns), a
    path or list of paths to JSONL (``.jsonl``/``.json``) or Parquet (``.parquet``) files,
    or a BEIR directory (its ``corpus.jsonl``).
    """
    import ray.data

    if isinstance(source, ray.data.Dataset):
        return source, False
    paths = [Path(p) for p in ([source] if isinstance(source, (str, Path)) else source)]
    paths = [p / "corpus.jsonl" if p.is_dir() else p for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no corpus file at {', '.join(missing)}")
    kinds = {p.suffix for p in paths}
    if kinds <= {".jsonl", ".json"}:
        return ray.data.read_text([str(p) for p in paths], drop_empty_lines=True), True
    if kinds == {".parquet"}:
        return ray.data.read_parquet([str(p) for p in paths]), False
    raise ValueError(f"corpus files must all be .jsonl/.json or all .parquet, got {sorted(kinds)}")


def encoded_records(batch: pa.Table) -> list[Record]:
    """Rows produced by :class:`EncodeBatch` as records for :meth:`SmartIndex.add_records`."""
    pooled = batch.column("pooled").combine_chunks()
    vectors = pooled.flatten().to_numpy().reshape(len(batch), pooled.type.list_size)
    tokens = tokens_from_arrow(batch.column("tokens"))
    truncated = batch.column("truncated").to_pylist()
    return [
        Record(
            id=row_id,
            text=text,
            encoding=Encoding(pooled=vectors[i], tokens=tokens.item_numpy(i), truncated=truncated[i]),
            metadata=json.loads(meta),
        )
        for i, (row_id, text, meta) in enumerate(
            zip(*(batch.column(c).to_pylist() for c in ("id", "text", "metadata")))
        )
    ]


def index_with_ray(
    source: Any,
    uri: str,
    *,
    model: str | None = None,
    encoder_options: Mapping[str, Any] | None = None,
    actors: int = 1,
    cpus_per_actor: float = 1,
    batch_size: int = 64,
    num_gpus: float = 0,
    upsert: bool = True,
    show_progress: bool | None = True,
    **index_options: Any,
) -> SmartIndex:
    """Encode a corpus on Ray Data actors and write it into a SMART index, as one commit.

    Args:
        source: a Ray Dataset or corpus files (see :func:`read_corpus`).
        uri: the index's LanceDB URI (local directory or ``s3://``...; pass
            ``storage_options=`` in ``index_options``).
        model / encoder_options: the encoder, loaded once per actor and once on the driver
            (for the fingerprint and the codec fit), as ``SmartIndex(encoder=model)`` would.
        actors: encoder actors (Ray's ``concurrency``).
        cpus_per_actor: CPUs Ray reserves for each actor, and its torch threads (at least 1).
            Leave Ray at least one CPU beyond ``actors * cpus_per_actor`` for reading the
            corpus, or the read waits for a CPU forever.
        batch_size: rows per ``map_batches`` call (the encoder batches within it).
        num_gpus: GPUs per actor (e.g. 1); the same code path as CPU actors.
        upsert: as in :meth:`SmartIndex.add`; False appends (a first bulk load).
        show_progress: a progress bar of rows written (total unknown up front).
        **index_options: other :class:`SmartIndex` arguments (``table``, ``compression``,
            ``write_batch_size``, ``storage_options``...).

    Returns:
        The index, open on the written table. Ray is started with its defaults if it is not
        running (call ``ray.init(...)`` first to choose the cluster or the CPUs).
    """
    check_count("actors", actors)
    index = SmartIndex(uri, encoder=as_encoder(model, **dict(encoder_options or {})), **index_options)
    dataset, lines = read_corpus(source)
    if index.store.needs_codec:  # fitted here on a sample, so that the actors code in parallel
        sample = EncodeBatch.items(dataset.take(index.write_batch_size), lines)
        tokens = [e.tokens for e in index.encoder.encode_documents([i["text"] for i in sample], show_progress=False)]
        set_fitted_codec(index.store, tokens, index.encoder)
    encoded = dataset.map_batches(
        EncodeBatch,
        fn_constructor_kwargs={
            "model": model,
            "encoder_options": dict(encoder_options or {}),
            "lines": lines,
            "threads": max(1, int(cpus_per_actor)),
            "codec": index.codec.to_json() if index.codec else None,
        },
        concurrency=actors,
        batch_size=batch_size,
        batch_format="pyarrow",
        num_cpus=cpus_per_actor,
        **({"num_gpus": num_gpus} if num_gpus else {}),
    )

    def batches() -> Iterator[Sequence[Record]]:
        for batch in encoded.iter_batches(batch_format="pyarrow", batch_size=index.write_batch_size):
            yield encoded_records(batch)

    index.add_records(batches(), upsert=upsert, show_progress=show_progress)
    return index
