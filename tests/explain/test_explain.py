"""Match evidence: spans land on the right words (unicode, repeats, truncation, token policy), shares add up."""

from __future__ import annotations

import copy
import json
import unicodedata

import pytest

from smart_retrievers import SmartIndex
from smart_retrievers.cli import main
from smart_retrievers.encoding import TokenPolicy
from smart_retrievers.explain import Evidence, explain_text

ZEBRA = "The zebra ran across the plain. A second zebra followed!"
UNICODE = "Café au lait in 東京, naïve résumé."


def _fold(s: str) -> str:
    """What an uncased, accent-stripping WordPiece vocabulary holds for a piece of text."""
    return "".join(c for c in unicodedata.normalize("NFD", s.lower()) if not unicodedata.combining(c))


def _aligned(encoder, text: str, *, query: bool = False) -> list[tuple[int, int]]:
    """The spans of ``text``'s kept tokens, checked against the encoder's own token states and vocabulary."""
    spans, _ = encoder.token_spans(text, query=query)
    enc = (encoder.encode_queries if query else encoder.encode_documents)([text], show_progress=False)[0]
    assert len(spans) == len(enc.tokens)  # one span per stored token state, in order
    prompt = encoder.query_prompt if query else encoder.document_prompt
    ids = encoder.tokenizer(prompt + text, truncation=True, max_length=encoder.max_length)["input_ids"]
    pieces = [p.removeprefix("##") for p in encoder.tokenizer.convert_ids_to_tokens(ids)]
    kept = iter(p for p in pieces if p not in ("[CLS]", "[SEP]"))
    if prompt and encoder.token_policy.drop_prompt:
        for _ in range(len(encoder.tokenizer(prompt, add_special_tokens=False)["input_ids"])):
            next(kept)
    punct = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    for start, end in spans:
        piece = next(kept)
        while encoder.token_policy.drop_punctuation and piece and all(c in punct for c in piece):
            piece = next(kept)
        assert _fold(text[start:end]) == piece, (text[start:end], piece)
    return spans


@pytest.fixture(scope="module")
def index(encoder, tmp_path_factory):
    ix = SmartIndex(str(tmp_path_factory.mktemp("explain")), encoder=encoder, compression="none")
    ix.add([ZEBRA, UNICODE, "Code K7 labels the red star."], ids=["zebra", "unicode", "k7"])
    return ix


def test_spans_match_the_token_states(encoder):
    for text in (ZEBRA, UNICODE, "  leading spaces, tabs\tand\nnewlines — em dash…"):
        _aligned(encoder, text)
        _aligned(encoder, text, query=True)


def test_evidence_scores_and_shares(index):
    hit = index.search("where did the zebra run?", k=1)[0]
    ev = index.explain("where did the zebra run?", hit)
    assert isinstance(ev, Evidence) and ev.doc_id == "zebra"
    # float16 table: the re-encoded evidence reproduces the search's scores
    assert ev.late == pytest.approx(hit.late_score, abs=1e-4)
    assert ev.pooled == pytest.approx(hit.pooled_score, abs=1e-5)
    assert ev.score == pytest.approx(hit.score, abs=1e-4)
    assert sum(m.share for m in ev.matches) == pytest.approx(1.0)
    assert sum(m.similarity for m in ev.matches) / len(ev.matches) == pytest.approx(ev.late)
    for m in ev.matches:
        assert m.share * ev.late * len(ev.matches) == pytest.approx(m.similarity)
        assert ev.text[m.start : m.end] == m.doc_token and ev.query[m.query_start : m.query_end] == m.query_token
    assert json.loads(json.dumps(ev.to_dict()))["matches"][0].keys() >= {
        "query_token",
        "doc_token",
        "start",
        "end",
        "share",
    }


def test_repeated_words_land_on_an_occurrence(index):
    ev = index.explain("zebra", "zebra")
    occurrences = {i for i in range(len(ZEBRA)) if ZEBRA.startswith("zebra", i)}
    assert len(occurrences) == 2
    (match,) = [m for m in ev.matches if m.query_token == "zebra"]
    assert match.start in occurrences and match.end == match.start + 5 and match.doc_token == "zebra"
    assert match.similarity > 0.8


def test_unicode_spans(index):
    ev = index.explain("resume in Tokyo", "unicode")
    by_query = {m.query_token: m for m in ev.matches}
    assert by_query["resume"].doc_token == "résumé"
    assert UNICODE[by_query["resume"].start : by_query["resume"].end] == "résumé"
    assert by_query["Tokyo"].doc_token in {"東", "京"}
    assert by_query["in"].doc_token == "in"


def test_truncation_keeps_evidence_inside_the_cut(encoder):
    short = copy.copy(encoder)  # shares the model
    short.max_length = 12
    text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron zebra"
    spans = _aligned(short, text)
    cut = spans[-1][1]
    assert text.index("zebra") > cut  # the model never saw "zebra"
    ev = explain_text(short, "zebra", text)
    assert ev.truncated
    assert all(m.end is not None and m.end <= cut for m in ev.matches)
    assert not explain_text(encoder, "zebra", text).truncated
    assert any(m.doc_token == "zebra" for m in explain_text(encoder, "zebra", text).matches)


def test_token_policy_prompt_and_punctuation(encoder):
    prompted = copy.copy(encoder)
    prompted.query_prompt, prompted.document_prompt = "query: ", "passage: "
    spans = _aligned(prompted, ZEBRA)
    assert spans[0] == (0, 3)  # "The": the prompt's tokens are dropped, offsets shifted past it
    _aligned(prompted, "zebra?", query=True)
    kept_prompt = copy.copy(prompted)
    kept_prompt.token_policy = TokenPolicy(drop_prompt=False)
    spans, _ = kept_prompt.token_spans(ZEBRA, query=False)
    assert spans[0] == (0, 0)  # prompt tokens kept: they have no span in the stored text
    no_punct = copy.copy(encoder)
    no_punct.token_policy = TokenPolicy(drop_punctuation=True)
    spans = _aligned(no_punct, ZEBRA)
    assert all(ZEBRA[s:e] not in {".", "!"} for s, e in spans)
    assert len(spans) == len(_aligned(encoder, ZEBRA)) - 2


def test_renderings(index):
    ev = index.explain("which code labels the red star?", "k7")
    page = ev.to_html()
    assert page.count("<mark") >= 3 and 'href="#ev' in page and "K7" in page
    assert "<mark" in page and "&lt;" not in ev.text
    plain = ev.render(color=False)
    assert "[star]" in plain and "\033[" not in plain and "late" in plain
    assert "\033[1;" in ev.render(color=True)
    top = ev.top_spans(2)
    assert len(top) == 2 and top[0]["share"] >= top[1]["share"]
    assert json.dumps(top)
    with pytest.raises(KeyError, match="no row with id"):
        index.explain("x", "missing")


def test_html_escapes(encoder):
    ev = explain_text(encoder, "bold tag", "<b>bold</b> & <i>tag</i>")
    page = ev.to_html()
    assert "<b>bold" not in page and "&lt;b&gt;" in page and "&amp;" in page


def test_cli_search_explain(index, capsys):
    assert main(["search", "where did the zebra run?", "--db", index.store.uri, "-k", "1", "--explain"]) == 0
    printed = capsys.readouterr().out
    assert "[zebra]" in printed and "share" in printed
    assert main(["search", "zebra", "--db", index.store.uri, "-k", "1", "--explain", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["evidence"]["matches"][0]["doc_token"] == "zebra"


def test_langchain_retriever_evidence(index):
    from smart_retrievers.langchain import SmartRetriever

    plain = SmartRetriever(index=index, k=2).invoke("where did the zebra run?")
    assert all("smart_evidence" not in d.metadata for d in plain)  # off by default
    docs = SmartRetriever(index=index, k=2, evidence=True).invoke("where did the zebra run?")
    assert docs[0].id == "zebra"
    spans = docs[0].metadata["smart_evidence"]
    assert json.loads(json.dumps(spans)) == spans and len(spans) <= 5
    assert spans[0]["share"] >= spans[-1]["share"]
    assert all(ZEBRA[s["start"] : s["end"]] == s["text"] for s in spans)
    assert "zebra" in {s["text"] for s in spans}


def test_langchain_evidence_off_calls_nothing(index, monkeypatch):
    import smart_retrievers.explain as explain
    from smart_retrievers.langchain import SmartRetriever

    def refuse(*args, **kwargs):
        raise AssertionError("evidence computed while off")

    monkeypatch.setattr(explain, "compact_evidence", refuse)
    monkeypatch.setattr(explain, "explain_texts", refuse)
    assert len(SmartRetriever(index=index, k=2).invoke("where did the zebra run?")) == 2
    with pytest.raises(AssertionError, match="while off"):  # on, the same call goes through it
        SmartRetriever(index=index, k=2, evidence=True).invoke("where did the zebra run?")


def test_compact_evidence_batches_and_skips_image_rows(index, encoder):
    from smart_retrievers.explain import EVIDENCE_SPANS, compact_evidence
    from smart_retrievers.index import Hit

    hits = index.search("where did the zebra run?", k=2)
    image = Hit(id="img", text="", image="/nowhere.png", modality="image")
    out = compact_evidence(index, "where did the zebra run?", [hits[0], image, hits[1]])
    assert out[1] is None and len(out) == 3
    for hit, spans in zip((hits[0], hits[1]), (out[0], out[2])):  # batched (padded) = one by one, to float noise
        alone = index.explain("where did the zebra run?", hit).top_spans(EVIDENCE_SPANS)
        assert [(s["start"], s["end"], s["query_tokens"]) for s in spans] == [
            (s["start"], s["end"], s["query_tokens"]) for s in alone
        ]
        assert [s["share"] for s in spans] == pytest.approx([s["share"] for s in alone], abs=1e-4)


def test_spans_come_from_the_encoder_that_scored(encoder):
    """Issue 22 (5): explain asks the encoder which tokens it kept, so a different keep rule cannot make spans drift."""
    from smart_retrievers.encoders import SmartEncoder

    class FirstTokenDropped(SmartEncoder):
        def _kept(self, input_ids, keep, prompt_len):
            kept = super()._kept(input_ids, keep, prompt_len)
            first = kept.long().cumsum(dim=1) == 1
            return kept & ~first

    dropping = copy.copy(encoder)
    dropping.__class__ = FirstTokenDropped
    spans, _ = dropping.token_spans(ZEBRA)
    assert len(spans) == len(dropping.encode_documents([ZEBRA], show_progress=False)[0].tokens)
    assert ZEBRA[slice(*spans[0])] == "zebra" and len(spans) == len(encoder.token_spans(ZEBRA)[0]) - 1
    ev = explain_text(dropping, "the zebra", ZEBRA)
    assert all(m.start is not None and ZEBRA[m.start : m.end] == m.doc_token for m in ev.matches)
    assert "The" not in {m.doc_token for m in ev.matches}


def test_evidence_scores_are_the_search_scores(tmp_path, encoder):
    """Evidence scores through smart_retrievers.scoring: on a float16 table they are the search's own scores."""
    index = SmartIndex(str(tmp_path / "db"), encoder=encoder, compression="none", lambda_late=2.0)
    index.add([ZEBRA, UNICODE], ids=["z", "u"])
    for hit in index.search("a zebra on the plain", k=2):
        ev = index.explain("a zebra on the plain", hit)
        assert (ev.lambda_pool, ev.lambda_late) == (1.0, 2.0)
        assert ev.pooled == pytest.approx(hit.pooled_score, abs=1e-6)
        assert ev.late == pytest.approx(hit.late_score, abs=1e-6)
        assert ev.score == pytest.approx(hit.score, abs=1e-6)
