"""Operations endpoints served by Django: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Ready when the database answers and, where configured, Redis does too."""
    checks = {"database": _database_check()}
    if settings.REDIS_URL:
        checks["redis"] = _redis_check()
    ready = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", **checks}, status=200 if ready else 503
    )


def _database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return type(exc).__name__
    return "ok"


def _redis_check() -> str:
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return type(exc).__name__
    return "ok"


def metrics(request):
    """Prometheus exposition of every process of this server (see ``gateway.metrics``).

    It names every tenant's models and budget ratios, so with ``DEBUG`` off it is served only
    for ``Authorization: Bearer $FINOPS_METRICS_TOKEN``, and to nobody while no token is set
    (the server still starts). With ``DEBUG`` on (a laptop) a token is asked for only if set.
    """
    from gateway.metrics import registry

    expected = settings.FINOPS_METRICS_TOKEN
    if expected or not settings.DEBUG:
        given = request.headers.get("Authorization", "")
        if not expected or not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            detail = "a bearer token" if expected else "FINOPS_METRICS_TOKEN to be set"
            response = HttpResponse(f"/metrics needs {detail}\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
