"""What match evidence costs: LangChain ``SmartRetriever(k=4)`` with ``evidence=False`` vs ``evidence=True``.

Needs an index of the corpus (``smart-retrievers index ../shared/data/scifact/corpus.jsonl --db DIR``) and
langchain-core. Prints the median seconds per query of each, over the first ``--queries`` test queries.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _data import require

from smart_retrievers import SmartIndex
from smart_retrievers.evaluation import load_beir
from smart_retrievers.langchain import SmartRetriever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("-k", type=int, default=4)
    args = parser.parse_args()
    data = load_beir(require(args.dataset), split="test")
    queries = list(data.queries.values())[: args.queries]
    index = SmartIndex(args.db)
    times = {}
    for evidence in (False, True):
        retriever = SmartRetriever(index=index, k=args.k, evidence=evidence)
        retriever.invoke(queries[0])  # warm-up
        took = []
        for q in queries:
            start = time.perf_counter()
            retriever.invoke(q)
            took.append(time.perf_counter() - start)
        times[evidence] = statistics.median(took)
        print(
            f"evidence={evidence}: median {1000 * times[evidence]:.1f} ms per query (k={args.k}, {len(queries)} queries)"
        )
    print(f"cost of evidence=True: +{1000 * (times[True] - times[False]):.1f} ms per query")


if __name__ == "__main__":
    main()
