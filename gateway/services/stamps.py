"""Configuration version stamps: the cross-process invalidation signal for gateway caches."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from gateway.models import ConfigStamp

KEYS = "keys"
CONFIG = "config"
REDIS_STAMP_PREFIX = "finops:stamp:"


def _redis():
    from gateway.redis_client import redis_sync

    return redis_sync()


def stamp_bump(*, name: str) -> None:
    """Bump after commit so that a poller never reloads before the change is visible."""

    def _bump() -> None:
        updated = ConfigStamp.objects.filter(name=name).update(
            version=F("version") + 1, changed_at=timezone.now()
        )
        if not updated:
            ConfigStamp.objects.get_or_create(name=name, defaults={"version": 1})
        if settings.REDIS_URL:
            try:
                _redis().incr(REDIS_STAMP_PREFIX + name)
            except Exception:  # noqa: BLE001 - the database stamp still carries the change
                import logging

                logging.getLogger(__name__).warning("could not bump %s stamp in Redis", name)

    transaction.on_commit(_bump)


def stamps_read() -> dict[str, int]:
    """Current stamps (Redis when configured, else the database). Runs off the event loop."""
    if settings.REDIS_URL:
        try:
            values = _redis().mget([REDIS_STAMP_PREFIX + KEYS, REDIS_STAMP_PREFIX + CONFIG])
            return {KEYS: int(values[0] or 0), CONFIG: int(values[1] or 0)}
        except Exception:  # noqa: BLE001 - fall back to the database stamps
            pass
    rows = dict(ConfigStamp.objects.values_list("name", "version"))
    return {KEYS: rows.get(KEYS, 0), CONFIG: rows.get(CONFIG, 0)}
