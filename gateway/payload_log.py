"""Optional logging of gateway request and response bodies, for debugging an integration.

Off unless ``FINOPS_LOG_PAYLOADS`` is set *and* the ``gateway.payload`` logger is enabled for
DEBUG. Bodies are clipped to ``MAX_LOGGED_BYTES`` and every match of
``FINOPS_REDACT_PATTERNS`` (by default API-key-like strings and email addresses) is replaced by
``[REDACTED]`` before the text reaches any handler. Prompts are customer data: keep this off in
production.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from django.conf import settings

log = logging.getLogger("gateway.payload")
MAX_LOGGED_BYTES = 64 * 1024
MASK = "[REDACTED]"


@lru_cache(maxsize=4)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


def redact(text: str) -> str:
    """``text`` with every match of ``FINOPS_REDACT_PATTERNS`` masked."""
    pattern = _compiled(tuple(settings.FINOPS_REDACT_PATTERNS))
    return pattern.sub(MASK, text) if pattern is not None else text


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
