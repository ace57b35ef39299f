"""Multimodal retrieval with SMART through LlamaIndex and LangChain.

    python examples/multimodal_rag.py --model PATH      # or: SMART_VISION_MODEL=PATH python examples/multimodal_rag.py

PATH is a local vision-language embedder: GME-Qwen2-VL, Qwen3-VL-Embedding, a Qwen2-VL
based VLM2Vec, CLIP, SigLIP or SigLIP 2 (see docs/multimodal.md).

It indexes the images of ``../shared/data/flickr8k-1k`` (the first ``--n-images``) when that
directory exists, otherwise a few images drawn with PIL. Then it runs:

1. LlamaIndex: ``SmartVectorIndex.from_documents`` over ``ImageDocument``s, then
   ``text_to_image_retrieve`` for caption queries, ``image_to_image_retrieve`` for one image,
   and ``SmartRerank`` re-ranking image nodes;
2. LangChain: ``SmartRetriever`` over image ``Document``s (``metadata["image_path"]``), for
   caption queries and for an image query (``invoke("", image=path)``).

For each caption it prints the top images and whether the captioned image is among them.
With only a few images and a small model, these numbers are a smoke test, not a benchmark:
measure retrieval quality with ``smart-retrievers eval BEIR_DIR --model PATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

FLICKR = Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k-1k"
ENV_VAR = "SMART_VISION_MODEL"
NEEDED = (
    "this example needs the weights of a vision-language embedder, e.g. a local copy of "
    "Alibaba-NLP/gme-Qwen2-VL-2B-Instruct, Qwen/Qwen3-VL-Embedding-2B, "
    "openai/clip-vit-base-patch32 or google/siglip-base-patch16-224. "
    f"Pass its directory with --model PATH or set {ENV_VAR}=PATH."
)
SHAPES = [
    ("a red circle on a white background", "ellipse", (220, 30, 30), (255, 255, 255)),
    ("a blue square on a yellow background", "rectangle", (30, 60, 220), (250, 230, 60)),
    ("a green triangle on a black background", "triangle", (40, 200, 60), (0, 0, 0)),
    ("a white circle on a blue background", "ellipse", (255, 255, 255), (30, 60, 200)),
    ("a black square on a green background", "rectangle", (0, 0, 0), (60, 200, 80)),
    ("an orange triangle on a grey background", "triangle", (250, 140, 20), (128, 128, 128)),
]


def flickr_items(root: Path, n: int) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """The first ``n`` images of a BEIR image corpus, and one caption query per image."""
    images = []
    with (root / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            images.append((row["_id"], root / row["image"]))
            if len(images) == n:
                break
    wanted = {doc_id for doc_id, _ in images}
    captions: dict[str, str] = {}
    with (root / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            doc_id = row["_id"].split("#")[0]  # flickr8k-1k query ids are "<image id>#<n>"
            if doc_id in wanted and doc_id not in captions:
                captions[doc_id] = row["text"]
    return images, [(doc_id, captions[doc_id]) for doc_id, _ in images if doc_id in captions]


def drawn_items(folder: Path) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """A few PIL-drawn images of coloured shapes, with their descriptions as queries."""
    images, queries = [], []
    for i, (caption, shape, colour, background) in enumerate(SHAPES):
        img = Image.new("RGB", (224, 224), background)
        draw = ImageDraw.Draw(img)
        if shape == "triangle":
            draw.polygon([(112, 30), (30, 190), (194, 190)], fill=colour)
        else:
            getattr(draw, shape)([40, 40, 184, 184], fill=colour)
        path = folder / f"shape{i}.png"
        img.save(path)
        images.append((f"shape{i}", path))
        queries.append((f"shape{i}", caption))
    return images, queries


def report(label: str, expected: str, found: Sequence[str]) -> bool:
    hit = expected in found
    print(f"  {'HIT ' if hit else 'miss'} {label!r:60.60} -> {', '.join(found)}")
    return hit


def run_llama_index(encoder, images, queries, uri: str, k: int) -> None:
    from llama_index.core.schema import ImageDocument, QueryBundle

    from smart_retrievers.llama_index import SmartRerank, SmartVectorIndex

    print("\n== LlamaIndex: SmartVectorIndex over ImageDocuments ==")
    documents = [ImageDocument(id_=doc_id, image_path=str(path), text="") for doc_id, path in images]
    index = SmartVectorIndex.from_documents(
        documents, uri=uri, encoder=encoder, table="llama_index", show_progress=True
    )
    retriever = index.as_retriever(similarity_top_k=k, image_similarity_top_k=k)
    hits = 0
    for doc_id, caption in queries:
        nodes = retriever.text_to_image_retrieve(caption)
        hits += report(caption, doc_id, [n.node.ref_doc_id for n in nodes])
    print(f"  text->image: the captioned image is in the top {k} for {hits} of {len(queries)} captions")

    doc_id, path = images[0]
    nodes = retriever.image_to_image_retrieve(str(path))
    report(f"image {doc_id}", doc_id, [n.node.ref_doc_id for n in nodes])

    # re-rank a wider candidate list (e.g. from another retriever) with SMART
    wide = index.as_retriever(similarity_top_k=4 * k, image_similarity_top_k=4 * k).text_to_image_retrieve(
        queries[0][1]
    )
    reranked = SmartRerank(top_n=k, index=index).postprocess_nodes(wide, QueryBundle(queries[0][1]))
    report(f"rerank: {queries[0][1]}", queries[0][0], [n.node.ref_doc_id for n in reranked])


def run_langchain(encoder, images, queries, uri: str, k: int) -> None:
    from langchain_core.documents import Document

    from smart_retrievers.langchain import SmartRetriever

    print("\n== LangChain: SmartRetriever over image Documents ==")
    documents = [Document(id=doc_id, page_content="", metadata={"image_path": str(path)}) for doc_id, path in images]
    retriever = SmartRetriever.from_documents(
        documents, uri=uri, encoder=encoder, table="langchain", k=k, modality="image"
    )
    hits = 0
    for doc_id, caption in queries:
        hits += report(caption, doc_id, [d.id for d in retriever.invoke(caption)])
    print(f"  text->image: the captioned image is in the top {k} for {hits} of {len(queries)} captions")
    doc_id, path = images[0]
    report(f"image {doc_id}", doc_id, [d.id for d in retriever.invoke("", image=str(path))])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default=os.environ.get(ENV_VAR), help=f"vision-language embedder directory (default: ${ENV_VAR})"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=FLICKR,
        help="a BEIR image corpus (default: ../shared/data/flickr8k-1k; drawn images if absent)",
    )
    parser.add_argument("--n-images", type=int, default=100, help="images indexed from the corpus (default 100)")
    parser.add_argument("-k", type=int, default=5, help="results per query (default 5)")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the first available)")
    args = parser.parse_args(argv)
    if not args.model:
        print(f"error: {NEEDED}", file=sys.stderr)
        return 2
    if not Path(args.model).is_dir():
        print(f"error: {args.model!r} is not a directory; {NEEDED}", file=sys.stderr)
        return 2

    from smart_retrievers.encoders import load_encoder, reads_images

    encoder = load_encoder(args.model, device=args.device)
    if not reads_images(encoder):
        print(f"error: {args.model!r} is a text-only model; {NEEDED}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        if (args.data / "corpus.jsonl").is_file():
            images, queries = flickr_items(args.data, args.n_images)
            print(f"{len(images)} images from {args.data}, {len(queries)} caption queries; model {encoder.name}")
        else:
            images, queries = drawn_items(Path(tmp))
            print(f"{args.data} not found: {len(images)} drawn images instead; model {encoder.name}")
        run_llama_index(encoder, images, queries, str(Path(tmp) / "db"), args.k)
        run_langchain(encoder, images, queries, str(Path(tmp) / "db"), args.k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
