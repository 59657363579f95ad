"""Process-wide Redis clients (only when ``REDIS_URL`` is set)."""

from __future__ import annotations

import functools

from django.conf import settings


@functools.cache
def redis_sync():
    import redis

    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )
