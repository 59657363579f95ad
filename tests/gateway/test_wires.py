"""``gateway.wires.chat_upstream_body``: what the canonical body becomes on its way upstream."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gateway.providers.base import CHAT
from gateway.records import ModelRecord, ProviderRecord
from gateway.wires import chat_upstream_body


def _model(upstream: str, kind: str = "openai") -> ModelRecord:
    provider = ProviderRecord(slug="p", kind=kind, base_url="https://x.example/v1", api_key="k")
    return ModelRecord(
        name="m", upstream_model=upstream, mode="chat", max_output_tokens=1000, provider=provider,
        prices=(),
    )  # fmt: skip


def _call(**body) -> SimpleNamespace:
    return SimpleNamespace(api=CHAT, body={"messages": [], **body})


@pytest.mark.parametrize("upstream", ["o3-mini", "o1", "o4-mini-2025-04-16", "gpt-5", "gpt-5-mini"])
def test_reasoning_models_get_max_completion_tokens_instead_of_max_tokens(upstream):
    body = chat_upstream_body(_call(max_tokens=300), _model(upstream), stream=False)
    assert body["max_completion_tokens"] == 300 and "max_tokens" not in body
    assert body["model"] == upstream


def test_other_models_and_other_kinds_keep_max_tokens():
    for model in (_model("gpt-4o-mini"), _model("o3-mini", kind="anthropic")):
        body = chat_upstream_body(_call(max_tokens=300), model, stream=False)
        assert body["max_tokens"] == 300 and "max_completion_tokens" not in body


def test_an_explicit_max_completion_tokens_wins_and_a_missing_cap_is_the_reserved_one():
    body = chat_upstream_body(
        _call(max_tokens=300, max_completion_tokens=50), _model("o3"), stream=False
    )
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body
    body = chat_upstream_body(_call(), _model("o3"), stream=True)
    assert body["max_completion_tokens"] == 1000
    assert body["stream_options"] == {"include_usage": True}
