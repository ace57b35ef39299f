"""What match evidence costs: the LangChain and LlamaIndex ``SmartRetriever`` with ``evidence=False`` vs ``evidence=True``.

Needs an index of the corpus (``smart-retrievers index ../shared/data/scifact/corpus.jsonl --db DIR``),
langchain-core and llama-index-core. For each framework, every query runs with evidence off and on,
alternately (so load on a shared machine hits both alike); prints the median seconds per query of
each, and the median of the per-query differences (the cost of ``evidence=True``).

``--per-hit`` adds, in the same alternation, what ``evidence=True`` did before it was batched:
``SmartIndex.search`` then ``SmartIndex.explain`` for each hit (the query and each hit's text
encoded one call at a time), against ``SmartIndex.search`` then one
:func:`~smart_retrievers.explain.compact_evidence` call.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _data import require

from smart_retrievers import SmartIndex
from smart_retrievers.evaluation import load_beir


def _retrievers(index: SmartIndex, framework: str, k: int) -> dict[bool, object]:
    if framework == "core":  # False: one explain() per hit (the unbatched way); True: compact_evidence
        from smart_retrievers.explain import EVIDENCE_SPANS, compact_evidence

        def per_hit(q: str) -> list:
            return [index.explain(q, h).top_spans(EVIDENCE_SPANS) for h in index.search(q, k=k)]

        def batched(q: str) -> list:
            return compact_evidence(index, q, index.search(q, k=k))

        return {False: per_hit, True: batched}
    if framework == "langchain":
        from smart_retrievers.langchain import SmartRetriever

        return {ev: SmartRetriever(index=index, k=k, evidence=ev).invoke for ev in (False, True)}
    from smart_retrievers.llama_index import SmartRetriever

    return {ev: SmartRetriever(index, similarity_top_k=k, evidence=ev).retrieve for ev in (False, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--framework", choices=["langchain", "llama_index", "both"], default="both")
    parser.add_argument("--per-hit", action="store_true", help="also time one explain() per hit against the batch")
    args = parser.parse_args()
    data = load_beir(require(args.dataset), split="test")
    queries = list(data.queries.values())[: args.queries]
    index = SmartIndex(args.db)
    frameworks = ["langchain", "llama_index"] if args.framework == "both" else [args.framework]
    for framework in frameworks + (["core"] if args.per_hit else []):
        run = _retrievers(index, framework, args.k)
        for ev in (False, True):
            run[ev](queries[0])  # warm-up
        took: dict[bool, list[float]] = {False: [], True: []}
        for i, q in enumerate(queries):
            for ev in (False, True) if i % 2 == 0 else (True, False):
                start = time.perf_counter()
                run[ev](q)
                took[ev].append(time.perf_counter() - start)
        off, on = (statistics.median(took[ev]) for ev in (False, True))
        cost = statistics.median(b - a for a, b in zip(took[False], took[True]))
        if framework == "core":
            print(
                f"search + evidence, k={args.k}: one explain() per hit median {1000 * off:.1f} ms, one batched "
                f"compact_evidence() {1000 * on:.1f} ms per query (batched - per hit: {1000 * cost:+.1f} ms)"
            )
            continue
        print(
            f"{framework}: evidence=False median {1000 * off:.1f} ms, evidence=True {1000 * on:.1f} ms per query "
            f"(k={args.k}, {len(queries)} queries); cost of evidence=True: +{1000 * cost:.1f} ms per query "
            f"(+{1000 * cost / args.k:.1f} ms per hit)"
        )


if __name__ == "__main__":
    main()
