"""Upgrading what a new LlamaIndex user writes (issue 24, item 9): ``VectorStoreIndex.from_documents`` over
``SimpleDirectoryReader`` into LanceDB's store, default settings. LlamaIndex embedded each node's metadata lines
with its text (``MetadataMode.EMBED``); the upgrade rebuilds that text from the stored node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smart_retrievers.index import SmartIndex
from smart_retrievers.upgrade import upgrade_table
from smart_retrievers.upgrade.texts import llama_index_embed_text

FILES = {
    "cats.txt": "Cats sleep most of the day and purr when content.\n\nKittens play with balls of yarn.",
    "bread.md": "# Banana bread\n\nMash three ripe bananas, stir in flour and sugar, and bake for an hour.",
    "qubits.txt": "Quantum computers store information in qubits, which can hold superpositions of states.",
}


def _nodes() -> list[Any]:
    from llama_index.core import Document
    from llama_index.core.schema import ImageNode, TextNode

    values = {"title": "A title", "pages": 12, "score": 0.5, "draft": False, "editor": None}
    return [
        TextNode(text="plain text, no metadata"),
        TextNode(text="all of it embedded", metadata=values),
        TextNode(text="some keys left out", metadata=values, excluded_embed_metadata_keys=["pages", "editor"]),
        TextNode(text="every key left out", metadata={"a": 1}, excluded_embed_metadata_keys=["a"]),
        TextNode(
            text="own templates",
            metadata=values,
            metadata_template="{key}={value}",
            metadata_separator=" | ",
            text_template="<{metadata_str}>\n{content}",
        ),
        Document(text="  a document with spaces around  ", metadata={"file_path": "/data/a.txt", "file_size": 31}),
        ImageNode(text="an image caption", metadata={"source": "camera"}),
    ]


@pytest.mark.parametrize("position", range(7))
def test_the_embed_text_is_the_one_llama_index_embeds(position):
    from llama_index.core.schema import MetadataMode
    from llama_index.core.vector_stores.utils import node_to_metadata_dict

    node = _nodes()[position]
    stored = node_to_metadata_dict(node, remove_text=False, flat_metadata=True)  # as LanceDBVectorStore.add stores it
    expected = node.get_content(metadata_mode=MetadataMode.EMBED)
    assert llama_index_embed_text(node.get_content(), stored["_node_content"]) == expected
    assert llama_index_embed_text("just text", None) == "just text"


def _write_with_llama_index(folder: Path, uri: str, encoder: Any) -> Any:
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.vector_stores.lancedb import LanceDBVectorStore

    from smart_retrievers.llama_index import SmartEmbedding

    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text)
    store = LanceDBVectorStore(uri=uri, table_name="docs")
    return VectorStoreIndex.from_documents(
        SimpleDirectoryReader(str(folder)).load_data(),
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=SmartEmbedding(encoder),  # the same model, through LlamaIndex's embedding step
    )


def test_a_table_written_by_vector_store_index_from_documents_upgrades(tmp_path, encoder):
    from llama_index.core import Document

    uri = str(tmp_path / "db")
    li_index = _write_with_llama_index(tmp_path / "docs", uri, encoder)
    report = upgrade_table(uri, "docs", encoder)
    assert report.min_cosine > 0.999  # the text LlamaIndex embedded: its file_path line, then the text
    assert (report.rows, report.backfilled, report.caught_up, report.refreshed) == (3, 3, 0, 0)

    index = SmartIndex(uri, encoder=encoder, table="docs")
    hit = index.search("kittens playing with yarn", k=1)[0]
    assert hit.text == FILES["cats.txt"] and hit.metadata["file_name"] == "cats.txt"
    assert index.search("how to bake banana bread", k=1)[0].text == FILES["bread.md"]
    # LlamaIndex's own retriever still reads the table
    assert (
        li_index.as_retriever(similarity_top_k=1).retrieve("superposition of qubits")[0].node.text
        == FILES["qubits.txt"]
    )

    again = upgrade_table(uri, "docs", encoder)
    assert (again.caught_up, again.refreshed) == (0, 0)  # the rebuilt texts hash as they did
    li_index.insert(Document(text="Lighthouses guide ships along rocky coasts at night.", metadata={"file_path": "x"}))
    assert upgrade_table(uri, "docs", encoder).caught_up == 1
    assert index.search("what guides ships at night?", k=1)[0].text.startswith("Lighthouses")
