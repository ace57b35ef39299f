"""Every class that needs the bundled model shares one loaded copy per process (encoders.shared)."""

from __future__ import annotations

import pytest

from smart_retrievers import SmartIndex
from smart_retrievers.encoders import clear_shared_encoders, default_encoder
from smart_retrievers.encoders.shared import shared_encoder, shared_key


@pytest.fixture
def fresh_cache():
    clear_shared_encoders()
    yield
    clear_shared_encoders()


def test_indexes_retrievers_and_rerankers_share_one_default_encoder(tmp_path, fresh_cache):
    from smart_retrievers.integrations.langchain import SmartReranker, SmartVectorStore
    from smart_retrievers.integrations.llama_index import SmartEmbedding, SmartRerank, SmartRetriever

    first = SmartIndex(str(tmp_path / "a"))
    second = SmartIndex(str(tmp_path / "b"), table="other")
    assert first.encoder is second.encoder
    lc_store = SmartVectorStore(uri=str(tmp_path / "c"))
    assert lc_store.index.encoder is first.encoder
    assert lc_store.as_retriever().vectorstore.index.encoder is first.encoder
    assert SmartRetriever(first)._index.encoder is SmartRetriever(second)._index.encoder
    assert SmartRerank()._scorer.encoder is first.encoder
    assert SmartReranker()._scorer.encoder is first.encoder
    assert SmartEmbedding()._encoder is first.encoder
    # other settings are the encoder object's own: another copy, shared in turn
    small = default_encoder(batch_size=4)
    assert small is not first.encoder and small.batch_size == 4 and first.encoder.batch_size == 32
    assert default_encoder(batch_size=4) is small
    assert clear_shared_encoders() == 2
    assert default_encoder() is not first.encoder  # forgotten: the next caller loads a new copy


def test_the_key_resolves_device_and_dtype_and_refuses_unhashable_settings(fresh_cache):
    import torch

    assert shared_key("m", {}) == shared_key("m", {"device": "cpu", "dtype": torch.float32})
    assert shared_key("m", {"device": "cpu"}) != shared_key("m", {"device": "cpu", "dtype": torch.float16})
    assert shared_key("m", {"max_length": 64}) != shared_key("m", {})
    assert shared_key("m", {"adapter": {"not": "hashable"}}) is None
    loads = []

    def load(**settings):
        loads.append(settings)
        return object()

    assert shared_encoder("m", load, adapter=["x"]) is not shared_encoder("m", load, adapter=["x"])  # not shared
    assert shared_encoder("m", load, batch_size=2) is shared_encoder("m", load, batch_size=2)
    assert loads == [{"adapter": ["x"]}, {"adapter": ["x"]}, {"batch_size": 2}]
