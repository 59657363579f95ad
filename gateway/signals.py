"""Bump config stamps whenever something the gateway caches changes, from any code path.

Models of higher apps that the gateway caches (evaluation's experiments) are connected by those
apps themselves (``evaluation.gateway_hooks``)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from gateway import models as gm
from gateway.services.stamps import CONFIG, KEYS, stamp_bump
from teams import models as tm

_KEY_MODELS = (tm.VirtualKey, tm.KeySecret, tm.Team, tm.Organization, tm.Feature)
_CONFIG_MODELS = (
    gm.Provider,
    gm.LLMModel,
    gm.ModelPrice,
    gm.ModelGroup,
    gm.GroupMember,
    gm.GroupFallback,
    gm.Router,
    gm.RouterModel,
    tm.Budget,
    tm.CachePolicy,  # the response cache's policies (gateway.response_cache)
    tm.Team,
    tm.Organization,
)


@receiver(post_save)
@receiver(post_delete)
def _bump_on_change(sender, **kwargs) -> None:
    if sender in _KEY_MODELS:
        stamp_bump(name=KEYS)
    if sender in _CONFIG_MODELS:
        stamp_bump(name=CONFIG)
