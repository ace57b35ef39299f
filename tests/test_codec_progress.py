"""The generic sample's one encoding draws its progress bar unless asked not to (``--quiet`` reaches it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from smart_retrievers.codec import DEFAULT_COMPRESSION, fit_and_code, fit_codec, fitting, generic_sample
from smart_retrievers.encoding import Encoding

BAR = "Codec sample"


class StubEncoder:
    """Random unit token states, no model: only which bar the sample's encoding draws is under test."""

    def __init__(self, show_progress: bool | None = None, name: str = "stub") -> None:
        self.show_progress = show_progress
        self.name = name
        self.calls = 0

    @property
    def fingerprint(self) -> dict[str, Any]:
        return {"model": self.name, "stub": self.name, "dim": 384}

    def encode_documents(self, texts, **_: Any) -> list[Encoding]:
        self.calls += len(texts)
        gen = np.random.default_rng(len(texts))
        out = []
        for _text in texts:
            tokens = gen.normal(size=(12, 384)).astype(np.float32)
            tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
            out.append(Encoding(pooled=tokens.mean(0), tokens=tokens))
        return out


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SMART_RETRIEVERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fitting, "_STATES", {})


FEW = [np.ones((3, 384), np.float32) / 384**0.5]  # too few tokens: the generic sample is encoded


@pytest.mark.parametrize(
    ("encoder_setting", "argument", "drawn"),
    [
        (None, None, True),  # nothing said: the bar of a once-per-model encoding is shown
        (False, None, False),  # a quiet encoder (the CLI's --quiet): no bar
        (True, False, False),  # the argument wins over the encoder
        (False, True, True),
    ],
)
@pytest.mark.parametrize("fit", [fit_codec, fit_and_code])
def test_fit_passes_show_progress_to_the_sample_bar(capsys, fit, encoder_setting, argument, drawn):
    encoder = StubEncoder(encoder_setting, name=f"{fit.__name__}-{encoder_setting}-{argument}")
    fit(DEFAULT_COMPRESSION, FEW, encoder, show_progress=argument)
    assert encoder.calls == len(generic_sample())  # the sample was encoded in this call
    assert (BAR in capsys.readouterr().err) is drawn
