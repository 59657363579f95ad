"""ASGI entry point: ``/v1/`` (and Azure's ``/openai/``) goes to the gateway's lean ASGI app,
everything else to Django.

Django's ASGI handler does not speak ``lifespan``; this dispatcher does, and uses it to start and
stop the gateway's runtime (ledger writer, shared upstream client, caches).
Production: ``python -m finops.serve --workers N`` (uvicorn with a header deadline and trusted
proxies, ``finops.serve``).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from gateway.asgi import GatewayApp  # noqa: E402

gateway_app = GatewayApp()


async def application(scope, receive, send):
    kind = scope["type"]
    if kind == "lifespan":
        await gateway_app.lifespan(scope, receive, send)
    elif kind == "http" and scope["path"].startswith(("/v1/", "/openai/")):
        await gateway_app(scope, receive, send)
    else:
        await django_app(scope, receive, send)
