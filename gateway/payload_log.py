"""Optional logging of gateway request and response bodies, for debugging an integration.

Off unless ``FINOPS_LOG_PAYLOADS`` is set *and* the ``gateway.payload`` logger is enabled for
DEBUG. Bodies are clipped to ``MAX_LOGGED_BYTES`` and every match of
``FINOPS_REDACT_PATTERNS`` (``finops.redact``: by default API keys, bearer tokens, e-mail
addresses, card numbers) is replaced by ``[REDACTED]`` before the text reaches any handler.
Prompts are customer data: keep this off in production.
"""

from __future__ import annotations

import logging

from django.conf import settings

from finops.redact import MASK, redact  # noqa: F401 - MASK: what callers compare with

log = logging.getLogger("gateway.payload")
MAX_LOGGED_BYTES = 64 * 1024


def _text(body: bytes, size: int | None = None) -> str:
    size = len(body) if size is None else size
    clipped = body[:MAX_LOGGED_BYTES].decode("utf-8", "replace")
    suffix = f"… ({size} bytes)" if size > MAX_LOGGED_BYTES else ""
    return redact(clipped) + suffix


def wrap(send, request_body: bytes):
    """The ASGI ``send`` to answer this call with: when payload logging is on, logs the request
    body now and the response body once it is complete; otherwise ``send`` itself."""
    if not (settings.FINOPS_LOG_PAYLOADS and log.isEnabledFor(logging.DEBUG)):
        return send
    log.debug("request body: %s", _text(request_body))
    status = [0]
    parts: list[bytes] = []
    size = [0]

    async def logged(message) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            if size[0] <= MAX_LOGGED_BYTES:
                parts.append(chunk)
            size[0] += len(chunk)
            if not message.get("more_body", False):
                log.debug("response %s body: %s", status[0], _text(b"".join(parts), size[0]))
        await send(message)

    return logged
