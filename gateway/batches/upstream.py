"""The providers' batch APIs, called through the runtime's pooled session (every connection
passes the egress rule, ``gateway.egress``): OpenAI's files and batches, Anthropic's Message
Batches. URLs are always built from the provider's configured ``base_url`` (a results URL an
upstream answers is not followed), and every download is bounded."""

from __future__ import annotations

import aiohttp
import orjson
from django.conf import settings

from gateway.batches import knob
from gateway.egress import egress_refusal
from gateway.providers.anthropic import ANTHROPIC_VERSION
from gateway.records import ProviderRecord

ERROR_BODY_BYTES = 64 * 1024


class UpstreamError(Exception):
    """The provider refused (``status``) or could not be reached (``status`` None)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _timeout() -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=max(settings.FINOPS_UPSTREAM_TIMEOUT, 30.0),
        sock_connect=settings.FINOPS_UPSTREAM_CONNECT_TIMEOUT,
    )


def _download_limit() -> int:
    # an output holds every answer: larger than its input, but never without bound
    return 8 * knob("FINOPS_BATCH_MAX_BYTES")


def _error_message(status: int, data: bytes) -> str:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        obj = None
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])[:500]
    return f"HTTP {status}"


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise UpstreamError(response.status, f"the answer exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _call(session, method: str, url: str, *, headers: dict, data=None, limit=None) -> bytes:
    """The body of a 2xx answer; ``UpstreamError`` otherwise."""
    try:
        async with session.request(
            method, url, headers=headers, data=data, timeout=_timeout()
        ) as response:
            if response.status // 100 != 2:
                body = await _read(response, ERROR_BODY_BYTES) if response.content else b""
                raise UpstreamError(response.status, _error_message(response.status, body))
            return await _read(response, limit or _download_limit())
    except (TimeoutError, aiohttp.ClientError) as exc:
        refusal = egress_refusal(exc)
        reason = refusal.public if refusal is not None else type(exc).__name__
        raise UpstreamError(None, f"the provider could not be reached ({reason})") from None


async def _json(session, method: str, url: str, *, headers: dict, data=None) -> dict:
    raw = await _call(session, method, url, headers=headers, data=data, limit=ERROR_BODY_BYTES * 16)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(200, "the provider sent an invalid answer") from None
    if not isinstance(obj, dict):
        raise UpstreamError(200, "the provider sent an invalid answer")
    return obj


# --- OpenAI -----------------------------------------------------------------------------------


def _openai_headers(provider: ProviderRecord) -> dict:
    headers = {}
    if provider.api_key:
        headers["authorization"] = f"Bearer {provider.api_key}"
    return headers


async def openai_upload(session, provider: ProviderRecord, data: bytes, filename: str) -> str:
    """Upload a JSONL input (``purpose=batch``); the provider's file id."""
    form = aiohttp.FormData()
    form.add_field("purpose", "batch")
    form.add_field("file", data, filename=filename, content_type="application/jsonl")
    url = f"{provider.base_url}/files"
    obj = await _json(session, "POST", url, headers=_openai_headers(provider), data=form)
    file_id = obj.get("id")
    if not isinstance(file_id, str) or not file_id:
        raise UpstreamError(200, "the provider's file has no id")
    return file_id


async def openai_create(
    session, provider: ProviderRecord, *, input_file_id: str, endpoint: str, metadata: dict
) -> dict:
    body = {"input_file_id": input_file_id, "endpoint": endpoint, "completion_window": "24h"}
    if metadata:
        body["metadata"] = metadata
    headers = {**_openai_headers(provider), "content-type": "application/json"}
    url = f"{provider.base_url}/batches"
    return await _json(session, "POST", url, headers=headers, data=orjson.dumps(body))


async def openai_get(session, provider: ProviderRecord, upstream_id: str) -> dict:
    url = f"{provider.base_url}/batches/{upstream_id}"
    return await _json(session, "GET", url, headers=_openai_headers(provider))


async def openai_cancel(session, provider: ProviderRecord, upstream_id: str) -> dict:
    url = f"{provider.base_url}/batches/{upstream_id}/cancel"
    return await _json(session, "POST", url, headers=_openai_headers(provider))


async def openai_file(session, provider: ProviderRecord, file_id: str) -> bytes:
    url = f"{provider.base_url}/files/{file_id}/content"
    return await _call(session, "GET", url, headers=_openai_headers(provider))


# --- Anthropic --------------------------------------------------------------------------------


def _anthropic_headers(provider: ProviderRecord) -> dict:
    headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
    if provider.api_key:
        headers["x-api-key"] = provider.api_key
    return headers


def _anthropic_url(provider: ProviderRecord, tail: str = "") -> str:
    return f"{provider.base_url.rstrip('/')}/v1/messages/batches{tail}"


async def anthropic_create(session, provider: ProviderRecord, requests: list[dict]) -> dict:
    data = orjson.dumps({"requests": requests})
    headers = _anthropic_headers(provider)
    return await _json(session, "POST", _anthropic_url(provider), headers=headers, data=data)


async def anthropic_get(session, provider: ProviderRecord, upstream_id: str) -> dict:
    url = _anthropic_url(provider, f"/{upstream_id}")
    return await _json(session, "GET", url, headers=_anthropic_headers(provider))


async def anthropic_cancel(session, provider: ProviderRecord, upstream_id: str) -> dict:
    url = _anthropic_url(provider, f"/{upstream_id}/cancel")
    return await _json(session, "POST", url, headers=_anthropic_headers(provider))


async def anthropic_results(session, provider: ProviderRecord, upstream_id: str) -> bytes:
    url = _anthropic_url(provider, f"/{upstream_id}/results")
    return await _call(session, "GET", url, headers=_anthropic_headers(provider))
