"""Every bad input gets a clear error and leaves the table exactly as it was (issue 10, items 4 and 6-11).

One table of cases over ``SmartIndex.add`` / ``add_encodings`` / ``add_items`` / ``search`` / ``get`` /
``delete``, ``SearchOptions``, metadata, filters, ``SmartIndex`` / ``SmartStore`` construction and the
CLI. Each case asserts the exception type, a fragment of its message (naming the input and, where
there is one, its position and id) and that the table is unchanged: row count, ids, ref_ids, texts,
metadata, the metadata field map and the table version (a refused call commits nothing).
"""

from __future__ import annotations

import copy
import datetime
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from smart_retrievers import FingerprintMismatchError, SearchOptions, SmartIndex
from smart_retrievers.cli import main
from smart_retrievers.filters import MAX_FILTER_DEPTH, Condition, Not
from smart_retrievers.store import SmartStore
from smart_retrievers.validation import MAX_METADATA_DEPTH

NAN, INF = float("nan"), float("inf")

# ids "s", "1" and "s1": a string split into characters would hit real rows
SEED = {
    "s1": ("The red star is labeled K7 in the 2021 catalogue.", "doc1", {"year": 2021, "tags": ["astro", "labels"]}),
    "s": ("Bananas are yellow and rich in potassium.", "d", {"year": 2019, "author": "Smith", "score": 0.5}),
    "1": ("Cats sleep for most of the day.", "o", {"year": 2020, "extra": {"w": 1}}),
    "b": ("The blue circle carries code P2.", "doc2", {}),
}


@dataclass
class Ctx:
    index: SmartIndex
    root: Path  # a scratch directory for files (JSONL lines, a regular file as uri)

    @property
    def uri(self) -> str:
        return self.index.store.uri

    def jsonl(self, name: str, *lines: str) -> str:
        """A JSONL file whose line 1 is valid and the following lines are ``lines``."""
        path = self.root / f"{name}.jsonl"
        path.write_text("\n".join([json.dumps({"id": "ok1", "text": "A fine line."}), *lines]) + "\n")
        return str(path)

    def cli_index(self, name: str, *lines: str) -> int:
        return main(["index", self.jsonl(name, *lines), "--db", self.uri, "--table", "smart"])


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, encoder) -> Ctx:
    root = tmp_path_factory.mktemp("bad_inputs")
    index = SmartIndex(str(root / "db"), encoder=encoder, compression="none")
    index.add(
        [text for text, _, _ in SEED.values()],
        ids=list(SEED),
        ref_ids=[ref for _, ref, _ in SEED.values()],
        metadatas=[meta for _, _, meta in SEED.values()],
    )
    return Ctx(index, root)


def snapshot(index: SmartIndex) -> tuple[Any, ...]:
    rows = sorted((h.id, h.ref_id, h.text, json.dumps(h.metadata, sort_keys=True)) for h in index.rows())
    return index.count(), rows, index.store.field_types, index.store.version


def _deep_dict(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


def _nested(op: str, depth: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"year": 2020}
    for _ in range(depth):
        spec = {op: spec} if op == "$not" else {op: [spec]}
    return spec


def _not_objects(depth: int) -> Any:
    node: Any = Condition("year", "eq", 2020)
    for _ in range(depth):
        node = Not(node)
    return node


def _encoding(c: Ctx, text: str = "An encoded elsewhere text.") -> Any:
    return c.index.encoder.encode_documents([text], show_progress=False)[0]


def _max_length_8(c: Ctx) -> SmartIndex:
    short = copy.copy(c.index.encoder)  # shares the loaded model; only the token limit differs
    short.max_length = 8
    return SmartIndex(c.uri, encoder=short)


def _regular_file(c: Ctx) -> Path:
    path = c.root / "a_regular_file"
    path.write_text("not a database")
    return path


WHEN = datetime.datetime(2024, 1, 2, 3, 4, 5)

Case = Callable[[Ctx], Any]
CASES: list[Any] = [
    # ---- add: metadata values (items 4, 8, 9) ------------------------------------------
    ("add-meta-int-over-int64", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"year": 2**70}]), ValueError, "metadata 0 (id 'n1') field 'year': integer 1180591620717411303424 is outside int64"),
    ("add-meta-int-under-int64", lambda c: c.index.add(["x", "y"], ids=["n1", "n2"], metadatas=[{"year": 1}, {"year": -(2**64)}]), ValueError, "metadata 1 (id 'n2') field 'year': integer"),
    ("add-meta-int64-in-list", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"tags": ["a", 2**64]}]), ValueError, "field 'tags'[1]: integer 18446744073709551616 is outside int64"),
    ("add-meta-int64-in-dict", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"extra": {"w": 2**63}}]), ValueError, "field 'extra'['w']: integer"),
    ("add-meta-nan", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"score": NAN}]), ValueError, "field 'score': nan is not a finite number"),
    ("add-meta-nan-in-list", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"tags": ["a", NAN]}]), ValueError, "field 'tags'[1]: nan is not a finite number"),
    ("add-meta-inf-in-dict", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"extra": {"w": -INF}}]), ValueError, "field 'extra'['w']: -inf is not a finite number"),
    ("add-meta-list-not-mapping", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[["ab", "cd"]]), TypeError, "metadata 0 (id 'n1') is list"),
    ("add-meta-str-not-mapping", lambda c: c.index.add(["x"], ids=["n1"], metadatas=["year=2020"]), TypeError, "each metadata must be a mapping"),
    ("add-metadatas-one-dict", lambda c: c.index.add(["x"], ids=["n1"], metadatas={"year": 2020}), TypeError, "metadatas must be a sequence with one entry per item"),
    # date / datetime are accepted (stored as ISO strings: test_datetime_metadata_is_stored_as_iso_strings); time is not
    ("add-meta-time", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"when": WHEN.time()}]), TypeError, "field 'when': time value"),
    ("add-meta-time-nested", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"extra": {"when": [WHEN.time()]}}]), TypeError, "field 'extra'['when'][0]: time value"),
    ("add-meta-set", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"tags": {"astro"}}]), TypeError, "field 'tags': set value"),
    ("add-meta-bytes", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"blob": b"\x00"}]), TypeError, "field 'blob': bytes value"),
    ("add-meta-deep-100000", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"extra": _deep_dict(100_000)}]), ValueError, f"nested deeper than {MAX_METADATA_DEPTH} levels"),
    ("add-meta-key-not-str", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{7: "a"}]), ValueError, "metadata keys must be non-empty strings, got 7"),
    ("add-meta-nested-key-not-str", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"extra": {7: "a"}}]), ValueError, "field 'extra': metadata keys must be strings"),
    ("add-meta-reserved-llama-index", lambda c: c.index.add(["x", "y"], ids=["n1", "n2"], metadatas=[{}, {"_llama_index": {"node": {}}}]), ValueError, "metadata 1 (id 'n2'): metadata key '_llama_index' is reserved"),
    ("add-meta-reserved-prefix", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"smart_retrievers:key_order": [["a"]]}]), ValueError, "metadata key 'smart_retrievers:key_order' is reserved"),
    ("add-meta-list-of-lists", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"tags": [["a"]]}]), ValueError, "metadata 0 (id 'n1') field 'tags': metadata lists may hold only scalars"),
    ("add-texts-set", lambda c: c.index.add({"a", "b"}), TypeError, "texts is a set, whose order is arbitrary"),
    ("add-ids-set", lambda c: c.index.add(["a", "b"], ids={"n1", "n2"}), TypeError, "ids is a set, whose order is arbitrary"),
    ("add-meta-list-of-dicts", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"tags": [{"a": 1}]}]), ValueError, "metadata lists may hold only scalars"),
    ("add-meta-surrogate", lambda c: c.index.add(["x"], ids=["n1"], metadatas=[{"author": "O\udc80Brien"}]), ValueError, "field 'author' holds a lone surrogate"),
    # ---- add: texts, ids, ref_ids (items 6, 9) -----------------------------------------
    ("add-text-surrogate", lambda c: c.index.add(["fine", "bad \ud800"], ids=["n1", "n2"]), ValueError, "text 1 (id 'n2') holds a lone surrogate '\\ud800' at character 4"),
    ("add-text-not-str", lambda c: c.index.add(["fine", 42], ids=["n1", "n2"]), TypeError, "text 1 (id 'n2') is int, not str"),
    ("add-texts-one-string", lambda c: c.index.add("a single text"), TypeError, "not a single string"),
    ("add-ids-one-string", lambda c: c.index.add(["x"], ids="ab"), TypeError, "ids must be a sequence of ids, not a single str 'ab'"),
    ("add-ids-int", lambda c: c.index.add(["x", "y"], ids=["n1", 5]), TypeError, "ids[1] is int 5, not str"),
    ("add-ids-empty-string", lambda c: c.index.add(["x"], ids=[""]), ValueError, "ids[0] is an empty string"),
    ("add-ids-surrogate", lambda c: c.index.add(["x"], ids=["n\udc00"]), ValueError, "ids[0] holds a lone surrogate"),
    ("add-ids-duplicate", lambda c: c.index.add(["x", "y"], ids=["n1", "n1"]), ValueError, "duplicate id 'n1'"),
    ("add-ids-count", lambda c: c.index.add(["x", "y", "z"], ids=["n1", "n2"]), ValueError, "got 3 items but 2 ids"),
    ("add-ref-ids-int", lambda c: c.index.add(["x"], ids=["n1"], ref_ids=[5]), TypeError, "ref_ids[0] is int 5, not str"),
    ("add-ref-ids-one-string", lambda c: c.index.add(["w", "x", "y", "z"], ids=["n1", "n2", "n3", "n4"], ref_ids="doc1"), TypeError, "ref_ids must be a sequence with one entry per item, not a single str 'doc1'"),
    # ---- add_encodings / add_items ------------------------------------------------------
    ("add-encodings-count", lambda c: c.index.add_encodings([_encoding(c)], ["a", "b"]), ValueError, "got 1 encodings but 2 texts"),
    ("add-encodings-text-surrogate", lambda c: c.index.add_encodings([_encoding(c)], ["bad \ud800"], ids=["n1"]), ValueError, "text 0 (id 'n1') holds a lone surrogate"),
    ("add-encodings-meta-nan-in-list", lambda c: c.index.add_encodings([_encoding(c)], ["x"], ids=["n1"], metadatas=[{"tags": [NAN]}]), ValueError, "field 'tags'[0]: nan is not a finite number"),
    ("add-items-text-surrogate", lambda c: c.index.add_items(["fine", "bad \udfff"], ids=["n1", "n2"]), ValueError, "text 1 (id 'n2') holds a lone surrogate"),
    ("add-items-meta-not-mapping", lambda c: c.index.add_items(["x"], ids=["n1"], metadatas=[[("a", 1)]]), TypeError, "each metadata must be a mapping"),
    ("add-items-ref-ids-int", lambda c: c.index.add_items(["x"], ids=["n1"], ref_ids=[3.5]), TypeError, "ref_ids[0] is float 3.5, not str"),
    ("add-items-images-one-string", lambda c: c.index.add_items(["x"], "img.png", ids=["n1"]), TypeError, "images must be a sequence with one entry per item"),
    ("add-items-image-on-text-encoder", lambda c: c.index.add_items([None], ["img.png"], ids=["n1"]), TypeError, "cannot encode images"),
    # ---- search and SearchOptions (item 8, 9) -------------------------------------------
    ("search-lambda-pool-nan", lambda c: c.index.search("red star", lambda_pool=NAN), ValueError, "lambda_pool must be a finite number, got nan"),
    ("search-lambda-late-inf", lambda c: c.index.search("red star", lambda_late=INF), ValueError, "lambda_late must be a finite number, got inf"),
    ("search-candidates-0", lambda c: c.index.search("red star", candidates=0), ValueError, "candidates must be an int >= 1, got 0"),
    ("search-candidates-negative", lambda c: c.index.search("red star", candidates=-5), ValueError, "candidates must be an int >= 1, got -5"),
    ("search-k-float", lambda c: c.index.search("red star", k=2.5), ValueError, "k must be an int >= 1, got 2.5"),
    ("search-k-str", lambda c: c.index.search("red star", k="5"), ValueError, "k must be an int >= 1, got '5'"),
    ("search-k-bool", lambda c: c.index.search("red star", k=True), ValueError, "k must be an int >= 1, got True"),
    ("search-query-surrogate", lambda c: c.index.search("red \ud83d star"), ValueError, "query holds a lone surrogate '\\ud83d' at character 4"),
    ("search-query-not-str", lambda c: c.index.search(["red star"]), TypeError, "query must be a str, got list"),
    ("search-mode-unknown", lambda c: c.index.search("red star", mode="dense"), ValueError, "mode must be one of"),
    ("search-option-unknown", lambda c: c.index.search("red star", top_k=3), TypeError, "unknown search option(s) ['top_k']"),
    ("options-lambda-nan", lambda c: SearchOptions(lambda_pool=NAN, lambda_late=1.0), ValueError, "lambda_pool must be a finite number"),
    ("options-candidates-negative", lambda c: SearchOptions(candidates=-1), ValueError, "candidates must be an int >= 1"),
    ("options-k-zero", lambda c: SearchOptions(k=0), ValueError, "k must be an int >= 1, got 0"),
    ("options-weights-both-zero", lambda c: c.index.resolve(SearchOptions(lambda_pool=0.0, lambda_late=0.0)), ValueError, "not both 0"),
    # ---- filters (item 9) ---------------------------------------------------------------
    ("filter-not-2000-deep", lambda c: c.index.search("red star", where=_nested("$not", 2000)), ValueError, f"nested deeper than {MAX_FILTER_DEPTH} levels"),
    ("filter-and-500-deep", lambda c: c.index.count(_nested("$and", 500)), ValueError, f"nested deeper than {MAX_FILTER_DEPTH} levels"),
    ("filter-not-objects-2000-deep", lambda c: c.index.search("red star", where=_not_objects(2000)), ValueError, f"nested deeper than {MAX_FILTER_DEPTH} levels"),
    ("filter-int-over-int64", lambda c: c.index.search("red star", where={"year": 2**70}), ValueError, "out of range"),
    ("filter-nan-value", lambda c: c.index.search("red star", where={"score": {"$gt": NAN}}), ValueError, "not finite"),
    # an unknown field matches no row (docs/getting-started.md, "Filters"), it is not an error; a str against an int field is
    ("filter-str-vs-int-field", lambda c: c.index.search("red star", where={"year": "2021"}), ValueError, "Filter value '2021' (str) does not fit the type 'int' of field 'year'"),
    ("filter-unknown-operator", lambda c: c.index.search("red star", where={"year": {"$regex": 1}}), ValueError, "Unknown filter operator '$regex'"),
    ("filter-like-not-str", lambda c: c.index.search("red star", where={"author": {"$like": 1}}), ValueError, "$like expects a string for field 'author'"),
    ("filter-internal-key", lambda c: c.index.search("red star", where={"_llama_index": "x"}), ValueError, "'_llama_index' is an internal metadata key"),
    ("filter-in-not-list", lambda c: c.index.search("red star", where={"year": {"$in": 2020}}), ValueError, "$in expects a list"),
    # ---- get / delete (items 6, 7) -------------------------------------------------------
    ("get-one-string", lambda c: c.index.get("s1"), TypeError, "ids must be a sequence of ids, not a single str 's1'"),
    ("get-int-id", lambda c: c.index.get(["s1", 5]), TypeError, "ids[1] is int 5, not str"),
    ("delete-ids-one-string", lambda c: c.index.delete(ids="s1"), TypeError, "ids must be a sequence of ids, not a single str 's1'"),
    ("delete-ref-ids-one-string", lambda c: c.index.delete(ref_ids="doc1"), TypeError, "ref_ids must be a sequence of ids, not a single str 'doc1'"),
    ("delete-ids-int", lambda c: c.index.delete(ids=[1]), TypeError, "ids[0] is int 1, not str"),
    ("delete-where-empty-dict", lambda c: c.index.delete(where={}), ValueError, "call delete_all() for that"),
    ("delete-no-condition", lambda c: c.index.delete(), ValueError, "needs ids, ref_ids or where"),
    ("delete-where-matches-all", lambda c: c.index.delete(where={"$and": []}), ValueError, "call delete_all() for that"),
    ("delete-where-nin-empty", lambda c: c.index.delete(where={"year": {"$nin": []}}), ValueError, "call delete_all() for that"),
    # ---- SmartIndex / SmartStore construction (items 8, 9, 11) ---------------------------
    ("index-lambda-pool-nan", lambda c: SmartIndex(c.uri, encoder=c.index.encoder, lambda_pool=NAN), ValueError, "lambda_pool must be a finite number, got nan"),
    ("index-lambda-late-inf", lambda c: SmartIndex(c.uri, encoder=c.index.encoder, lambda_late=INF), ValueError, "lambda_late must be a finite number, got inf"),
    ("index-candidates-0", lambda c: SmartIndex(c.uri, encoder=c.index.encoder, candidates=0), ValueError, "candidates must be an int >= 1, got 0"),
    ("index-write-batch-size-0", lambda c: SmartIndex(c.uri, encoder=c.index.encoder, write_batch_size=0), ValueError, "write_batch_size must be an int >= 1"),
    ("index-uri-regular-file", lambda c: SmartIndex(str(_regular_file(c)), encoder=c.index.encoder), NotADirectoryError, "is a regular file"),
    ("store-uri-under-regular-file", lambda c: SmartStore(str(_regular_file(c) / "db"), "smart", c.index.encoder.fingerprint), NotADirectoryError, "which is a regular file"),
    ("index-max-length-mismatch", _max_length_8, FingerprintMismatchError, "max_length: table=256 encoder=8"),
    ("index-compression-mismatch", lambda c: SmartIndex(c.uri, encoder=c.index.encoder, compression="pca64-sign"), FingerprintMismatchError, "compression 'none', not 'pca64-sign'"),
    ("index-compression-unknown", lambda c: SmartIndex(c.uri, encoder=c.index.encoder, compression="zip9"), ValueError, "zip9"),
    # ---- CLI `index` (item 10): path:line, no traceback, nothing written -----------------
    ("cli-line-is-list", lambda c: c.cli_index("list", "[1, 2]"), SystemExit, "list.jsonl:2: expected a JSON object"),
    ("cli-line-is-string", lambda c: c.cli_index("string", '"hello"'), SystemExit, "string.jsonl:2: expected a JSON object"),
    ("cli-line-invalid-json", lambda c: c.cli_index("invalid", '{"id": "n1", "text": '), SystemExit, "invalid.jsonl:2: malformed JSON"),
    ("cli-text-is-int", lambda c: c.cli_index("text_int", json.dumps({"id": "n1", "text": 42})), SystemExit, 'text_int.jsonl:2: "text" must be a string, got int 42'),
    ("cli-title-is-list", lambda c: c.cli_index("title_list", json.dumps({"_id": "n1", "title": ["a"], "text": "x"})), SystemExit, 'title_list.jsonl:2: "title" must be a string'),
    ("cli-id-is-dict", lambda c: c.cli_index("id_dict", json.dumps({"id": {"a": 1}, "text": "x"})), SystemExit, "id_dict.jsonl:2: each line needs an id"),
    ("cli-text-surrogate", lambda c: c.cli_index("surrogate", '{"id": "n1", "text": "bad \\ud800"}'), SystemExit, 'surrogate.jsonl:2: "text" holds a lone surrogate'),
    ("cli-metadata-is-list", lambda c: c.cli_index("meta_list", json.dumps({"id": "n1", "text": "x", "metadata": ["a"]})), SystemExit, "meta_list.jsonl:2: metadata is list"),
    ("cli-metadata-int-over-int64", lambda c: c.cli_index("meta_big", json.dumps({"id": "n1", "text": "x", "metadata": {"year": 2**70}})), SystemExit, "meta_big.jsonl:2: metadata field 'year': integer"),
    ("cli-duplicate-id", lambda c: c.cli_index("dup", json.dumps({"id": "ok1", "text": "again"})), SystemExit, "dup.jsonl:2: duplicate id 'ok1' (first on line 1)"),
]  # fmt: skip


def test_at_least_40_distinct_cases():
    names = [name for name, *_ in CASES]
    assert len(set(names)) == len(names) >= 40


@pytest.mark.parametrize(("call", "error", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(ctx, call: Case, error: type[BaseException], fragment: str):
    before = snapshot(ctx.index)
    with pytest.raises(BaseException) as caught:
        call(ctx)
    assert type(caught.value) is error or (error is not SystemExit and isinstance(caught.value, error)), (
        f"expected {error.__name__}, got {type(caught.value).__name__}: {caught.value}"
    )
    assert fragment in str(caught.value), f"{fragment!r} not in {str(caught.value)!r}"
    assert snapshot(ctx.index) == before
    assert snapshot(SmartIndex(ctx.uri, encoder=ctx.index.encoder))[:3] == before[:3]  # as another handle sees it


def test_datetime_metadata_is_stored_as_iso_strings(tmp_path, encoder):
    """LangChain loaders give date / datetime metadata: stored as ISO 8601 strings, filterable with either form."""
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none")
    index.add(
        ["one", "two"],
        ids=["a", "b"],
        metadatas=[{"when": WHEN, "day": WHEN.date(), "log": [WHEN]}, {"when": WHEN.replace(year=2020)}],
    )
    assert index.get(["a"])[0].metadata == {
        "when": "2024-01-02T03:04:05",
        "day": "2024-01-02",
        "log": ["2024-01-02T03:04:05"],
    }
    assert index.count({"when": {"$gte": datetime.datetime(2023, 1, 1)}}) == 1
    assert index.count({"day": datetime.date(2024, 1, 2)}) == index.count({"day": "2024-01-02"}) == 1


def test_delete_all_is_explicit_one_commit_and_resets_the_field_map(tmp_path, encoder):
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none")
    assert index.delete_all() == 0  # no table yet
    index.add(["one", "two", "three"], ids=["a", "b", "c"], metadatas=[{"n": 1}, {"n": 2}, {"n": 3}])
    version = index.store.version
    assert index.delete(ids=[]) == 0 and index.count() == 3  # an empty list selects nothing
    assert index.delete_all() == 3
    # the rows go in one commit; the field map is then narrowed in a metadata-only commit (issue 25: 10)
    assert index.count() == 0 and index.store.version == version + 2 and index.store.field_types == {}
    assert index.store.table.to_lance().checkout_version(version + 1).count_rows() == 0
    index.add(["four"], ids=["d"], metadatas=[{"n": "four"}])  # the table stays usable; "n" is a str field now
    assert index.store.field_types == {"n": "str"}
    assert [h.id for h in index.search("four", k=5, where={"n": "four"})] == ["d"]


def test_old_fingerprint_without_max_length_still_opens(tmp_path, encoder, monkeypatch):
    """A table written before max_length was recorded opens with any max_length (the key is "not recorded")."""
    uri = str(tmp_path / "db")
    recorded = type(encoder).fingerprint
    with monkeypatch.context() as patch:  # the fingerprint of a version that did not record max_length
        patch.setattr(
            type(encoder),
            "fingerprint",
            property(lambda self: {k: v for k, v in recorded.fget(self).items() if k != "max_length"}),
        )
        SmartIndex(uri, encoder=encoder, compression="none").add(["An old row."], ids=["old"])
    assert "max_length" in encoder.fingerprint
    assert (
        "max_length"
        not in SmartIndex(uri, encoder=encoder).store.table.schema.metadata[b"smart_retrievers.fingerprint"].decode()
    )
    short = copy.copy(encoder)
    short.max_length = 8
    assert [h.id for h in SmartIndex(uri, encoder=short).get(["old"])] == ["old"]
    assert math.isfinite(SmartIndex(uri, encoder=encoder).search("old row", k=1)[0].score)
    SmartIndex(str(tmp_path / "new"), encoder=encoder, compression="none").add(["A new row."], ids=["new"])
    with pytest.raises(FingerprintMismatchError, match="max_length: table=256 encoder=8"):  # a recorded one is checked
        SmartIndex(str(tmp_path / "new"), encoder=short)
