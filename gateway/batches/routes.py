"""The batch APIs' entry from ``gateway.asgi``: ``/v1/files…``, ``/v1/batches…`` (OpenAI's
shapes) and ``/v1/messages/batches…`` (Anthropic's). The key is checked before any body is
read (an upload may be large)."""

from __future__ import annotations

from gateway.batches import poller  # noqa: F401 - registers the poller with the runtime
from gateway.batches.anthropic_batches import anthropic_batches_route
from gateway.batches.files import files_route
from gateway.batches.openai_batches import openai_batches_route
from gateway.errors import GatewayError

PREFIXES = ("/v1/files", "/v1/batches", "/v1/messages/batches")


def is_batch_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PREFIXES)


async def batch_route(scope, receive, send, rid, authenticate) -> None:
    path = scope["path"]
    record = await authenticate(scope)
    if path == "/v1/files" or path.startswith("/v1/files/"):
        await files_route(scope, receive, send, rid, record)
    elif path == "/v1/batches" or path.startswith("/v1/batches/"):
        await openai_batches_route(scope, receive, send, rid, record)
    elif path == "/v1/messages/batches" or path.startswith("/v1/messages/batches/"):
        await anthropic_batches_route(scope, receive, send, rid, record)
    else:
        raise GatewayError(404, "unknown_url", f"Unknown request URL: {scope['method']} {path}")
