"""Provider adapters, one per API family, behind one small Protocol (``base.Adapter``)."""

from __future__ import annotations

from gateway.providers.anthropic import AnthropicAdapter
from gateway.providers.azure import AzureAdapter
from gateway.providers.base import Adapter
from gateway.providers.openai import OpenAIAdapter

_ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter(),
    "azure": AzureAdapter(),
    "anthropic": AnthropicAdapter(),
}


def adapter_for(kind: str) -> Adapter | None:
    return _ADAPTERS.get(kind)


def adapter_register(kind: str, adapter: Adapter) -> None:
    _ADAPTERS[kind] = adapter
