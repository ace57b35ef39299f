"""Images through the LlamaIndex and LangChain integrations, and the multimodal example.

The vision models are tiny and randomly initialised (see tiny_vision_models.py); the
tests check the code paths (which rows are images, what comes back, which encodings are
reused), never retrieval quality. A query image that is itself indexed must come first:
its encoding is identical, so its pooled and late scores are both 1.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
from pathlib import Path

import pytest
from encoder_calls import record_document_encodings
from langchain_core.documents import Document as LCDocument
from llama_index.core.base.base_multi_modal_retriever import MultiModalRetriever
from llama_index.core.schema import (
    Document,
    ImageDocument,
    ImageNode,
    MediaResource,
    NodeWithScore,
    QueryBundle,
    TextNode,
)
from PIL import Image
from tiny_vision_models import build_clip, build_qwen, drawn_images

from smart_retrievers import SmartIndex
from smart_retrievers.encoders import ClipEncoder, ImageLoadError, QwenVLEncoder
from smart_retrievers.langchain import SmartReranker
from smart_retrievers.langchain import SmartRetriever as LCRetriever
from smart_retrievers.llama_index import SmartRerank, SmartVectorIndex

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multimodal_rag.py"
TEXTS = ["a red star in the night sky", "two children play with a ball on the grass"]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_vision")
    return {"clip": build_clip(root / "clip"), "qwen2": build_qwen(root / "qwen2", 2)}


@pytest.fixture(scope="module")
def clip(model_dirs) -> ClipEncoder:
    return ClipEncoder(model_dirs["clip"], device="cpu")


@pytest.fixture(scope="module")
def qwen(model_dirs) -> QwenVLEncoder:
    return QwenVLEncoder(model_dirs["qwen2"], device="cpu")


@pytest.fixture()
def paths(tmp_path) -> list[Path]:
    out = []
    for i, img in enumerate(drawn_images(5)):
        out.append(tmp_path / f"img{i}.png")
        img.save(out[-1])
    return out


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# ---- LlamaIndex ----------------------------------------------------------


@pytest.fixture()
def llama_index(tmp_path, clip, paths) -> SmartVectorIndex:
    documents = [
        ImageDocument(id_="doc-path", image_path=str(paths[0]), text="a caption", metadata={"kind": "photo"}),
        ImageDocument(
            id_="doc-data", image_resource=MediaResource(data=_png(Image.open(paths[1]))), metadata={"kind": "photo"}
        ),
        Document(id_="doc-resource", text="", image_resource=MediaResource(path=paths[2]), metadata={"kind": "photo"}),
        Document(id_="doc-text", text=TEXTS[0], metadata={"kind": "note"}),
    ]
    # exact float16 states: an indexed query image scores 2 (pooled 1 + late 1) against itself only then; codecs are
    # tested in test_codec.py
    index = SmartVectorIndex.from_documents(documents, uri=str(tmp_path / "db"), encoder=clip, compression="none")
    index.insert_nodes(
        [
            ImageNode(id_="node-path", image_path=str(paths[3]), text="inserted"),
            ImageNode(id_="node-b64", image=base64.b64encode(_png(Image.open(paths[4]))).decode()),
            ImageNode(id_="node-resource", image_resource={"path": str(paths[0])}),
            TextNode(id_="node-text", text=TEXTS[1]),
        ]
    )
    return index


def test_llama_index_stores_image_nodes_and_documents(llama_index, paths):
    smart = llama_index.smart_index
    assert smart.count() == 8
    info = llama_index.ref_doc_info
    assert set(info) == {"doc-path", "doc-data", "doc-resource", "doc-text"}
    node_ids = [i for doc in info.values() for i in doc.node_ids] + [
        "node-path",
        "node-b64",
        "node-resource",
        "node-text",
    ]
    nodes = {n.ref_doc_id or n.node_id: n for n in llama_index.get_nodes(node_ids)}
    assert isinstance(nodes["doc-path"], ImageNode) and nodes["doc-path"].image_path == str(paths[0].resolve())
    assert nodes["doc-path"].text == "a caption" and nodes["doc-path"].metadata == {"kind": "photo"}
    assert isinstance(nodes["doc-resource"], ImageNode) and nodes["doc-resource"].image_path == str(paths[2].resolve())
    assert (
        isinstance(nodes["doc-data"], ImageNode) and nodes["doc-data"].image_path is None
    )  # inline data: no location kept
    assert type(nodes["doc-text"]) is TextNode and type(nodes["node-text"]) is TextNode
    assert nodes["node-path"].image_path == str(paths[3].resolve()) and nodes["node-path"].image_mimetype == "image/png"
    assert nodes["node-resource"].image_path == str(paths[0].resolve())
    stored = {h.id: h for h in smart.get(node_ids)}
    assert sorted(h.modality for h in stored.values()) == ["image"] * 6 + ["text"] * 2
    assert all(h.image is None or len(h.image) < 300 for h in stored.values())  # locations, never pixels
    llama_index.delete_ref_doc("doc-path")
    assert smart.count() == 7


def test_llama_index_multimodal_retriever(llama_index, paths):
    retriever = llama_index.as_retriever(similarity_top_k=8, image_similarity_top_k=3)
    assert isinstance(retriever, MultiModalRetriever)
    everything = retriever.retrieve(TEXTS[0])
    assert len(everything) == 8 and {type(n.node) for n in everything} == {ImageNode, TextNode}
    texts = retriever.text_retrieve(TEXTS[0])
    assert [n.node.node_id for n in texts][0] == texts[0].node.node_id and all(type(n.node) is TextNode for n in texts)
    assert texts[0].node.text == TEXTS[0] and len(texts) == 2
    images = retriever.text_to_image_retrieve(TEXTS[0])
    assert len(images) == 3 and all(isinstance(n.node, ImageNode) for n in images)
    same = retriever.image_to_image_retrieve(str(paths[3]))
    assert same[0].node.node_id == "node-path" and same[0].score == pytest.approx(1.0, abs=1e-2)  # the [0, 1] relevance
    assert all(isinstance(n.node, ImageNode) for n in same) and len(same) == 3
    bundle = retriever.retrieve(QueryBundle(query_str="", image_path=str(paths[3])))
    assert bundle[0].node.node_id == "node-path" and len(bundle) == 8
    assert [n.node.node_id for n in asyncio.run(retriever.aimage_to_image_retrieve(str(paths[3])))] == [
        n.node.node_id for n in same
    ]
    assert len(asyncio.run(retriever.atext_to_image_retrieve(TEXTS[1]))) == 3
    assert all(type(n.node) is TextNode for n in asyncio.run(retriever.atext_retrieve(TEXTS[1])))
    with pytest.raises(ValueError, match="needs an image"):
        retriever.image_to_image_retrieve(QueryBundle(query_str="x"))


def test_llama_index_rerank_image_nodes(llama_index, clip, paths):
    retriever = llama_index.as_retriever(similarity_top_k=8)
    candidates = retriever.retrieve(TEXTS[1])
    query = QueryBundle(query_str="", image_path=str(paths[3]))
    reranked = SmartRerank(top_n=3, index=llama_index).postprocess_nodes(candidates, query)
    assert reranked[0].node.node_id == "node-path" and reranked[0].score == pytest.approx(
        1.0, abs=1e-2
    )  # the [0, 1] relevance
    assert len(reranked) == 3 and reranked[0].late_score == pytest.approx(1.0, abs=2e-3)
    # without an index: image nodes from anywhere, base64 and paths, mixed with text nodes
    outside = [
        NodeWithScore(node=ImageNode(image=base64.b64encode(_png(Image.open(paths[1]))).decode()), score=0.1),
        NodeWithScore(node=ImageNode(image_path=str(paths[3])), score=0.2),
        NodeWithScore(node=TextNode(text=TEXTS[0]), score=0.3),
    ]
    fresh = SmartRerank(top_n=None, encoder=clip).postprocess_nodes(outside, query)
    assert [n.node for n in fresh][0] is outside[1].node and len(fresh) == 3
    broken = [NodeWithScore(node=ImageNode(image=base64.b64encode(b"not an image").decode()), score=0.0)]
    with pytest.raises(ImageLoadError, match="image 0 "):
        SmartRerank(encoder=clip).postprocess_nodes(broken, QueryBundle(TEXTS[0]))


def test_llama_index_corrupt_image_document_writes_nothing(tmp_path, clip, paths):
    index = SmartVectorIndex(uri=str(tmp_path / "db"), encoder=clip)
    index.insert_nodes([TextNode(id_="keep", text=TEXTS[0])])
    version = index.smart_index.store.version
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageLoadError, match="image 1 \\(id 'n1'\\)"):
        index.insert_nodes(
            [
                ImageNode(id_="n0", image_path=str(paths[0])),
                ImageNode(id_="n1", image_path=str(bad)),
                TextNode(id_="n2", text="x"),
            ]
        )
    assert index.smart_index.count() == 1 and index.smart_index.store.version == version


# ---- LangChain -------------------------------------------------------------


def test_langchain_image_documents_and_image_queries(tmp_path, clip, paths):
    docs = [
        LCDocument(id="p0", page_content="first photo", metadata={"image_path": str(paths[0]), "kind": "photo"}),
        LCDocument(id="p1", page_content="", metadata={"image_path": str(paths[1]), "kind": "photo"}),
        LCDocument(id="t0", page_content=TEXTS[0], metadata={"kind": "note"}),
        LCDocument(id="t1", page_content=TEXTS[1], metadata={"kind": "note"}),
    ]
    # exact float16 states: an indexed query image scores 2 against itself only then; codecs are tested in test_codec.py
    retriever = LCRetriever(index=SmartIndex(str(tmp_path / "db"), encoder=clip, compression="none"), k=4)
    retriever.add_documents(docs)
    stored = {h.id: h for h in retriever.index.get(["p0", "p1", "t0", "t1"])}
    assert {k: h.modality for k, h in stored.items()} == {"p0": "image", "p1": "image", "t0": "text", "t1": "text"}
    assert stored["p0"].image == str(paths[0].resolve()) and stored["p0"].text == "first photo"
    found = retriever.invoke("", image=str(paths[1]))
    assert found[0].id == "p1" and found[0].metadata["image_path"] == str(paths[1])
    assert found[0].metadata["smart_score"] == pytest.approx(2.0, abs=1e-2)
    assert [d.id for d in retriever.invoke("", image=Image.open(paths[0]), modality="image")][0] == "p0"
    assert {d.id for d in retriever.invoke(TEXTS[0], modality="text")} == {"t0", "t1"}
    assert {d.id for d in retriever.invoke(TEXTS[0], modality="image", filter={"kind": "photo"})} == {"p0", "p1"}
    assert asyncio.run(retriever.ainvoke("", image=str(paths[1])))[0].id == "p1"
    # rows added without LangChain still say where their image is
    retriever.index.add_images([paths[2]], ids=["raw"])
    raw = next(d for d in retriever.invoke("", image=str(paths[2])) if d.id == "raw")
    assert raw.metadata["image_path"] == str(paths[2].resolve())
    with pytest.raises(TypeError, match="must be a str"):
        retriever.add_documents([LCDocument(page_content="", metadata={"image_path": 3})])


def test_langchain_interleaved_image_and_text_query(tmp_path, qwen, paths):
    docs = [LCDocument(id=f"p{i}", page_content="", metadata={"image_path": str(p)}) for i, p in enumerate(paths[:3])]
    retriever = LCRetriever.from_documents(docs, uri=str(tmp_path / "db"), encoder=qwen, k=3)
    assert {d.id for d in retriever.invoke("a photo", image=str(paths[0]))} == {"p0", "p1", "p2"}
    assert retriever.invoke("", image=str(paths[0]))[0].id == "p0"


def test_langchain_reranker_on_image_documents(tmp_path, clip, paths, monkeypatch):
    # exact float16 states: reused stored states must score exactly as a fresh encoding; codecs are tested in test_codec.py
    index = SmartIndex(str(tmp_path / "db"), encoder=clip, compression="none")
    LCRetriever(index=index).add_documents(
        [LCDocument(id="p0", page_content="", metadata={"image_path": str(paths[0])})]
    )
    docs = [
        LCDocument(id="t", page_content=TEXTS[0]),
        LCDocument(id="p0", page_content="", metadata={"image_path": str(paths[0])}),
        LCDocument(id="p3", page_content="", metadata={"image_path": str(paths[3])}),
    ]
    fresh = SmartReranker(encoder=clip, top_n=None).compress_documents(docs, TEXTS[1])
    encoded = record_document_encodings(monkeypatch, clip)
    reranker = SmartReranker(index=index, top_n=3)
    ranked = reranker.compress_documents(docs, TEXTS[1])
    assert {d.id for d in ranked} == {"t", "p0", "p3"} and all("relevance_score" in d.metadata for d in ranked)
    assert sorted(map(str, encoded)) == sorted([TEXTS[0], str(paths[3])])  # p0 reused its stored states
    assert ranked[[d.id for d in ranked].index("p3")].metadata["image_path"] == str(paths[3])
    assert docs[1].metadata == {"image_path": str(paths[0])}  # inputs untouched
    assert {d.id: d.metadata["relevance_score"] for d in ranked} == pytest.approx(
        {d.id: d.metadata["relevance_score"] for d in fresh}, abs=1e-4
    )

    # the stored id p0, but another image: encoded from its own image, scored as a fresh encoding
    encoded.clear()
    moved = LCDocument(id="p0", page_content="", metadata={"image_path": str(paths[4])})
    scored = SmartReranker(index=index, top_n=None).compress_documents([moved], TEXTS[1])
    assert encoded == [str(paths[4])]
    alone = SmartReranker(encoder=clip, top_n=None).compress_documents(
        [LCDocument(page_content="", metadata=moved.metadata)], TEXTS[1]
    )
    assert scored[0].metadata["relevance_score"] == pytest.approx(alone[0].metadata["relevance_score"], abs=1e-5)


# ---- example -------------------------------------------------------------------


def _example():
    spec = importlib.util.spec_from_file_location("multimodal_rag", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_needs_a_model(monkeypatch, capsys):
    example = _example()
    monkeypatch.delenv(example.ENV_VAR, raising=False)
    assert example.main([]) == 2
    assert "gme-Qwen2-VL" in capsys.readouterr().err and example.ENV_VAR in example.NEEDED


def test_example_runs_with_a_tiny_model(monkeypatch, capsys, model_dirs, tmp_path):
    example = _example()
    monkeypatch.setenv(example.ENV_VAR, str(model_dirs["clip"]))
    assert example.main(["--n-images", "6", "-k", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "== LlamaIndex" in out and "== LangChain" in out and "text->image" in out
    assert example.main(["--data", str(tmp_path / "absent"), "-k", "2", "--device", "cpu"]) == 0
    assert "drawn images instead" in capsys.readouterr().out
