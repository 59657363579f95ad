"""CORS for browser clients of the gateway (``FINOPS_CORS_ORIGINS``: exact origins, or ``*``).

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from an allowed origin is
answered 204 with the methods and the headers it asked for; any other origin gets no CORS
headers, so the browser refuses. Responses to an allowed origin carry
``Access-Control-Allow-Origin`` and expose the ``x-request-id`` / ``x-finops-*`` / rate-limit
headers. Credentials are virtual keys in headers, never cookies: no ``Allow-Credentials``.
"""

from __future__ import annotations

from django.conf import settings

from gateway.http import header

_METHODS = b"GET, POST, DELETE, OPTIONS"
_EXPOSE = (
    b"x-request-id, x-finops-cost, x-finops-model, x-finops-attempts, x-finops-budget-remaining, "
    b"x-finops-router-decision, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, "
    b"x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, retry-after"
)
_MAX_AGE = b"600"


def _allowed(origin: bytes | None) -> bytes | None:
    """The value for Access-Control-Allow-Origin, or None when the origin is not allowed."""
    origins = settings.FINOPS_CORS_ORIGINS
    if origin is None or not origins:
        return None
    if "*" in origins:
        return b"*"
    return origin if origin.decode("latin-1") in origins else None


def preflight_wanted(scope) -> bool:
    return header(scope, b"access-control-request-method") is not None


async def preflight(scope, send) -> None:
    allowed = _allowed(header(scope, b"origin"))
    headers = [(b"vary", b"origin"), (b"content-length", b"0")]
    if allowed is not None:
        asked = header(scope, b"access-control-request-headers") or b""
        headers += [
            (b"access-control-allow-origin", allowed),
            (b"access-control-allow-methods", _METHODS),
            (b"access-control-allow-headers", asked[:2048]),
            (b"access-control-max-age", _MAX_AGE),
        ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def wrap(scope, send):
    """``send`` adding the CORS response headers for an allowed origin (itself otherwise)."""
    allowed = _allowed(header(scope, b"origin"))
    if allowed is None:
        return send

    async def cors_send(message):
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [
                    *message.get("headers", ()),
                    (b"access-control-allow-origin", allowed),
                    (b"access-control-expose-headers", _EXPOSE),
                    (b"vary", b"origin"),
                ],
            }
        await send(message)

    return cors_send
