"""Azure OpenAI: the resource endpoint as ``base_url``, the deployment from ``upstream_model``,
``api-version`` from the provider and the ``api-key`` header; otherwise OpenAI's wire format."""

from __future__ import annotations

from urllib.parse import quote

import orjson

from gateway.providers.base import CHAT, UpstreamRequest
from gateway.providers.openai import OpenAIAdapter
from gateway.records import ModelRecord

DEFAULT_API_VERSION = "2024-10-21"
_PATHS = {CHAT: "chat/completions", "embeddings": "embeddings"}


class AzureAdapter(OpenAIAdapter):
    def build_request(
        self, *, model: ModelRecord, api: str, body: dict, stream: bool
    ) -> UpstreamRequest:
        provider = model.provider
        deployment = quote(model.upstream_model, safe="")
        version = quote(provider.api_version or DEFAULT_API_VERSION, safe="")
        url = (
            f"{provider.base_url}/openai/deployments/{deployment}/{_PATHS[api]}"
            f"?api-version={version}"
        )
        headers = {"content-type": "application/json"}
        if provider.api_key:
            headers["api-key"] = provider.api_key
        return UpstreamRequest(url=url, headers=headers, body=orjson.dumps(body))
