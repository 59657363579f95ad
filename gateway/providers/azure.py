"""Azure OpenAI: the resource endpoint as ``base_url``, the deployment from ``upstream_model``,
``api-version`` from the provider and the ``api-key`` header; otherwise OpenAI's wire format.

Chat, embeddings and legacy completions go to the deployment's own path
(``/openai/deployments/{deployment}/…?api-version=…``). The Responses API exists only on Azure's
v1 API (``/openai/v1/responses``), which names the deployment in the body's ``model`` and takes
no dated ``api-version``: those belong to the deployments API and the v1 API refuses them. Only
``preview`` (the v1 API's opt-in to preview behaviour) is passed on there.
"""

from __future__ import annotations

from urllib.parse import quote

import orjson

from gateway.providers.base import CHAT, UpstreamRequest
from gateway.providers.openai import COMPLETIONS, RESPONSES, OpenAIAdapter, responses_body
from gateway.records import ModelRecord

DEFAULT_API_VERSION = "2024-10-21"
_V1_API_VERSIONS = frozenset({"preview", "latest"})
_PATHS = {CHAT: "chat/completions", "embeddings": "embeddings", COMPLETIONS: "completions"}


class AzureAdapter(OpenAIAdapter):
    def build_request(
        self, *, model: ModelRecord, api: str, body: dict, stream: bool
    ) -> UpstreamRequest:
        provider = model.provider
        if api == RESPONSES:
            url = f"{provider.base_url}/openai/v1/responses"
            if provider.api_version in _V1_API_VERSIONS:
                url += f"?api-version={provider.api_version}"
            body = dict(responses_body(body), model=model.upstream_model)
        else:
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
