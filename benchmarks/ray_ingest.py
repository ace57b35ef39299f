"""Ray Data ingest throughput: SmartIndex.add vs index_with_ray with 1 and 2 encoder actors.

Same texts (the first ``--n`` SciFact abstracts), same model, one run each, alternated in one
process; reports docs/s and the ratio to ``SmartIndex.add`` (torch on all cores) measured in
the same run. Ray's start-up and each actor's model load are included, as a user pays them.

    python benchmarks/ray_ingest.py [--n 1000] [--actors 1 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time

import ray
from _data import require

from smart_retrievers import SmartIndex
from smart_retrievers.distributed import index_with_ray
from smart_retrievers.evaluation import load_beir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    data = load_beir(require("scifact"))
    doc_ids = list(data.corpus)[: args.n]
    folder = tempfile.mkdtemp(prefix="smart_ray_")
    corpus = f"{folder}/corpus.jsonl"
    with open(corpus, "w") as f:
        for d in doc_ids:
            f.write(json.dumps({"_id": d, "title": data.corpus[d]["title"], "text": data.corpus[d]["text"]}) + "\n")
    rates = {}
    try:
        start = time.perf_counter()
        index = SmartIndex(f"{folder}/add")
        index.add([data.doc_text(d) for d in doc_ids], ids=doc_ids, show_progress=False)
        rates["SmartIndex.add"] = args.n / (time.perf_counter() - start)
        # one CPU more than the actors use, for Ray's read tasks (logical CPUs: they share the cores)
        ray.init(num_cpus=max(args.actors) + 1, include_dashboard=False, log_to_driver=False)
        for actors in args.actors:
            start = time.perf_counter()
            index_with_ray(corpus, f"{folder}/ray{actors}", actors=actors, show_progress=False)
            rates[f"ray, {actors} actor(s)"] = args.n / (time.perf_counter() - start)
    finally:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    base = rates["SmartIndex.add"]
    print(json.dumps({k: {"docs_per_s": round(v, 1), "ratio": round(v / base, 3)} for k, v in rates.items()}, indent=2))


if __name__ == "__main__":
    main()
