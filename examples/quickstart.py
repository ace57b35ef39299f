"""Quickstart: index a small corpus in an embedded LanceDB and compare single-vector with SMART.

Runs offline on the bundled all-MiniLM-L6-v2:  python examples/quickstart.py [--db DIR]
"""

from __future__ import annotations

import argparse
import tempfile

from smart_retrievers import SmartIndex
from smart_retrievers.sample_corpus import binding_corpus


def show(title: str, hits) -> None:
    print(f"\n{title}")
    for rank, hit in enumerate(hits, 1):
        print(
            f"  {rank}. {hit.id:<17} score={hit.score:.4f} pooled={hit.pooled_score:.4f} late={hit.late_score:.4f}  ...{hit.text[-62:]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", help="LanceDB directory (default: a temporary directory)")
    args = parser.parse_args()
    db = args.db or tempfile.mkdtemp(prefix="smart_db_")

    texts, metadata, cases = binding_corpus()
    # embedded LanceDB + the bundled all-MiniLM-L6-v2; float16 token states, since these twelve reports
    # differ only in which code labels which shape (the default 16-byte codes are compared below)
    index = SmartIndex(db, compression="none")
    index.add(list(texts.values()), ids=list(texts), metadatas=[metadata[i] for i in texts])
    print(f"indexed {index.count()} reports into {db}")

    case = next(c for c in cases if c.query == "P2 blue circle")
    print(f"query: {case.query!r}  (answer: {case.answer_id}; its swapped twin: {case.twin_id})")
    single = index.search(case.query, k=3, mode="pooled")
    smart = index.search(case.query, k=3)
    show("single-vector (pooled cosine):", single)
    show("SMART (pooled cosine + late interaction over token states):", smart)

    coded = SmartIndex(db, table="coded")  # the default codec: 16 bytes per token instead of 768
    coded.add(list(texts.values()), ids=list(texts), metadatas=[metadata[i] for i in texts])
    wins = {"single-vector": 0, "SMART": 0, f"SMART on {coded.codec.preset} codes": 0}
    for c in cases:
        wins["single-vector"] += index.search(c.query, k=1, mode="pooled")[0].id == c.answer_id
        wins["SMART"] += index.search(c.query, k=1)[0].id == c.answer_id
        wins[f"SMART on {coded.codec.preset} codes"] += coded.search(c.query, k=1)[0].id == c.answer_id
    print(
        f"\nanswer ranked first on all {len(cases)} queries: "
        + ", ".join(f"{k} {v}/{len(cases)}" for k, v in wins.items())
    )
    print("(near-identical reports are the codes' hardest case; BENCHMARKS.md has real corpora)")

    show(
        "SMART with a metadata filter (quarter >= 3, not swapped):",
        index.search(case.query, k=2, where={"quarter": {"$gte": 3}, "swapped": False}),
    )


if __name__ == "__main__":
    main()
